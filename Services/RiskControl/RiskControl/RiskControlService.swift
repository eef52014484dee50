import Classifiers
import Foundation
import Logging
import Math
public import RPC
import Recommenders
public import ServiceKit
import Synchronization
import Wire

/// The risk-control service: scores orders, payments, logins, signups and refunds, records
/// every decision durably, takes labels, and is steered by rules and lists.
///
/// A Score reads the request's features as of the request from the feature service
/// (RequestFeatures, within the caller's deadline), scores them with the published fraud
/// model (followed through WatchModels and swapped in without a restart), explains the
/// score with TreeSHAP, applies the lists, rules and thresholds (`Decide`), and answers only
/// once the decision is committed to the decision store (`DecisionStore`, SQLite).
public struct RiskControlService: PersonaService {
    public static let name = "risk-control"
    public static let defaultPort = 7104
    public static let defaultMetricsPort = 9104

    let context: ServiceContext
    let settings: RiskSettings
    let store: DecisionStore
    let lists = RiskLists()
    let rules: RuleBook
    let model = ServedModel()
    let watcher: ModelWatcher
    let feature: RPCClient
    let ingest: RPCClient
    /// Reads the log's erasure events only.
    let erasures: LogConsumer
    let erased = ErasureProgress()
    let modelClient: RPCClient
    let pseudonymizer: Pseudonymizer
    let featureNames = FeatureNames()
    let namesRead = NamesRead()

    public init(context: ServiceContext, settings: RiskSettings) async throws {
        self.context = context
        self.settings = settings
        let metrics = context.metrics
        store = try DecisionStore(path: context.dataDirectory.path + "/decisions.db") { rows, seconds, queued in
            metrics.gauge("persona_risk_store_queue_depth", labels: [], help: "Writes waiting for the next group commit").set(Int64(queued))
            metrics.counter("persona_risk_store_commits_total", labels: [], help: "Group commits of the decision store").increment()
            metrics.counter("persona_risk_store_writes_total", labels: [], help: "Writes (decisions, labels, rules, lists) committed").increment(by: Int64(rows))
        }
        lists.replace(try store.listEntries())
        rules = try RuleBook(stored: try store.ruleSets())
        pseudonymizer = Pseudonymizer(
            key: try Pseudonymizer.loadKey(environment: ProcessInfo.processInfo.environment, keyFile: settings.pseudonymKeyFile, dataDirectory: context.dataDirectory.path))
        var featureConfig = RPCClient.Config.defaults(host: settings.featureHost, port: settings.featurePort)
        featureConfig.defaultTimeout = settings.featureTimeout
        feature = RPCClient(config: featureConfig)
        ingest = RPCClient(host: settings.ingestHost, port: settings.ingestPort)
        erasures = LogConsumer(host: settings.ingestHost, port: settings.ingestPort, readEvents: 1000, readWait: .seconds(5), logger: context.logger)
        var modelConfig = RPCClient.Config.defaults(host: settings.modelHost, port: settings.modelPort)
        modelConfig.defaultTimeout = .seconds(30)
        modelClient = RPCClient(config: modelConfig)
        let served = model
        let wanted = settings.modelName
        let logger = context.logger
        watcher = ModelWatcher(client: modelClient, logger: context.logger, accept: { $0 == .gbdt || $0 == .logistic }) { info, bytes in
            guard info.name == wanted else { return }
            let classifier = try Classifier.decode(bytes)
            served.set(ServedModel.Loaded(info: info, classifier: classifier))
            metrics.gauge("persona_risk_model_version", labels: [("model", info.name)], help: "Version of the fraud model scored with").set(Int64(info.version))
            logger.info("scoring with \(info.name) v\(info.version) (\(classifier.features.count) features)")
        }
    }

    public func register(in router: inout Router) {
        router.register(RiskAPI.score) { try await score($0) }
        router.register(RiskAPI.queryDecisions) { request in
            do {
                let (decisions, next) = try store.query(request)
                var response = QueryDecisionsResponse()
                response.decisions = decisions
                response.nextPageToken = next
                return response
            } catch let e as DecisionStore.BadQuery {
                badRequest("page_token")
                throw RPCError(.invalidArgument, e.description)
            }
        }
        router.register(RiskAPI.label) { try await label($0) }
        router.register(RiskAPI.validateRules) { request in
            var response = ValidateRulesResponse()
            switch try await compileRules(request.source) {
            case .success(let set): response.rules = set.described
            case .failure(let invalid): response.errors = invalid.errors.map(Self.wire)
            }
            return response
        }
        router.register(RiskAPI.publishRules) { request in
            let set = try await publish(request.source, shadow: request.shadow)
            var response = PublishRulesResponse()
            response.version = set.version
            response.rules = set.described
            return response
        }
        router.register(RiskAPI.getRules) { request in
            var response = GetRulesResponse()
            if request.version != 0 {
                guard let stored = try store.ruleSets().first(where: { $0.version == request.version }) else {
                    throw RPCError(.notFound, "no rule set version \(request.version)")
                }
                let set = RuleBook.lenient(stored)
                response.sets = [Self.info(set)]
            } else {
                let (active, shadow) = rules.current
                response.sets = [Self.info(active)] + (shadow.map { [Self.info($0)] } ?? [])
            }
            return response
        }
        router.register(RiskAPI.updateLists) { try await updateLists($0) }
        router.register(RiskAPI.getLists) { request in
            var response = GetListsResponse()
            response.entries = lists.all(includeExpired: request.includeExpired, nowMs: Self.nowMs()).filter {
                (request.list == .unspecified || $0.list == request.list) && (request.field == .unspecified || $0.field == request.field)
            }
            return response
        }
        router.register(RiskAPI.backtest) { try await backtest($0) }
        router.register(RiskAPI.decisionStats) { try store.stats($0) }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func badRequest(_ reason: String) {
        context.metrics.counter("persona_risk_bad_requests_total", labels: [("reason", reason)], help: "Calls refused as invalid, by reason").increment()
    }

    func refuse(_ reason: String, _ message: String) -> RPCError {
        badRequest(reason)
        return RPCError(.invalidArgument, message)
    }

    // MARK: Score

    /// How long the feature read may take: the configured timeout, never more than half of
    /// what the caller still waits, so the decision comes in time when feature does not.
    func featureBudget() -> Duration { RPCContext.budget(settings.featureTimeout) }

    func validate(_ r: ScoreRequest) throws {
        if r.userId <= 0 { throw refuse("invalid_user", "user id must be positive, got \(r.userId)") }
        if !r.amount.isFinite || r.amount < 0 { throw refuse("invalid_amount", "amount must be finite and >= 0, got \(r.amount)") }
        if r.timestampMs < 0 { throw refuse("invalid_time", "timestamp must be >= 0 (0: now), got \(r.timestampMs)") }
        if r.kind.rawValue < 0 || r.kind.rawValue > 5 { throw refuse("invalid_kind", "unknown request kind \(r.kind.rawValue)") }
        if r.lines.count > 1000 { throw refuse("too_many_lines", "at most 1000 order lines, got \(r.lines.count)") }
        for text in [r.orderId, r.currency, r.deviceId, r.ip, r.paymentInstrument, r.channel, r.email, r.ipCountry, r.sessionId] where text.utf8.count > 256 {
            throw refuse("text_too_long", "a request's text fields are at most 256 bytes")
        }
    }

    /// The request as it is decided and stored: identifiers pseudonymised (the IP's country
    /// looked up first), the time and kind filled in.
    func prepared(_ request: ScoreRequest) -> ScoreRequest {
        var r = request
        if r.kind == .unspecified { r.kind = .order }
        if r.timestampMs == 0 { r.timestampMs = Self.nowMs() }
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

    func score(_ request: ScoreRequest) async throws -> ScoreResponse {
        let start = ContinuousClock.now
        try validate(request)
        let r = prepared(request)
        let (active, shadow) = rules.current
        let served = model.current
        var x = DecisionInputs(request: r)
        x.listMatch = lists.match(user: r.userId, device: r.deviceId, ip: r.ip, instrument: r.paymentInstrument, email: r.email, nowMs: Self.nowMs())
        var modelUsed: ServedModel.Loaded?
        var modelRow: [Float] = []
        if let hit = x.listMatch {
            context.metrics.counter("persona_risk_list_hits_total", labels: [("list", Names.list(hit.list)), ("field", Names.field(hit.field))], help: "Decisions made by a list entry").increment()
        } else {
            let names = namesRead.names(model: served, rules: active, shadow: shadow)
            x.featureNames = names
            if names.isEmpty {
                x.features = []
            } else {
                do {
                    var q = RequestFeaturesRequest()
                    q.event = Self.event(r)
                    q.names = names
                    let answer = try await feature.call(FeatureAPI.requestFeatures, q, timeout: featureBudget())
                    x.features = answer.values
                    x.knownUser = answer.knownUser
                    if let served, answer.schemaVersion == served.classifier.schemaVersion {
                        let row = Array(answer.values.prefix(served.classifier.features.count))
                        x.probability = served.classifier.probability(row)
                        modelRow = row
                        modelUsed = served
                    } else if served != nil {
                        context.logger.warning("the fraud model's feature schema \(served!.classifier.schemaVersion) is not the feature service's \(answer.schemaVersion): scoring without it")
                    }
                } catch {
                    x.features = nil
                    let code = (error as? RPCError)?.code.name ?? "UNKNOWN"
                    context.metrics.counter("persona_risk_feature_failures_total", labels: [("code", code)], help: "Feature reads that failed or timed out").increment()
                    context.metrics.counter("persona_risk_degraded_total", labels: [("policy", settings.failurePolicy.rawValue)], help: "Decisions made by the failure policy").increment()
                }
            }
        }
        let policy = DecisionPolicy(review: settings.reviewThreshold, decline: settings.declineThreshold, failOpen: settings.failurePolicy == .open)
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
        d.decidedMs = Self.nowMs()
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
                d = try await store.append(d, request: r)
            } catch {
                context.logger.error("decision for order '\(r.orderId)' not stored: \(error)")
                throw RPCError(.unavailable, "the decision could not be stored: \(error)")
            }
        }
        d.latencyUs = Self.micros(start.duration(to: .now))
        context.metrics.counter("persona_risk_decisions_total", labels: [("action", Names.action(d.action))], help: "Decisions answered, by action").increment()
        var response = ScoreResponse()
        response.decision = d
        return response
    }

    static func micros(_ d: Duration) -> UInt32 { UInt32(clamping: d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000) }

    /// The features one Score reads: the model's, in its order, then any other a rule reads.
    static func featureNames(model: Classifier?, rules: [RuleSet]) -> [String] {
        var names = model?.features ?? []
        var seen = Set(names)
        for set in rules {
            for n in set.slotNames where Decide.requestFields[n] == nil && seen.insert(n).inserted { names.append(n) }
        }
        return names
    }

    // MARK: Labels

    func label(_ request: LabelRequest) async throws -> LabelResponse {
        guard !request.orderId.isEmpty else { throw refuse("missing_order", "a label names an order") }
        guard Names.label(request.kind) != "unspecified" else { throw refuse("invalid_label", "label kind must be chargeback, confirmed_fraud, false_positive or legitimate") }
        guard request.source.utf8.count <= 256, request.note.utf8.count <= 4096 else { throw refuse("text_too_long", "source is at most 256 bytes, note at most 4096") }
        var user = request.userId
        if user == 0 {
            var q = QueryDecisionsRequest()
            q.orderId = request.orderId
            q.limit = 1
            q.withoutFeatures = true
            guard let d = try store.query(q).decisions.first else {
                throw RPCError(.notFound, "no decision for order '\(request.orderId)': give the user id to label it")
            }
            user = d.userId
        }
        guard user > 0 else { throw refuse("invalid_user", "user id must be positive") }
        let now = Self.nowMs()
        var e = Event()
        e.eventId = "label:\(request.orderId):\(Names.label(request.kind)):\(request.source)"
        e.kind = .label
        e.userId = user
        e.timestampMs = now
        var l = Label()
        l.orderId = request.orderId
        l.kind = request.kind
        l.source = request.source
        l.note = request.note
        e.label = l
        var append = AppendRequest()
        append.events = [e]
        // Into the log first: a label the log does not hold would never train a model.
        let answer = try await ingest.call(IngestAPI.append, append, timeout: .seconds(5))
        guard let status = answer.statuses.first, status.code != .rejected else {
            throw RPCError(.invalidArgument, "ingest refused the label: \(answer.statuses.first?.detail ?? "no status")")
        }
        let n = try await store.label(orderID: request.orderId, kind: request.kind, source: request.source, note: request.note, atMs: now)
        context.metrics.counter("persona_risk_labels_total", labels: [("label", Names.label(request.kind))], help: "Labels taken").increment()
        var response = LabelResponse()
        response.applied = true
        response.decisions = UInt32(n)
        response.offset = status.offset
        RPCContext.current?.audit("labelled order \(request.orderId) (user \(user)) \(Names.label(request.kind)) from \(request.source.isEmpty ? "-" : request.source): \(n) decisions")
        return response
    }

    // MARK: Rules

    /// Compiles `source` against every name a rule may read now: request fields and the
    /// feature service's features. While the feature service does not answer, the served
    /// model's features stand in, and a set naming anything else is refused UNAVAILABLE (it
    /// cannot be checked now) rather than called invalid.
    func compileRules(_ source: String) async throws -> Result<RuleSet, RuleSet.Invalid> {
        if let features = await featureNames.names(feature) {
            return RuleSet.compile(source, names: Decide.names(features: features))
        }
        let result = RuleSet.compile(source, names: Decide.names(features: model.current?.classifier.features ?? []))
        if case .failure(let invalid) = result, invalid.errors.contains(where: \.unknownName) {
            throw RPCError(.unavailable, "the feature service did not answer with its feature names, so the rules' names cannot be checked now; try again")
        }
        return result
    }

    func publish(_ source: String, shadow: Bool) async throws -> RuleSet {
        switch try await compileRules(source) {
        case .failure(let invalid):
            badRequest("invalid_rules")
            throw RPCError(.invalidArgument, "rules not valid:\n\(invalid.description)")
        case .success(var set):
            set.shadow = shadow
            set.publishedMs = Self.nowMs()
            set = try await rules.publish(set) { set in
                try await store.saveRuleSet(version: set.version, source: set.source, shadow: set.shadow, publishedMs: set.publishedMs)
            }
            context.metrics.gauge("persona_risk_rules_version", labels: [("set", shadow ? "shadow" : "active")], help: "Version of the rule set in force").set(Int64(set.version))
            context.logger.info("published \(shadow ? "shadow " : "")rules v\(set.version) (\(set.rules.count) rules)")
            RPCContext.current?.audit("published \(shadow ? "shadow " : "")rules v\(set.version) (\(set.rules.count) rules)")
            return set
        }
    }

    static func wire(_ e: RuleError) -> Wire.RuleError {
        var out = Wire.RuleError()
        out.line = UInt32(e.line)
        out.column = UInt32(e.column)
        out.message = e.message
        return out
    }

    static func info(_ set: RuleSet) -> RuleSetInfo {
        var i = RuleSetInfo()
        i.version = set.version
        i.source = set.source
        i.shadow = set.shadow
        i.publishedMs = set.publishedMs
        i.rules = set.described
        return i
    }

    /// Publishes the rule file at start and whenever its text changes (checked every 2 s).
    func followRulesFile(_ path: String) async throws {
        var last: String?
        while true {
            try Task.checkCancellation()
            if let text = try? String(contentsOfFile: path, encoding: .utf8), text != last {
                last = text
                if text != rules.current.active.source {
                    do {
                        _ = try await publish(text, shadow: false)
                    } catch {
                        context.logger.error("rule file \(path) not published: \(error)")
                    }
                }
            }
            try await Task.sleep(for: .seconds(2))
        }
    }

    // MARK: Lists

    func updateLists(_ request: UpdateListsRequest) async throws -> UpdateListsResponse {
        let now = Self.nowMs()
        func normalised(_ e: ListEntry) throws -> ListEntry {
            var e = e
            guard e.list == .block || e.list == .allow else { throw refuse("invalid_list", "list must be block or allow") }
            let value = e.value.trimmingCharacters(in: .whitespaces)
            guard !value.isEmpty, value.utf8.count <= 256 else { throw refuse("invalid_value", "a list value is 1...256 bytes") }
            switch e.field {
            case .user:
                guard let id = Int64(value), id > 0 else { throw refuse("invalid_value", "a user entry is a positive user id, got '\(value)'") }
                e.value = String(id)
            case .device, .ip, .instrument, .email:
                e.value = pseudonymizer.pseudonym(value)
            default:
                throw refuse("invalid_field", "field must be user, device, ip, instrument or email")
            }
            guard e.expiresMs >= 0 else { throw refuse("invalid_expiry", "expiry must be >= 0 (0: never)") }
            if e.addedMs == 0 { e.addedMs = now }
            return e
        }
        let add = try request.add.map(normalised)
        let remove = try request.remove.map(normalised)
        let (added, removed) = try await store.updateLists(add: add, remove: remove)
        lists.apply(add: add, remove: remove)
        var response = UpdateListsResponse()
        response.size = UInt32(lists.count)
        response.added = UInt32(added)
        response.removed = UInt32(removed)
        func described(_ e: ListEntry) -> String {
            "\(Names.list(e.list)) \(Names.field(e.field)) \(e.value)" + (e.reason.isEmpty ? "" : " (\(e.reason))") + (e.expiresMs > 0 ? " until \(e.expiresMs)" : "")
        }
        var what: [String] = []
        if !add.isEmpty { what.append("added " + add.map(described).joined(separator: ", ")) }
        if !remove.isEmpty { what.append("removed " + remove.map(described).joined(separator: ", ")) }
        RPCContext.current?.audit(what.joined(separator: "; "))
        return response
    }

    // MARK: Backtest

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
        let history = try store.history(fromMs: request.fromMs, toMs: request.toMs, limit: limit)
        let policy = DecisionPolicy(review: settings.reviewThreshold, decline: settings.declineThreshold, failOpen: settings.failurePolicy == .open)
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
            if let list = d.reasons.first(where: { $0.kind == .list }) {
                let parts = list.code.split(separator: ":")
                var e = ListEntry()
                e.list = parts.count > 1 ? Names.list(String(parts[1])) : .block
                e.field = parts.count > 2 ? Names.field(String(parts[2])) : .user
                e.reason = list.description
                x.listMatch = e
            }
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
                let fraud = Names.isFraud(d.label)
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
        response.current = DecisionStore.outcome(decisions: n, declined: current.declined, labelled: current.labelled, fraud: current.fraud, flagged: current.flagged, flaggedFraud: current.flaggedFraud)
        response.candidate = DecisionStore.outcome(decisions: n, declined: proposed.declined, labelled: proposed.labelled, fraud: proposed.fraud, flagged: proposed.flagged, flaggedFraud: proposed.flaggedFraud)
        return response
    }

    // MARK: Lifecycle

    public func runBackground() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await watcher.follow() }
            if let path = settings.rulesFile { group.addTask { try await followRulesFile(path) } }
            group.addTask { try await followErasures() }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Pseudonymises the decisions of users erased from the log. Where it stands in the log
    /// is kept with the decisions; on its first start it begins at the log's end (decisions
    /// stored before then belong to users not yet erased).
    func followErasures() async throws {
        var starts = try store.logOffsets()
        if starts == nil {
            let ends = try await erasures.endOffsets()
            try await store.setLogOffsets(ends)
            starts = ends
        }
        try await erasures.followErasures(from: starts!, progress: erased) { users, partition, next in
            let changed = try await store.erase(users.map { ($0, pseudonymizer.pseudonym(userID: $0)) }, partition: partition, next: next)
            lists.replace(try store.listEntries())
            context.metrics.counter("persona_risk_erasures_total", labels: [], help: "Users erased").increment(by: Int64(users.count))
            context.logger.info("pseudonymised \(changed) decision(s) of \(users.count) erased user(s)")
        }
    }

    public func close() async throws {
        store.close()
        await erasures.ingest.shutdown()
        await feature.shutdown()
        await ingest.shutdown()
        await modelClient.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        let m = model.current
        let (active, shadow) = rules.current
        return [
            ("model", m.map { "\($0.info.name)=\($0.info.version)" } ?? ""),
            ("rules", "\(active.version)\(shadow.map { ",shadow=\($0.version)" } ?? "")"),
            ("lists", "\(lists.count)"),
            ("failure_policy", settings.failurePolicy.rawValue),
            erased.check,
        ]
    }
}

/// The feature names a Score reads, kept while the model and rule sets stay the same (one
/// array shared by their decisions, not one built per call).
final class NamesRead: Sendable {
    private let last = Mutex<(key: [UInt32], names: [String])?>(nil)

    func names(model: ServedModel.Loaded?, rules: RuleSet, shadow: RuleSet?) -> [String] {
        let key = [model?.info.version ?? 0, model == nil ? 0 : 1, rules.version, shadow?.version ?? 0]
        if let l = last.withLock({ $0 }), l.key == key { return l.names }
        let names = RiskControlService.featureNames(model: model?.classifier, rules: [rules, shadow].compactMap { $0 })
        last.withLock { $0 = (key, names) }
        return names
    }
}

/// The fraud model scored with now, swapped whole when a new version is published.
final class ServedModel: Sendable {
    struct Loaded: Sendable {
        let info: ModelInfo
        let classifier: Classifier
        let shap: TreeSHAP?

        init(info: ModelInfo, classifier: Classifier) {
            self.info = info
            self.classifier = classifier
            if case .trees(let t) = classifier.learner { shap = TreeSHAP(t) } else { shap = nil }
        }

        /// The `count` features that pushed this row's score up the most, with their values
        /// (contribution: the feature's share of the log-odds, TreeSHAP or coefficient x value).
        func reasons(_ row: [Float], count: Int) -> [ReasonCode] {
            guard count > 0 else { return [] }
            let (_, attributions) = classifier.explain(row, shap: shap)
            let order = attributions.indices.filter { attributions[$0] > 0 }.sorted { attributions[$0] > attributions[$1] }.prefix(count)
            return order.map { i in
                var r = ReasonCode()
                r.kind = .model
                r.code = classifier.features[i]
                r.value = Double(row[i])
                r.contribution = Double(attributions[i])
                r.description = "\(classifier.features[i]) = \(Self.format(row[i])) (+\(String(format: "%.2f", attributions[i])) log-odds)"
                return r
            }
        }

        static func format(_ v: Float) -> String { v == v.rounded() && abs(v) < 1e9 ? String(Int64(v)) : String(format: "%.3g", v) }
    }

    private let loaded = Mutex<Loaded?>(nil)

    var current: Loaded? { loaded.withLock { $0 } }

    func set(_ l: Loaded) { loaded.withLock { $0 = l } }
}

/// The active and shadow rule sets, with the version counter; the stored sets are compiled
/// on start (leniently: they were validated when published).
final class RuleBook: Sendable {
    private let state: Mutex<(active: RuleSet, shadow: RuleSet?, latest: UInt32)>
    private let publishing = AsyncLock()

    init(stored: [DecisionStore.StoredRuleSet]) throws {
        var active = RuleSet.empty
        var shadow: RuleSet?
        for s in stored {
            let set = Self.lenient(s)
            if s.shadow { shadow = set.rules.isEmpty ? nil : set } else { active = set }
        }
        state = Mutex((active, shadow, stored.map(\.version).max() ?? 0))
    }

    /// A stored set compiled with every unknown name taken as a numeric feature.
    static func lenient(_ s: DecisionStore.StoredRuleSet) -> RuleSet {
        var names = Decide.requestFields
        // Names the set reads that are not request fields are features (numbers).
        if let tokens = try? Lexer.tokens(s.source) {
            for t in tokens { if case .name(let n) = t.kind, names[n] == nil { names[n] = .number } }
        }
        var set = (try? RuleSet.compile(s.source, names: names).get()) ?? RuleSet.empty
        set.version = s.version
        set.shadow = s.shadow
        set.publishedMs = s.publishedMs
        set.source = s.source
        return set
    }

    var current: (active: RuleSet, shadow: RuleSet?) { state.withLock { ($0.active, $0.shadow) } }

    /// Gives `set` the next version, stores it with `save`, then puts it in force (an empty
    /// shadow set withdraws the shadow rules).
    func publish(_ set: RuleSet, save: (RuleSet) async throws -> Void) async throws -> RuleSet {
        try await publishing.run {
            var set = set
            set.version = state.withLock { $0.latest } + 1
            try await save(set)
            state.withLock { s in
                s.latest = set.version
                if set.shadow { s.shadow = set.rules.isEmpty ? nil : set } else { s.active = set }
            }
            return set
        }
    }
}

/// One caller at a time through `run` (publishing a rule set: number, store, swap).
final class AsyncLock: Sendable {
    private let busy = Mutex<(held: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = busy.withLock { b -> Bool in
                if b.held {
                    b.waiting.append(c)
                    return false
                }
                b.held = true
                return true
            }
            if go { c.resume() }
        }
        defer {
            let next = busy.withLock { b -> CheckedContinuation<Void, Never>? in
                if b.waiting.isEmpty {
                    b.held = false
                    return nil
                }
                return b.waiting.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}

/// The feature service's catalogue of names (what rules may read), fetched once it answers.
final class FeatureNames: Sendable {
    private let names = Mutex<[String]?>(nil)

    /// The feature service's names, asked once and kept; nil while it has not answered within
    /// the call's budget (at most 10 s).
    func names(_ feature: RPCClient) async -> [String]? {
        if let known = names.withLock({ $0 }) { return known }
        guard let answer = try? await feature.call(FeatureAPI.getFeatures, GetFeaturesRequest(), timeout: RPCContext.budget(.seconds(10))) else { return nil }
        names.withLock { $0 = answer.names }
        return answer.names
    }
}
