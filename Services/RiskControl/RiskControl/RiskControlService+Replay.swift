import Classifiers
import Foundation
import RPC
import Rules
import ServiceKit
import Wire

/// Replay: a stored decision made again from what it was made from, to show that it can be
/// (an auditor's question, and the risk team's when a decision looks wrong).
extension RiskControlService {
    func replay(_ request: ReplayRequest) async throws -> ReplayResponse {
        guard let id = Int64(request.decisionId), id > 0 else { throw refuse("invalid_decision", "a decision id is a positive number") }
        try await awaitView()
        guard let stored = try view.stored(id: id) else { throw RPCError(.notFound, "no decision \(id)") }
        let d = stored.decision
        var response = ReplayResponse()
        response.stored = d

        // The rule sets in force then: the decision's version, and the latest shadow set published before it.
        let sets = try database.ruleSets()
        var active = RuleSet.empty
        if d.rulesVersion != 0 {
            guard let set = sets.first(where: { $0.version == d.rulesVersion && !$0.shadow }) else {
                throw RPCError(.failedPrecondition, "rule set v\(d.rulesVersion) is not stored")
            }
            active = RuleBook.lenient(set)
        }
        let shadow = sets.last { $0.shadow && $0.publishedMs <= d.decidedMs }.map(RuleBook.lenient).flatMap { $0.rules.isEmpty ? nil : $0 }

        var x = DecisionInputs(request: stored.request)
        x.featureNames = d.featureNames
        x.features = d.degraded ? nil : d.features
        x.knownUser = d.knownUser
        if d.features.isEmpty && !d.degraded { x.features = [] }
        response.notes.append(
            d.degraded
                ? "Made without features (the feature service did not answer in time), so replayed without them"
                : "The features are those read from the feature service at the request, as stored with the decision")
        if let list = d.reasons.first(where: { $0.kind == .list }) {
            x.listMatch = Self.listMatch(list)
            response.notes.append("The \(list.code) match as recorded (the lists then, not now)")
        }
        // The model version it named, from the model service (the served one when it is that version).
        var model: ServedClassifier.Loaded?
        if !d.modelName.isEmpty && x.listMatch == nil {
            model = try await classifier(d.modelName, version: d.modelVersion)
            guard let model else { throw RPCError(.failedPrecondition, "model \(d.modelName) v\(d.modelVersion) is not available") }
            let row = Array(d.features.prefix(model.classifier.features.count))
            x.probability = model.classifier.probability(row)
        }
        let policy = DecisionPolicy(
            review: settings.reviewThreshold, decline: settings.declineThreshold, failOpen: settings.failurePolicy == .open)
        response.notes.append(
            """
            Thresholds as configured now: review at \(policy.review), decline at \(policy.decline), failure policy \
            \(settings.failurePolicy.rawValue)
            """
        )
        var verdict = Decide.decide(x, rules: active, shadow: shadow, policy: policy)
        let storedModelReasons = d.reasons.filter { $0.kind == .model }
        if let model, !storedModelReasons.isEmpty {
            verdict.reasons += model.reasons(Array(d.features.prefix(model.classifier.features.count)), count: storedModelReasons.count)
        }
        var r = Decision()
        r.decisionId = d.decisionId
        r.orderId = d.orderId
        r.userId = d.userId
        r.score = Int32(verdict.score)
        r.action = verdict.action
        r.fraud = verdict.fraud
        r.reasons = verdict.reasons
        r.probability = x.probability ?? 0
        r.modelName = d.modelName
        r.modelVersion = d.modelVersion
        r.rulesVersion = d.rulesVersion
        response.replayed = r
        response.differences = Self.differences(d, r)
        response.matches = response.differences.isEmpty
        metrics.replayed(matches: response.matches)
        return response
    }

    /// What differs between a stored decision and its replay, in words.
    static func differences(_ d: Decision, _ r: Decision) -> [String] {
        var out: [String] = []
        if d.score != r.score { out.append("score \(d.score), replayed \(r.score)") }
        if d.action != r.action { out.append("action \(d.action.name ?? ""), replayed \(r.action.name ?? "")") }
        if abs(d.probability - r.probability) > 1e-6 { out.append("probability \(d.probability), replayed \(r.probability)") }
        func key(_ reason: ReasonCode) -> String { "\(reason.kind.name ?? "") \(reason.code)" }
        let before = d.reasons.map(key), after = r.reasons.map(key)
        if before != after {
            out.append("reasons \(before.joined(separator: ", ")); replayed \(after.joined(separator: ", "))")
        } else {
            for (a, b) in zip(d.reasons, r.reasons) where abs(a.contribution - b.contribution) > 1e-4 * max(1, abs(a.contribution)) {
                out.append("\(a.code) contributes \(a.contribution), replayed \(b.contribution)")
            }
        }
        return out
    }

    /// The list entry a stored list reason (`list:block:device`) names.
    static func listMatch(_ reason: ReasonCode) -> ListEntry {
        let parts = reason.code.split(separator: ":")
        var e = ListEntry()
        e.list = parts.count > 1 ? StoredNames.list(String(parts[1])) : .block
        e.field = parts.count > 2 ? StoredNames.field(String(parts[2])) : .user
        e.reason = reason.description
        return e
    }

    /// One version of a classifier: the served one when it is that version, else fetched
    /// from the model service (the last few fetched are kept).
    func classifier(_ name: String, version: UInt32) async throws -> ServedClassifier.Loaded? {
        if let kept = served.earlier(name, version: version) { return kept }
        guard let (info, bytes) = try await ModelWatcher.download(name, version: version, from: modelClient) else { return nil }
        let loaded = ServedClassifier.Loaded(info: info, classifier: try Classifier.decode(bytes))
        served.keep(loaded)
        return loaded
    }
}
