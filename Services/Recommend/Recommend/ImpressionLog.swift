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
                    logger.warning("ingest rejected \(answer.rejected) impressions: \(answer.statuses.first { $0.code == .rejected }?.detail ?? "")")
                }
            } catch {
                lock.withLock { waiting.insert(contentsOf: next, at: 0) }
                logger.info("impressions wait for ingest: \(error)")
                return sent
            }
        }
    }

    /// Flushes every `interval` until cancelled.
    func run(interval: Duration = .milliseconds(200)) async throws {
        while true {
            try await Task.sleep(for: interval)
            await flush()
        }
    }
}
