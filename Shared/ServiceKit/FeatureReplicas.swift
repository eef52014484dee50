import DataStructures
public import RPC
import Synchronization
public import Wire

/// The feature service as its callers reach it: one replica, or several that each serve the
/// users of some of the log's partitions (docs/SCALING.md). A call about a user goes to the
/// replica serving the user's partition, learned from each replica's Feature/Ownership and
/// asked again when a replica cannot be reached or answers that it does not serve the
/// partition; a call about items goes to any replica (each folds every partition's items).
/// While a partition is being taken over, a call about one of its users is retried until
/// its deadline and then fails UNAVAILABLE.
public final class FeatureReplicas: Sendable {
    public let replicas: [RPCClient]

    private struct Routes {
        var partitions = 0
        /// The replica serving each partition (nil: none does now).
        var owner: [Int?] = []
        var learnedAt: ContinuousClock.Instant?
        /// When each replica last answered Feature/Ownership.
        var answeredAt: [ContinuousClock.Instant?] = []
        /// Why the replicas that did not answer the last time did not (for errors).
        var silent = ""
    }

    private let routes = Mutex(Routes())
    /// How long a learned routing table is trusted before it is asked again (a replica given
    /// back its partitions is found within this time).
    static let refreshEvery: Duration = .seconds(5)
    /// How long a replica that stops answering keeps the partitions it last served: a busy
    /// replica's calls are still answered; a dead one's partitions are not served in that time
    /// anyway, since a takeover waits longer (`--takeover-seconds` and the rebuild).
    static let grace: Duration = .seconds(3)

    public init(_ addresses: [(host: String, port: Int)], defaultTimeout: Duration? = .seconds(30)) {
        precondition(!addresses.isEmpty, "at least one feature replica")
        replicas = addresses.map { RPCClient(host: $0.host, port: $0.port, defaultTimeout: defaultTimeout) }
    }

    /// Calls the replica serving `user`'s partition.
    public func call<Request, Response>(
        _ method: Method<Request, Response>, _ request: Request, user: Int64, timeout: Duration? = nil
    ) async throws -> Response {
        guard replicas.count > 1 else { return try await replicas[0].call(method, request, timeout: timeout) }
        return try await retrying(timeout: timeout) { timeout in
            try await replicas[try await replica(for: user, timeout: timeout)].call(method, request, timeout: timeout)
        }
    }

    /// Calls any replica that answers (items, catalogue, training export).
    public func call<Request, Response>(_ method: Method<Request, Response>, _ request: Request, timeout: Duration? = nil) async throws
        -> Response
    {
        var failure: RPCError?
        for client in replicas {
            do {
                return try await client.call(method, request, timeout: timeout)
            } catch let error as RPCError where error.code == .unavailable {
                failure = error
            }
        }
        throw failure!
    }

    /// GetFeatures for users served by different replicas: each replica asked for its users,
    /// the rows put back in the order asked.
    public func features(_ request: GetFeaturesRequest, timeout: Duration? = nil) async throws -> GetFeaturesResponse {
        guard replicas.count > 1, !request.userIds.isEmpty else { return try await call(FeatureAPI.getFeatures, request, timeout: timeout) }
        return try await retrying(timeout: timeout) { timeout in
            var byReplica: [Int: [Int]] = [:]
            for (k, user) in request.userIds.enumerated() {
                byReplica[try await replica(for: user, timeout: timeout), default: []].append(k)
            }
            var merged = GetFeaturesResponse()
            merged.rows = [FeatureRow](repeating: FeatureRow(), count: request.userIds.count)
            for (i, positions) in byReplica {
                var part = request
                part.userIds = positions.map { request.userIds[$0] }
                let answer = try await replicas[i].call(FeatureAPI.getFeatures, part, timeout: timeout)
                (merged.schemaVersion, merged.names) = (answer.schemaVersion, answer.names)
                for (row, k) in zip(answer.rows, positions) { merged.rows[k] = row }
            }
            return merged
        }
    }

    /// SegmentMembers over the replicas serving the partitions: each answers for its own
    /// users, in id order, and the pages merge into one.
    public func segmentMembers(_ request: SegmentMembersRequest, timeout: Duration? = nil) async throws -> SegmentMembersResponse {
        guard replicas.count > 1 else { return try await replicas[0].call(FeatureAPI.segmentMembers, request, timeout: timeout) }
        let (ids, next) = try await mergedPages(pageSize: request.pageSize, timeout: timeout) { client, timeout in
            let page = try await client.call(FeatureAPI.segmentMembers, request, timeout: timeout)
            return (page.userIds, !page.nextPageToken.isEmpty)
        }
        var response = SegmentMembersResponse()
        (response.userIds, response.nextPageToken) = (ids, next)
        return response
    }

    /// One page of user ids from every replica serving the partitions, merged: the first
    /// `pageSize` in id order, and the token of the next page.
    private func mergedPages(
        pageSize: UInt32, timeout: Duration?, _ page: (RPCClient, Duration) async throws -> (ids: [Int64], more: Bool)
    ) async throws -> ([Int64], String) {
        let size = pageSize == 0 ? 100 : min(Int(pageSize), 10_000)
        return try await retrying(timeout: timeout) { timeout in
            var ids = Set<Int64>()
            var more = false
            for i in try await serving(timeout: timeout) {
                let answer = try await page(replicas[i], timeout)
                ids.formUnion(answer.ids)
                more = more || answer.more
            }
            let first = Array(ids.sorted().prefix(size))
            return (first, (more || ids.count > size) ? first.last.map(String.init) ?? "" : "")
        }
    }

    /// The replicas serving every partition now (each once), or UNAVAILABLE while one is
    /// being taken over: what a call over all users asks.
    private func serving(timeout: Duration) async throws -> [Int] {
        let (_, owner) = try await table(timeout: timeout)
        if let unserved = owner.firstIndex(of: nil) {
            throw RPCError(.unavailable, "no feature replica serves partition \(unserved) now (one is taking it over)")
        }
        return Set(owner.compactMap { $0 }).sorted()
    }

    /// ListAudiences over the replicas: each audience's size (and each measured size) is the
    /// sum of the replicas' sizes among their own users.
    public func listAudiences(_ request: ListAudiencesRequest, timeout: Duration? = nil) async throws -> ListAudiencesResponse {
        guard replicas.count > 1 else { return try await replicas[0].call(FeatureAPI.listAudiences, request, timeout: timeout) }
        return try await retrying(timeout: timeout) { timeout in
            var merged: [String: AudienceInfo] = [:]
            for i in try await serving(timeout: timeout) {
                for a in try await replicas[i].call(FeatureAPI.listAudiences, request, timeout: timeout).audiences {
                    guard var m = merged[a.name] else {
                        merged[a.name] = a
                        continue
                    }
                    m.size += a.size
                    var byHour = Dictionary(m.history.map { ($0.atMs, $0.size) }, uniquingKeysWith: +)
                    for h in a.history { byHour[h.atMs, default: 0] += h.size }
                    m.history = byHour.keys.sorted().map {
                        var s = AudienceSize()
                        (s.atMs, s.size) = ($0, byHour[$0]!)
                        return s
                    }
                    merged[a.name] = m
                }
            }
            var response = ListAudiencesResponse()
            response.audiences = merged.keys.sorted().map { merged[$0]! }
            return response
        }
    }

    /// AudienceMembers over the replicas: each answers for its own users, the pages merged.
    public func audienceMembers(_ request: AudienceMembersRequest, timeout: Duration? = nil) async throws -> AudienceMembersResponse {
        guard replicas.count > 1 else { return try await replicas[0].call(FeatureAPI.audienceMembers, request, timeout: timeout) }
        let (ids, next) = try await mergedPages(pageSize: request.pageSize, timeout: timeout) { client, timeout in
            let page = try await client.call(FeatureAPI.audienceMembers, request, timeout: timeout)
            return (page.userIds, !page.nextPageToken.isEmpty)
        }
        var response = AudienceMembersResponse()
        (response.userIds, response.nextPageToken) = (ids, next)
        return response
    }

    /// AudienceOverlap over the replicas: the counts summed.
    public func audienceOverlap(_ request: AudienceOverlapRequest, timeout: Duration? = nil) async throws -> AudienceOverlapResponse {
        guard replicas.count > 1 else { return try await replicas[0].call(FeatureAPI.audienceOverlap, request, timeout: timeout) }
        return try await retrying(timeout: timeout) { timeout in
            var sum = AudienceOverlapResponse()
            for i in try await serving(timeout: timeout) {
                let part = try await replicas[i].call(FeatureAPI.audienceOverlap, request, timeout: timeout)
                (sum.aSize, sum.bSize, sum.both) = (sum.aSize + part.aSize, sum.bSize + part.bSize, sum.both + part.both)
            }
            return sum
        }
    }

    /// Each replica's answer to Feature/Ownership, or the error its call failed with; the
    /// replicas are asked at once, so one down (its client backing off) does not use up the
    /// time of the others.
    public func ownership(timeout: Duration = .seconds(1)) async -> [Result<OwnershipResponse, RPCError>] {
        await withTaskGroup(of: (Int, Result<OwnershipResponse, RPCError>).self) { group in
            for (i, client) in replicas.enumerated() {
                group.addTask {
                    do { return (i, .success(try await client.call(FeatureAPI.ownership, OwnershipRequest(), timeout: timeout))) } catch {
                        return (i, .failure(error as? RPCError ?? RPCError(.unavailable, "\(error)")))
                    }
                }
            }
            let unasked = Result<OwnershipResponse, RPCError>.failure(RPCError(.unavailable, "not asked"))
            var answers = Array(repeating: unasked, count: replicas.count)
            for await (i, answer) in group { answers[i] = answer }
            return answers
        }
    }

    public func shutdown() async {
        for client in replicas { await client.shutdown() }
    }

    // MARK: Routing

    /// Runs `body` again, after asking the replicas where the partitions are, while it fails
    /// UNAVAILABLE (a replica down, or one not serving the partition) and time is left.
    private func retrying<T>(timeout: Duration?, _ body: (Duration) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + min(timeout ?? .seconds(30), RPCContext.current?.remaining ?? .seconds(30))
        var pause = Duration.milliseconds(20)
        while true {
            do {
                return try await body(ContinuousClock.now.duration(to: deadline))
            } catch let error as RPCError where error.code == .unavailable {
                routes.withLock { $0.learnedAt = nil }
                guard ContinuousClock.now + pause < deadline else { throw error }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(500))
            }
        }
    }

    /// The partition count and each partition's replica, asked again when the table is old.
    private func table(timeout: Duration) async throws -> (partitions: Int, owner: [Int?]) {
        let known = routes.withLock { r -> (partitions: Int, owner: [Int?])? in
            guard let at = r.learnedAt, at.duration(to: .now) < Self.refreshEvery else { return nil }
            return (r.partitions, r.owner)
        }
        if let known { return known }
        return try await learn(timeout: min(timeout, .seconds(1)))
    }

    /// The replica serving `user`'s partition.
    private func replica(for user: Int64, timeout: Duration) async throws -> Int {
        let (partitions, owner) = try await table(timeout: timeout)
        let p = StableHash.partition(of: user, among: partitions)
        guard let i = owner[p] else {
            let silent = routes.withLock { $0.silent }
            throw RPCError(
                .unavailable, "no feature replica serves partition \(p) now (one is taking it over)\(silent.isEmpty ? "" : "; \(silent)")")
        }
        return i
    }

    /// Asks every replica which partitions it serves. A partition goes to a replica serving it
    /// as its home and read to the log's end, else to one serving it read to the end, else to
    /// any serving it. A replica that does not answer keeps the partitions it last served while
    /// its calls only run out of time (reachable, busy), and for `grace` after its last answer
    /// whatever the error: a call to it is answered if it is only slow, and a dead one's
    /// partitions go to their new replica once that one serves them.
    private func learn(timeout: Duration) async throws -> (Int, [Int?]) {
        let results = await ownership(timeout: timeout)
        let now = ContinuousClock.now
        let answers = results.map { try? $0.get() }
        let previous = routes.withLock { r in
            if r.answeredAt.count != replicas.count { r.answeredAt = Array(repeating: nil, count: replicas.count) }
            for (i, answer) in answers.enumerated() where answer != nil { r.answeredAt[i] = now }
            return r
        }
        let keeps = results.indices.map { i in
            guard case .failure(let e) = results[i] else { return false }
            return e.code == .deadlineExceeded || previous.answeredAt[i].map { now - $0 < Self.grace } ?? false
        }
        let asked = answers.compactMap { $0?.partitions }.max().map(Int.init)
        let silent = zip(replicas, results).compactMap { client, result -> String? in
            guard case .failure(let e) = result else { return nil }
            return "\(client.config.host):\(client.config.port) did not answer Feature/Ownership: \(e)"
        }.joined(separator: "; ")
        guard let partitions = asked ?? (keeps.contains(true) && previous.partitions > 0 ? previous.partitions : nil), partitions > 0 else {
            throw RPCError(.unavailable, "no feature replica answered Feature/Ownership (\(silent))")
        }
        var owner = [Int?](repeating: nil, count: partitions)
        var rank = [Int](repeating: .max, count: partitions)
        for (i, answer) in answers.enumerated() {
            guard let answer, answer.partitions == partitions else { continue }
            let home = Set(answer.home), lagging = Set(answer.lagging)
            for p in answer.serving where p < partitions {
                let r = (home.contains(p) ? 0 : 1) + (lagging.contains(p) ? 2 : 0)
                if r < rank[Int(p)] { (owner[Int(p)], rank[Int(p)]) = (i, r) }
            }
        }
        if previous.partitions == partitions {
            for p in owner.indices where owner[p] == nil {
                if let i = previous.owner[p], keeps[i] { owner[p] = i }
            }
        }
        routes.withLock { r in (r.partitions, r.owner, r.learnedAt, r.silent) = (partitions, owner, now, silent) }
        return (partitions, owner)
    }
}
