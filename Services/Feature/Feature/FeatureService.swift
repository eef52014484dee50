import ArgumentParser
import Classifiers
import DataStructures
import Foundation
import Logging
import Prometheus
public import RPC
public import ServiceKit
import Store
import Wire

/// The feature service: folds the ingest log into user profiles, item profiles and risk
/// features, and serves them. It reads every partition from its own offsets (long poll),
/// snapshots state and offsets together, and on start resumes from the snapshot plus the
/// log, so a restart or a kill -9 ends in the state an uninterrupted run would have.
public struct FeatureService: PersonaService {
    public static let peer = Peer.feature

    let context: ServiceContext
    let settings: FeatureSettings
    let live: LiveFeatures
    let consumer: LogConsumer
    var ingest: RPCClient { consumer.ingest }
    let metrics: FeatureMetrics
    let exports: TrainingExports
    let snapshotPath: String
    /// Follows the published segments and user classifiers (propensity, churn).
    let segments: ModelWatcher
    let modelClient: RPCClient
    /// The partitions whose users this replica serves.
    let ownership: PartitionOwnership
    let nameKeys = FeatureNameKeys()

    public init(context: ServiceContext, settings: FeatureSettings) async throws {
        self.context = context
        self.settings = settings
        self.snapshotPath = context.dataDirectory.file("state.snapshot")
        let (live, restored) = try LiveFeatures.open(snapshotPath: snapshotPath)
        self.live = live
        let summary = live.summary
        if restored {
            context.logger.info("restored \(summary.users) users and \(summary.items) items at offsets \(summary.offsets)")
        }
        self.consumer = LogConsumer(
            host: settings.ingestHost, port: settings.ingestPort, readEvents: settings.readEvents, readWait: settings.readWait,
            logger: context.logger)
        self.metrics = FeatureMetrics(context.metrics)
        self.exports = TrainingExports()
        self.ownership = PartitionOwnership(home: settings.partitions)
        modelClient = RPCClient(host: settings.modelHost, port: settings.modelPort)
        let logger = context.logger
        segments = ModelWatcher(client: modelClient, logger: context.logger, accept: { [.kmeans, .gbdt, .logistic].contains($0) }) {
            [live] info, bytes in
            if info.kind == .kmeans {
                // One segmentation serves the profiles: the one named `segments`.
                guard info.name == "segments" else { return }
                let segmentation = try Segmentation.decode(bytes)
                try live.setSegmentation(segmentation)
                logger.info("profiles carry segments v\(info.version) (\(segmentation.k) segments)")
                return
            }
            // User-level classifiers score every profile; fraud models score orders (risk-control's).
            let classifier = try Classifier.decode(bytes)
            guard ["propensity", "churn"].contains(classifier.target) else { return }
            let horizon = info.params.first { $0.key == "horizon_days" }.flatMap { UInt32($0.value) } ?? 30
            try live.setScorer(name: info.name, classifier, horizonDays: horizon)
            logger.info("profiles carry \(info.name) v\(info.version) (\(classifier.target), \(horizon) days)")
        }
    }

    public func register(in router: inout Router) {
        // Point lookups answer on the event loop (short read lock, no I/O); the rest run as tasks.
        router.registerInline(FeatureAPI.getProfile) { request in
            try serves(request.userId)
            var response = GetProfileResponse()
            if let profile = live.profile(request.userId, withMetItems: request.withMetItems, recommendOnly: request.recommendOnly) {
                response.found = true
                response.profile = profile
            }
            return response
        }
        router.registerInline(FeatureAPI.getFeatures) { try getFeatures($0) }
        router.registerInline(FeatureAPI.requestFeatures) { try requestFeatures($0) }
        router.registerInline(FeatureAPI.getItems) { request in
            guard request.itemIds.count <= 10_000 else { throw RPCError(.invalidArgument, "at most 10000 items per call") }
            var response = GetItemsResponse()
            if request.catalogue && request.itemIds.isEmpty {
                (response.items, response.more) = live.catalogue(
                    after: request.afterId, limit: request.limit == 0 ? 1000 : min(Int(request.limit), 10_000))
                return response
            }
            let (found, missing) = live.items(request.itemIds)
            response.items = found
            response.missing = missing
            return response
        }
        router.register(FeatureAPI.topItems) { try topItems($0) }
        router.register(FeatureAPI.segmentMembers) { try segmentMembers($0) }
        router.register(FeatureAPI.exportTraining) { try await exportTraining($0) }
        router.register(FeatureAPI.deleteUser) { try await deleteUser($0) }
        router.registerInline(FeatureAPI.ownership) { _ in ownership.response }
        router.register(FeatureAPI.defineAudience) { try await defineAudience($0) }
        router.register(FeatureAPI.listAudiences) { try listAudiences($0) }
        router.register(FeatureAPI.audienceMembers) { try audienceMembers($0) }
        router.register(FeatureAPI.audienceOverlap) { try audienceOverlap($0) }
    }

    /// Throws UNAVAILABLE, counted, when `user`'s partition is not served here.
    func serves(_ user: Int64) throws {
        do { try ownership.check(user: user) } catch {
            metrics.misrouted()
            throw error
        }
    }

    /// Positions of `names` in the catalogue, or INVALID_ARGUMENT naming the unknown ones.
    func positions(_ names: [String]) throws -> [Int] {
        switch FeatureCatalog.resolve(names) {
        case .success(let p): return p
        case .failure(let unknown):
            metrics.badRequest("unknown_feature")
            throw RPCError(
                .invalidArgument,
                """
                unknown feature names: \(unknown.names.joined(separator: ", ")) (schema version \
                \(FeatureCatalog.schemaVersion) has \(FeatureCatalog.names.count) features)
                """
            )
        }
    }

    func requestFeatures(_ request: RequestFeaturesRequest) throws -> RequestFeaturesResponse {
        let positions: [Int]
        if request.names.isEmpty && request.namesKey != 0 {
            guard let kept = nameKeys[request.namesKey] else {
                throw RPCError(.failedPrecondition, "no feature names are kept under key \(request.namesKey): send the names with it")
            }
            positions = kept
        } else {
            if request.namesKey != 0 && request.namesKey != StableHash.key(of: request.names) {
                metrics.badRequest("wrong_names_key")
                throw RPCError(.invalidArgument, "names_key \(request.namesKey) is not the key of the names sent with it")
            }
            positions = try self.positions(request.names)
            if request.namesKey != 0 { nameKeys.keep(positions, under: request.namesKey) }
        }
        guard let event = request.event, event.userId > 0 else {
            metrics.badRequest("invalid_user")
            throw RPCError(.invalidArgument, "the request's event needs a positive user id")
        }
        guard [.purchase, .payment, .login, .register, .refund].contains(event.kind) else {
            metrics.badRequest("invalid_kind")
            throw RPCError(
                .invalidArgument,
                "a request's event is a purchase, payment, login, register or refund, not \(event.kind.name ?? "\(event.kind.rawValue)")")
        }
        try serves(event.userId)
        let (values, known) = live.requestFeatures(event, positions: positions)
        var response = RequestFeaturesResponse()
        response.schemaVersion = FeatureCatalog.schemaVersion
        // Asked by key alone, the caller has the names.
        if !request.names.isEmpty || request.namesKey == 0 { response.names = positions.map { FeatureCatalog.names[$0] } }
        response.values = values
        response.knownUser = known
        return response
    }

    func getFeatures(_ request: GetFeaturesRequest) throws -> GetFeaturesResponse {
        guard request.userIds.count <= 10_000 else { throw RPCError(.invalidArgument, "at most 10000 users per call") }
        let positions = try positions(request.names)
        for user in request.userIds { try serves(user) }
        var response = GetFeaturesResponse()
        response.schemaVersion = FeatureCatalog.schemaVersion
        response.names = positions.map { FeatureCatalog.names[$0] }
        response.rows = live.features(request.userIds, positions: positions)
        return response
    }

    func topItems(_ request: TopItemsRequest) throws -> TopItemsResponse {
        let window: Window?
        switch request.window {
        case "", "24h": window = .hours24
        case "lifetime": window = nil
        default:
            guard let w = Window(name: request.window) else {
                metrics.badRequest("bad_window")
                throw RPCError(.invalidArgument, "window '\(request.window)' is not one of 1h, 24h, 7d, 30d, lifetime")
            }
            window = w
        }
        guard let by = request.by.isEmpty ? .views : ItemRanking(rawValue: request.by) else {
            metrics.badRequest("bad_ranking")
            throw RPCError(
                .invalidArgument, "by '\(request.by)' is not one of \(ItemRanking.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var response = TopItemsResponse()
        response.items = live.topItems(
            category: request.categoryId, window: window, by: by, limit: request.limit == 0 ? 10 : min(Int(request.limit), 1000))
        return response
    }

    func segmentMembers(_ request: SegmentMembersRequest) throws -> SegmentMembersResponse {
        var after: Int64 = 0
        if !request.pageToken.isEmpty {
            guard let id = Int64(request.pageToken) else {
                throw RPCError(.invalidArgument, "page token '\(request.pageToken)' is not one this service gave")
            }
            after = id
        }
        let size = request.pageSize == 0 ? 100 : min(Int(request.pageSize), 10_000)
        let audience: LiveFeatures.Audience =
            !request.score.isEmpty
            ? .score(request.score, atLeast: request.minProbability)
            : !request.tag.isEmpty ? .tag(request.tag) : .segment(request.segmentId)
        guard let (ids, more) = live.members(audience, afterID: after, limit: size) else {
            throw RPCError(
                .notFound, "no published user classifier named '\(request.score)' (train one: persona train propensity or churn)")
        }
        var response = SegmentMembersResponse()
        response.userIds = ids
        if more, let last = ids.last { response.nextPageToken = String(last) }
        return response
    }

    func deleteUser(_ request: DeleteUserRequest) async throws -> DeleteUserResponse {
        guard request.userId > 0 else { throw RPCError(.invalidArgument, "user id must be positive") }
        try serves(request.userId)
        // Every event of the user already in the log is below these offsets.
        let ends = try await consumer.endOffsets(timeout: nil)
        var response = DeleteUserResponse()
        response.deleted = live.erase(request.userId, ends: ends)
        // The erasure is durable before it is acknowledged.
        try writeSnapshot(force: true)
        metrics.erased()
        RPCContext.current?.audit("erased user \(request.userId)\(response.deleted ? "" : " (held nothing)")")
        return response
    }

    func exportTraining(_ request: ExportTrainingRequest) async throws -> ExportTrainingResponse {
        try await exports.page(request, ingest: ingest, erased: live.erased)
    }

    // MARK: Consuming

    public func runBackground() async throws {
        let partitions = try await consumer.partitions()
        guard live.adopt(partitions: partitions) else {
            throw ServiceError(
                """
                the snapshot has \(live.summary.offsets.count) partitions but ingest has \(partitions); remove \
                \(snapshotPath) to rebuild from the log
                """
            )
        }
        try adoptOwnership(partitions: partitions)
        context.logger.info(
            "consuming \(partitions) partitions from \(settings.ingestHost):\(settings.ingestPort), \(ownership.summary)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<partitions {
                group.addTask { try await consume(partition: p) }
            }
            if !settings.peers.isEmpty {
                group.addTask { try await watchPeers(partitions: partitions) }
            }
            group.addTask { try await measureAudiences() }
            group.addTask {
                // Segments are optional: without a model service the profiles carry none.
                do { try await segments.follow() } catch is CancellationError {}
            }
            group.addTask {
                var written = live.summary.version
                var pause = Duration.zero
                while true {
                    try await Task.sleep(for: Self.snapshotDelay(interval: settings.snapshotInterval, lastEncoding: pause))
                    if let (v, encoding) = try writeSnapshot(since: written) {
                        written = v
                        pause = encoding
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func consume(partition p: Int) async throws {
        try await consumer.consume(partition: p, offset: { live.offset(p) }, failed: { _ in metrics.readError() }) { response, from in
            let seen = live.fold(response.events, partition: p, next: response.nextOffset)
            metrics.observed(seen)
            if let erasures = seen[.erasure] {
                // A forgotten user stays forgotten across a restart from the snapshot.
                metrics.erased(erasures)
                do { try writeSnapshot(force: true) } catch { context.logger.error("snapshot after an erasure failed: \(error)") }
            }
            metrics.consumed(events: response.events.count, partition: p, lag: response.endOffset &- max(response.nextOffset, from))
            if response.nextOffset >= response.endOffset { ownership.caughtUp(p) }
        }
    }

    // MARK: Replicas

    /// Serves the home partitions (`--partitions`): a snapshot holding more users keeps only
    /// theirs; one lacking some of them is set aside and the state rebuilt from the log.
    private func adoptOwnership(partitions: Int) throws {
        guard ownership.adopt(partitions: partitions) else {
            let asked = PartitionSet.format(settings.partitions ?? [])
            throw ServiceError("--partitions \(asked) names partitions ingest's \(partitions) lack")
        }
        let home = settings.partitions.flatMap { $0.count == partitions ? nil : $0 }
        let had = live.owned
        if had == home { return }
        if let home, had == nil || had!.isSuperset(of: home) {
            live.own(home)
            return
        }
        let wanted = PartitionSet.format(home ?? Set(0..<partitions))
        context.logger.warning("the snapshot holds partitions \(PartitionSet.format(had ?? [])) only: rebuilding \(wanted) from the log")
        _ = live.replace(with: live.rebuilding(owning: home), evenIfBehind: true)
    }

    /// Every half second asks each peer replica which partitions it serves; takes over the
    /// partitions no live replica holds (when this replica has the lowest home partition of
    /// the live ones) and gives back those a returned replica serves again.
    private func watchPeers(partitions: Int) async throws {
        let peers = settings.peers.map { RPCClient(host: $0.host, port: $0.port, defaultTimeout: .seconds(2)) }
        // A peer not heard from yet has the takeover time to start.
        var heard = [ContinuousClock.Instant](repeating: .now, count: peers.count)
        var answers = [OwnershipResponse?](repeating: nil, count: peers.count)
        do {
            while true {
                try await Task.sleep(for: .milliseconds(500))
                for (i, peer) in peers.enumerated() {
                    if let answer = try? await peer.call(FeatureAPI.ownership, OwnershipRequest(), timeout: .milliseconds(500)) {
                        answers[i] = answer
                        heard[i] = .now
                    }
                }
                let live = peers.indices.filter { heard[$0].duration(to: .now) < settings.takeoverAfter }.compactMap { answers[$0] }
                let plan = TakeoverPlan(mine: ownership.response, live: live)
                if !plan.release.isEmpty { try release(plan.release) }
                guard !plan.takeOver.isEmpty else { continue }
                do { try await takeOver(plan.takeOver, partitions: partitions) } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    ownership.startRebuilding([])
                    context.logger.error("taking over partitions \(PartitionSet.format(plan.takeOver)) failed: \(error)")
                }
            }
        } catch {
            for peer in peers { await peer.shutdown() }
            throw error
        }
    }

    /// Rebuilds the state from the log beside the live one, owning `taken` as well, and swaps
    /// it in once it has read as far as the live one: the taken partitions' users then have
    /// the profiles one replica folding the whole log has.
    func takeOver(_ taken: Set<Int>, partitions: Int) async throws {
        let start = ContinuousClock.now
        ownership.startRebuilding(taken)
        let owned = (ownership.current.serving ?? Set(0..<partitions)).union(taken)
        context.logger.warning("taking over partitions \(PartitionSet.format(taken)): rebuilding from the log")
        let rebuilt = live.rebuilding(owning: owned.count == partitions ? nil : owned)
        repeat {
            for p in 0..<partitions { try await read(into: rebuilt, partition: p, until: live.offset(p)) }
        } while !live.replace(with: rebuilt)
        ownership.tookOver(taken)
        try writeSnapshot(force: true)
        let seconds = start.duration(to: .now) / .seconds(1)
        metrics.tookOver(partitions: taken.count, seconds: seconds)
        context.logger.warning("took over partitions \(PartitionSet.format(taken)) in \(String(format: "%.1f", seconds)) s")
    }

    /// Folds partition `p` into `state` from its offset until it reaches `target` or the log's end.
    private func read(into state: LiveFeatures, partition p: Int, until target: UInt64) async throws {
        while case let from = state.offset(p), from < target {
            let response = try await consumer.read(partition: p, from: from, maxEvents: 10_000)
            guard !response.events.isEmpty || response.nextOffset > from else { return }
            state.fold(response.events, partition: p, next: response.nextOffset)
        }
    }

    /// Gives back `partitions` (their home replica serves them again): their users leave.
    private func release(_ partitions: Set<Int>) throws {
        ownership.release(partitions)
        live.own(ownership.current.serving)
        try writeSnapshot(force: true)
        context.logger.info("gave back partitions \(PartitionSet.format(partitions)): \(ownership.summary)")
    }

    /// The wait before the next snapshot. Folding waits while a snapshot is encoded, so
    /// snapshots come at most often enough that it waits a tenth of the time (a million
    /// users take seconds to encode).
    static func snapshotDelay(interval: Duration, lastEncoding: Duration) -> Duration {
        max(interval, lastEncoding * 9)
    }

    /// Writes a snapshot when the state changed since `version`; returns the version written
    /// and how long encoding it took (folding waited that long).
    @discardableResult
    func writeSnapshot(since version: UInt64? = nil, force: Bool = false) throws -> (version: UInt64, encoding: Duration)? {
        guard let w = try live.writeSnapshot(to: snapshotPath, ifChangedSince: force ? nil : version) else { return nil }
        metrics.snapshot(bytes: w.bytes, encoding: w.encoding, writing: w.writing)
        return (w.version, w.encoding)
    }

    public func close() async throws {
        try writeSnapshot(force: true)
        await ingest.shutdown()
        await modelClient.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        let s = live.summary
        return [
            ("partitions", ownership.summary), ("users", "\(s.users)"), ("items", "\(s.items)"),
            ("offsets", s.offsets.map(String.init).joined(separator: ",")),
            (
                "event_time",
                s.watermarkMs == 0 ? "none" : ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(s.watermarkMs) / 1000))
            ),
        ]
    }
}
