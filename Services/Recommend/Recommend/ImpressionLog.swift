import Foundation
import Logging
import RPC
import Wire

/// The answers recommend served, on their way back into the log: each answer becomes an
/// impression event (its request id, the items in the order shown, the surface and the
/// model), queued and appended to ingest in batches, so click-through and training see
/// every fact through the one durable log. A batch ingest refuses or cannot take is retried
/// with the next flush; past `capacity` waiting events the oldest are dropped and counted.
final class ImpressionLog: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: [Event] = []
    private let ingest: RPCClient
    private let logger: Logger
    let capacity: Int
    private let dropped: @Sendable (Int) -> Void

    init(ingest: RPCClient, logger: Logger, capacity: Int = 100_000, dropped: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.ingest = ingest
        self.logger = logger
        self.capacity = capacity
        self.dropped = dropped
    }

    /// Drops the impressions of erased users not yet sent.
    func forget(_ users: Set<Int64>) {
        lock.withLock { waiting.removeAll { users.contains($0.userId) } }
    }

    /// Queues one answer's impression.
    func record(userID: Int64, requestID: String, items: [Int64], surface: String, model: String, version: UInt32, atMs: Int64) {
        guard !items.isEmpty else { return }
        var e = Event()
        e.eventId = "impression:\(requestID)"
        e.kind = .impression
        e.userId = userID
        e.timestampMs = atMs
        e.channel = "recommend"
        var i = Impression()
        i.requestId = requestID
        i.itemIds = items
        i.surface = surface
        i.modelName = model
        i.modelVersion = version
        e.impression = i
        let overflow: Int = lock.withLock {
            waiting.append(e)
            let over = max(0, waiting.count - capacity)
            if over > 0 { waiting.removeFirst(over) }
            return over
        }
        if overflow > 0 { dropped(overflow) }
    }

    var pending: Int { lock.withLock { waiting.count } }

    /// Appends what is waiting, up to `batch` events at a time; what ingest did not take
    /// (an error) goes back to the front of the queue. Returns the events appended.
    @discardableResult
    func flush(batch: Int = 1000) async -> Int {
        var sent = 0
        while true {
            let next: [Event] = lock.withLock {
                let n = min(batch, waiting.count)
                defer { waiting.removeFirst(n) }
                return Array(waiting.prefix(n))
            }
            guard !next.isEmpty else { return sent }
            var request = AppendRequest()
            request.events = next
            do {
                let answer = try await ingest.call(IngestAPI.append, request, timeout: .seconds(5))
                sent += next.count
                if answer.rejected > 0 {
                    logger.warning(
                        "ingest rejected \(answer.rejected) impressions: \(answer.statuses.first { $0.code == .rejected }?.detail ?? "")")
                }
            } catch {
                lock.withLock { waiting.insert(contentsOf: next, at: 0) }
                logger.info("impressions wait for ingest: \(error)")
                return sent
            }
        }
    }

    /// Flushes every `interval` until cancelled; `depth` hears how many wait after each flush.
    func run(interval: Duration = .milliseconds(200), depth: (Int) -> Void = { _ in }) async throws {
        while true {
            try await Task.sleep(for: interval)
            await flush()
            depth(pending)
        }
    }
}

/// How often each user has been shown each item since they last did anything with it
/// (impression fatigue): an item shown `limit` times without a view, cart or purchase is
/// left out of that user's answers until they touch it. Held in memory, bounded by
/// `maxUsers` (the least recently served users are forgotten first).
final class ImpressionCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [Int64: [Int64: UInt16]] = [:]
    private var order: [Int64] = []
    let limit: Int
    let maxUsers: Int

    init(limit: Int, maxUsers: Int = 1_000_000) {
        self.limit = limit
        self.maxUsers = maxUsers
    }

    /// The items to leave out for `user`, after forgetting the ones in `touched` (their
    /// recent views, carts and purchases: shown and then used, so not tiring).
    func tired(user: Int64, touched: Set<Int64>) -> Set<Int64> {
        guard limit > 0 else { return [] }
        return lock.withLock {
            guard var shown = counts[user] else { return [] }
            for id in touched { shown[id] = nil }
            counts[user] = shown
            return Set(shown.filter { Int($0.value) >= limit }.keys)
        }
    }

    /// Forgets erased users' counts.
    func forget(_ users: Set<Int64>) {
        lock.withLock {
            for u in users { counts[u] = nil }
            order.removeAll { users.contains($0) }
        }
    }

    /// Counts one answer's items as shown to `user`.
    func shown(user: Int64, items: [Int64]) {
        guard limit > 0, !items.isEmpty else { return }
        lock.withLock {
            if counts[user] == nil {
                order.append(user)
                if order.count > maxUsers {
                    let drop = order.count - maxUsers
                    for u in order.prefix(drop) { counts[u] = nil }
                    order.removeFirst(drop)
                }
            }
            var shown = counts[user] ?? [:]
            for id in items { shown[id] = (shown[id] ?? 0) &+ 1 }
            counts[user] = shown
        }
    }
}
