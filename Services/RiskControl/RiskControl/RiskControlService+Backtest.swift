import RPC
import Rules
import Wire

/// Backtest: a candidate rule set replayed over stored decisions, with what it would change.
extension RiskControlService {
    func backtest(_ request: BacktestRequest) async throws -> BacktestResponse {
        var response = BacktestResponse()
        let candidate: RuleSet
        switch try await compileRules(request.source) {
        case .failure(let invalid):
            response.errors = invalid.errors.map(Self.wire)
            return response
        case .success(let set): candidate = set
        }
        let limit = request.limit == 0 ? 100_000 : min(Int(request.limit), 1_000_000)
        try await awaitView()
        let history = try view.history(fromMs: request.fromMs, toMs: request.toMs, limit: limit)
        let policy = DecisionPolicy(
            review: settings.reviewThreshold, decline: settings.declineThreshold, failOpen: settings.failurePolicy == .open)
        var changes: [[UInt32]] = Array(repeating: Array(repeating: 0, count: 5), count: 5)
        var current = (labelled: Int64(0), fraud: Int64(0), flagged: Int64(0), flaggedFraud: Int64(0), declined: Int64(0))
        var proposed = current
        for h in history {
            let d = h.decision
            var x = DecisionInputs(request: h.request)
            x.featureNames = d.featureNames
            x.features = d.degraded ? nil : d.features
            x.knownUser = d.knownUser
            x.probability = d.modelName.isEmpty ? nil : d.probability
            x.modelReasons = d.reasons.filter { $0.kind == .model }
            if let list = d.reasons.first(where: { $0.kind == .list }) { x.listMatch = Self.listMatch(list) }
            if d.degraded { response.degraded += 1 }
            let v = Decide.decide(x, rules: candidate, shadow: nil, policy: policy)
            changes[Int(d.action.rawValue)][Int(v.action.rawValue)] += 1
            if v.action != d.action {
                response.flipped += 1
                if response.examples.count < 20 {
                    var f = Flip()
                    f.orderId = d.orderId
                    f.from = d.action
                    f.to = v.action
                    f.label = d.label
                    f.fromScore = d.score
                    f.toScore = Int32(v.score)
                    response.examples.append(f)
                }
            }
            func count(_ t: inout (labelled: Int64, fraud: Int64, flagged: Int64, flaggedFraud: Int64, declined: Int64), _ action: Action) {
                if action == .decline { t.declined += 1 }
                guard d.label != .unspecified else { return }
                t.labelled += 1
                let fraud = StoredNames.isFraud(d.label)
                if fraud { t.fraud += 1 }
                if action != .allow {
                    t.flagged += 1
                    if fraud { t.flaggedFraud += 1 }
                }
            }
            count(&current, d.action)
            count(&proposed, v.action)
        }
        response.decisions = UInt32(history.count)
        for from in 0..<5 {
            for to in 0..<5 where changes[from][to] > 0 {
                var c = ActionChange()
                c.from = Action(rawValue: Int32(from))
                c.to = Action(rawValue: Int32(to))
                c.count = changes[from][to]
                response.changes.append(c)
            }
        }
        let n = Int64(history.count)
        response.current = DecisionDatabase.outcome(
            decisions: n, declined: current.declined, labelled: current.labelled, fraud: current.fraud, flagged: current.flagged,
            flaggedFraud: current.flaggedFraud)
        response.candidate = DecisionDatabase.outcome(
            decisions: n, declined: proposed.declined, labelled: proposed.labelled, fraud: proposed.fraud, flagged: proposed.flagged,
            flaggedFraud: proposed.flaggedFraud)
        return response
    }
}
