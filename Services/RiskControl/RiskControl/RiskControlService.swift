import Classifiers
import Foundation
import Logging
import Math
import PersonalData
public import RPC
import Rules
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
/// once the decision is durable in the decision log (`DecisionLog`). The decisions are
/// queried from a view of that log (`DecisionDatabase`, SQLite) built off the request path.
public struct RiskControlService: PersonaService {
    public static let peer = Peer.riskControl

    let context: ServiceContext
    let metrics: RiskMetrics
    let settings: RiskSettings
    /// The rule sets and lists in force, as far as it has applied the decision log, and the
    /// erasure follower's offsets.
    let database: DecisionDatabase
    /// What was decided, labelled and erased, in order: decisions are durable once here.
    let decisionLog: DecisionLog
    /// The decisions as the risk team queries them, built from `decisionLog`.
    let view: DecisionDatabase
    let viewProgress = DecisionViewProgress()
    let lists = RiskLists()
    let rules: RuleBook
    let served = ServedClassifier()
    let watcher: ModelWatcher
    let feature: FeatureReplicas
    let ingest: RPCClient
    /// Reads the log's erasure events only.
    let erasures: LogConsumer
    let erased = ErasureProgress()
    let modelClient: RPCClient
    let pseudonymizer: Pseudonymizer
    let knownFeatures = KnownFeatureNames()
    let scoreNames = ScoreFeatureNames()

    public init(context: ServiceContext, settings: RiskSettings) async throws {
        self.context = context
        self.settings = settings
        let metrics = RiskMetrics(context.metrics)
        self.metrics = metrics
        database = try DecisionDatabase(path: context.dataDirectory.path + "/decisions.db") { rows, _, queued in
            metrics.committed(rows: rows, queued: queued)
        }
        view = try DecisionDatabase(path: context.dataDirectory.path + "/decision-view.db", synced: false) { rows, _, queued in
            metrics.viewApplied(rows: rows, queued: queued)
        }
        decisionLog = try DecisionLog(settings.log, directory: context.dataDirectory.path + "/decision-log", replicas: settings.logReplicas)
        // What the log holds was answered before: queries wait for the view to hold it.
        viewProgress.answered(through: try await decisionLog.end())
        lists.replace(try database.listEntries())
        rules = RuleBook(stored: try database.ruleSets())
        pseudonymizer = Pseudonymizer(
            key: try Pseudonymizer.loadKey(
                environment: ProcessInfo.processInfo.environment, keyFile: settings.pseudonymKeyFile,
                dataDirectory: context.dataDirectory.path))
        feature = FeatureReplicas(settings.featureReplicas, defaultTimeout: settings.featureTimeout)
        ingest = RPCClient(host: settings.ingestHost, port: settings.ingestPort)
        erasures = LogConsumer(
            host: settings.ingestHost, port: settings.ingestPort, readEvents: 1000, readWait: .seconds(5), logger: context.logger)
        modelClient = RPCClient(host: settings.modelHost, port: settings.modelPort, defaultTimeout: .seconds(30))
        let served = self.served
        let wanted = settings.modelName
        let logger = context.logger
        watcher = ModelWatcher(client: modelClient, logger: context.logger, accept: { $0 == .gbdt || $0 == .logistic }) { info, bytes in
            guard info.name == wanted else { return }
            let classifier = try Classifier.decode(bytes)
            served.set(ServedClassifier.Loaded(info: info, classifier: classifier))
            metrics.modelVersion(info)
            logger.info("scoring with \(info.name) v\(info.version) (\(classifier.features.count) features)")
        }
    }

    public func register(in router: inout Router) {
        router.register(RiskAPI.score) { try await score($0) }
        router.register(RiskAPI.queryDecisions) { request in
            try await awaitView()
            // Devices and IPs are stored pseudonymised: a raw one is compared as its pseudonym.
            var request = request
            if !request.device.isEmpty { request.device = pseudonymizer.pseudonym(request.device) }
            if !request.ip.isEmpty { request.ip = pseudonymizer.pseudonym(request.ip) }
            do {
                let (decisions, next) = try view.query(request)
                var response = QueryDecisionsResponse()
                response.decisions = decisions
                response.nextPageToken = next
                return response
            } catch let e as DecisionDatabase.BadQuery {
                metrics.badRequest("page_token")
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
                guard let stored = try database.ruleSets().first(where: { $0.version == request.version }) else {
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
            response.entries = lists.all(includeExpired: request.includeExpired, nowMs: context.clock.nowMs).filter {
                (request.list == .unspecified || $0.list == request.list) && (request.field == .unspecified || $0.field == request.field)
            }
            return response
        }
        router.register(RiskAPI.backtest) { try await backtest($0) }
        router.register(RiskAPI.decisionStats) { request in
            try await awaitView()
            return try view.stats(request)
        }
        router.register(RiskAPI.queryCases) { try await queryCases($0) }
        router.register(RiskAPI.getCase) { try await getCase($0) }
        router.register(RiskAPI.updateCase) { try await updateCase($0) }
        router.register(RiskAPI.takeNextCase) { try await takeNextCase($0) }
        router.register(RiskAPI.replay) { try await replay($0) }
    }

    func refuse(_ reason: String, _ message: String) -> RPCError {
        metrics.badRequest(reason)
        return RPCError(.invalidArgument, message)
    }

    // MARK: Lifecycle

    public func runBackground() async throws {
        try await moveLegacyDecisions()
        try await moveLegacySettings()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await buildView() }
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
        var starts = try database.logOffsets()
        if starts == nil {
            let ends = try await erasures.endOffsets()
            try await database.setLogOffsets(ends)
            starts = ends
        }
        try await erasures.followErasures(from: starts!, progress: erased) { users, partition, next in
            var changed = 0
            for user in users { changed += try await eraseDecisions(of: user) }
            // List entries naming them go, with the follower's offset in the same commit.
            try await database.forgetListed(users, partition: partition, next: next)
            lists.replace(try database.listEntries())
            metrics.erased(users.count)
            context.logger.info("pseudonymised \(changed) decision(s) of \(users.count) erased user(s)")
        }
    }

    /// Replaces `user`'s decisions in the decision log by pseudonymised copies carried by an
    /// erasure record (the earlier records are removed from the log); the view applies it.
    func eraseDecisions(of user: Int64) async throws -> Int {
        try await awaitView(limit: .seconds(30))
        let pseudonym = pseudonymizer.pseudonym(userID: user)
        var erasure = DecisionErasure()
        erasure.userId = user
        erasure.pseudonym = pseudonym
        erasure.decisions = try view.decisions(ofUser: user).map { record in
            var r = record
            r.decision?.userId = pseudonym
            r.request?.userId = pseudonym
            return r
        }
        let offset = try await decisionLog.erase(erasure, id: "erasure-\(user)-\(context.clock.nowMs)")
        viewProgress.answered(offset)
        return erasure.decisions.count
    }

    public func close() async throws {
        database.close()
        view.close()
        await decisionLog.close()
        await erasures.ingest.shutdown()
        await feature.shutdown()
        await ingest.shutdown()
        await modelClient.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        let m = served.current
        let (active, shadow) = rules.current
        return [
            ("model", m.map { "\($0.info.name)=\($0.info.version)" } ?? ""),
            ("rules", "\(active.version)\(shadow.map { ",shadow=\($0.version)" } ?? "")"),
            ("lists", "\(lists.count)"),
            ("failure_policy", settings.failurePolicy.rawValue),
            ("decision_log", "\(decisionLog.description) view=\(viewProgress.applied)"),
            erased.check,
        ]
    }
}
