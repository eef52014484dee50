import Classifiers
import Foundation
import RPC
import Wire

/// Score: validate, pseudonymise, read the features as of the request, model, lists, rules
/// and thresholds, then the decision log's durable append; one walk from request to answer.
extension RiskControlService {
    /// How long the feature read may take: the configured timeout, never more than half of
    /// what the caller still waits, so the decision comes in time when feature does not.
    func featureBudget() -> Duration { RPCContext.budget(settings.featureTimeout) }

    func validate(_ r: ScoreRequest) throws {
        if r.userId <= 0 { throw refuse("invalid_user", "user id must be positive, got \(r.userId)") }
        if !r.amount.isFinite || r.amount < 0 { throw refuse("invalid_amount", "amount must be finite and >= 0, got \(r.amount)") }
        if r.timestampMs < 0 { throw refuse("invalid_time", "timestamp must be >= 0 (0: now), got \(r.timestampMs)") }
        if r.kind.rawValue < 0 || r.kind.rawValue > 5 { throw refuse("invalid_kind", "unknown request kind \(r.kind.rawValue)") }
        if r.lines.count > 1000 { throw refuse("too_many_lines", "at most 1000 order lines, got \(r.lines.count)") }
        for text in [r.orderId, r.currency, r.deviceId, r.ip, r.paymentInstrument, r.channel, r.email, r.ipCountry, r.sessionId]
        where text.utf8.count > 256 {
            throw refuse("text_too_long", "a request's text fields are at most 256 bytes")
        }
    }

    /// The request as it is decided and stored: identifiers pseudonymised (the IP's country
    /// looked up first), the time and kind filled in.
    func prepared(_ request: ScoreRequest) -> ScoreRequest {
        var r = request
        if r.kind == .unspecified { r.kind = .order }
        if r.timestampMs == 0 { r.timestampMs = context.clock.nowMs }
        if r.ipCountry.isEmpty, !r.ip.isEmpty, let country = settings.ipCountries?.country(of: r.ip) { r.ipCountry = country }
        r.deviceId = pseudonymizer.pseudonym(r.deviceId)
        r.ip = pseudonymizer.pseudonym(r.ip)
        r.paymentInstrument = pseudonymizer.pseudonym(r.paymentInstrument)
        r.email = pseudonymizer.pseudonym(r.email)
        return r
    }

    /// The request as the event the feature service folds into a copy of the user.
    static func event(_ r: ScoreRequest) -> Event {
        var e = Event()
        e.userId = r.userId
        e.timestampMs = r.timestampMs
        e.deviceId = r.deviceId
        e.ip = r.ip
        e.ipCountry = r.ipCountry
        e.channel = r.channel
        e.userAgent = r.userAgent
        e.sessionId = r.sessionId
        switch r.kind {
        case .payment:
            e.kind = .payment
            var p = Payment()
            p.orderId = r.orderId
            p.instrument = r.paymentInstrument
            p.amount = r.amount
            p.currency = r.currency
            p.success = true
            e.payment = p
        case .login:
            e.kind = .login
            var l = Login()
            l.success = true
            e.login = l
        case .signup:
            e.kind = .register
            var g = Register()
            g.email = r.email
            e.register = g
        case .refund:
            e.kind = .refund
            var f = Refund()
            f.orderId = r.orderId
            f.amount = r.amount
            e.refund = f
        default:
            e.kind = .purchase
            var o = Order()
            o.orderId = r.orderId
            o.lines = r.lines
            o.total = r.amount
            o.currency = r.currency
            e.order = o
        }
        return e
    }

    /// The features `names` of the user as of `event`, asked by the names' key alone: the
    /// names go only when the feature replica does not keep them yet.
    func requestFeatures(_ event: Event, names: [String], key: UInt64) async throws -> RequestFeaturesResponse {
        var q = RequestFeaturesRequest()
        q.event = event
        q.namesKey = key
        do {
            let answer = try await feature.call(FeatureAPI.requestFeatures, q, user: event.userId, timeout: featureBudget())
            // A feature service older than the key ignores it and answers every feature, named.
            if answer.names.isEmpty || answer.names == names { return answer }
        } catch let error as RPCError where error.code == .failedPrecondition {}
        q.names = names
        return try await feature.call(FeatureAPI.requestFeatures, q, user: event.userId, timeout: featureBudget())
    }

    func score(_ request: ScoreRequest) async throws -> ScoreResponse {
        let start = ContinuousClock.now
        try validate(request)
        let r = prepared(request)
        let (active, shadow) = rules.current
        let served = self.served.current
        var x = DecisionInputs(request: r)
        x.listMatch = lists.match(
            user: r.userId, device: r.deviceId, ip: r.ip, instrument: r.paymentInstrument, email: r.email, nowMs: context.clock.nowMs)
        var modelUsed: ServedClassifier.Loaded?
        var modelRow: [Float] = []
        if let hit = x.listMatch {
            metrics.listHit(hit)
        } else {
            let (names, key) = scoreNames.names(model: served, rules: active, shadow: shadow)
            x.featureNames = names
            if names.isEmpty {
                x.features = []
            } else {
                do {
                    let answer = try await requestFeatures(Self.event(r), names: names, key: key)
                    x.features = answer.values
                    x.knownUser = answer.knownUser
                    if let served, answer.schemaVersion == served.classifier.schemaVersion {
                        let row = Array(answer.values.prefix(served.classifier.features.count))
                        x.probability = served.classifier.probability(row)
                        modelRow = row
                        modelUsed = served
                    } else if served != nil {
                        context.logger.warning(
                            """
                            the fraud model's feature schema \(served!.classifier.schemaVersion) is not the feature \
                            service's \(answer.schemaVersion): scoring without it
                            """
                        )
                    }
                } catch {
                    x.features = nil
                    let code = (error as? RPCError)?.code.name ?? "UNKNOWN"
                    metrics.degraded(code: code, policy: settings.failurePolicy.rawValue)
                }
            }
        }
        let policy = DecisionPolicy(
            review: settings.reviewThreshold, decline: settings.declineThreshold, failOpen: settings.failurePolicy == .open)
        var verdict = Decide.decide(x, rules: active, shadow: shadow, policy: policy)
        // The model's reasons (TreeSHAP, the costliest step) for what is flagged, or for all.
        if let served = modelUsed, settings.explain == .all || request.explain || verdict.action != .allow {
            verdict.reasons += served.reasons(modelRow, count: settings.modelReasons)
        }
        var d = Decision()
        d.orderId = r.orderId
        d.userId = r.userId
        d.kind = r.kind
        d.score = Int32(verdict.score)
        d.action = verdict.action
        d.fraud = verdict.fraud
        d.reasons = verdict.reasons
        d.modelName = modelUsed?.info.name ?? ""
        d.modelVersion = modelUsed?.info.version ?? 0
        d.probability = x.probability ?? 0
        d.rulesVersion = active.version
        d.decidedMs = context.clock.nowMs
        d.eventMs = r.timestampMs
        d.amount = r.amount
        d.currency = r.currency
        d.device = r.deviceId
        d.ip = r.ip
        d.instrument = r.paymentInstrument
        d.channel = r.channel
        d.degraded = x.listMatch == nil && x.features == nil
        d.knownUser = x.knownUser
        if let values = x.features, !values.isEmpty {
            d.featureNames = x.featureNames
            d.features = values
        }
        d.latencyUs = Self.micros(start.duration(to: .now))
        if !request.dryRun {
            do {
                var record = DecisionRecord()
                record.decision = d
                record.request = r
                let offset = try await decisionLog.append(record, id: "\(r.orderId)|\(d.decidedMs)|\(UInt64.random(in: 0...UInt64.max))")
                d.decisionId = String(DecisionLog.decisionID(offset: offset))
                viewProgress.answered(offset)
            } catch {
                context.logger.error("decision for order '\(r.orderId)' not stored: \(error)")
                throw RPCError(.unavailable, "the decision could not be stored: \(error)")
            }
        }
        d.latencyUs = Self.micros(start.duration(to: .now))
        metrics.decided(d.action)
        var response = ScoreResponse()
        response.decision = d
        return response
    }

    static func micros(_ d: Duration) -> UInt32 {
        UInt32(clamping: d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000)
    }
}
