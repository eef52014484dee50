public import Logging
public import RPC
import Synchronization
public import Wire

/// How the services that fold the ingest log (feature, model) read it: every partition from
/// the consumer's own offset, by long polls, retrying with backoff while ingest is away.
/// The consumer keeps its offsets with its state (one snapshot holds both), so a restart
/// resumes exactly where the state it restored left off.
public struct LogConsumer: Sendable {
    public let ingest: RPCClient
    public let host: String
    public let port: Int
    public var readEvents: Int
    /// How long one read waits for new events.
    public var readWait: Duration
    let logger: Logger

    public init(host: String, port: Int, readEvents: Int, readWait: Duration, logger: Logger) {
        self.ingest = RPCClient(host: host, port: port, defaultTimeout: .seconds(10))
        self.host = host
        self.port = port
        self.readEvents = readEvents
        self.readWait = readWait
        self.logger = logger
    }

    /// The partition count from LogInfo, retrying until ingest answers.
    public func partitions() async throws -> Int {
        var backoff = ReconnectBackoff()
        while true {
            do {
                let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest(), timeout: .seconds(2))
                return info.partitions.count
            } catch let error as RPCError {
                logger.info("waiting for ingest at \(host):\(port): \(error)")
                try await Task.sleep(for: backoff.nextDelay())
            }
        }
    }

    /// Reads partition `p` until cancelled: each answer from the offset `offset()` gives now
    /// goes to `fold` with the offset it was read from (`fold` moves the offset); a failed
    /// read calls `failed` and is retried after a backoff.
    public func consume(
        partition p: Int, kinds: [EventKind] = [], offset: () -> UInt64, failed: (RPCError) -> Void,
        fold: (ReadResponse, _ from: UInt64) async -> Void
    ) async throws {
        var backoff = ReconnectBackoff()
        while true {
            try Task.checkCancellation()
            let from = offset()
            let response: ReadResponse
            do {
                response = try await read(partition: p, from: from, maxEvents: readEvents, wait: readWait, kinds: kinds)
                backoff.reset()
            } catch let error as RPCError {
                // Shutting down: the read was cancelled, not failed.
                try Task.checkCancellation()
                failed(error)
                logger.warning("reading partition \(p) failed: \(error)")
                try await Task.sleep(for: backoff.nextDelay())
                continue
            }
            guard !response.events.isEmpty || response.nextOffset > from else { continue }
            await fold(response, from)
        }
    }

    /// One read of partition `p` from `offset`: at most `maxEvents`, waiting up to `wait` at
    /// the log's end, only `kinds` when some are given.
    public func read(partition p: Int, from offset: UInt64, maxEvents: Int, wait: Duration = .zero, kinds: [EventKind] = [])
        async throws -> ReadResponse
    {
        var request = ReadRequest()
        request.partition = UInt32(p)
        request.fromOffset = offset
        request.maxEvents = UInt32(maxEvents)
        request.waitMs = UInt32(wait / .milliseconds(1))
        request.kinds = kinds
        return try await ingest.call(IngestAPI.read, request, timeout: wait + .seconds(5))
    }

    /// Where every partition ends now, asked once (`timeout` nil: the client's default).
    public func endOffsets(timeout: Duration?) async throws -> [UInt64] {
        let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest(), timeout: timeout)
        return info.partitions.sorted { $0.partition < $1.partition }.map(\.endOffset)
    }

    /// Where every partition ends now, retrying until ingest answers.
    public func endOffsets() async throws -> [UInt64] {
        var backoff = ReconnectBackoff()
        while true {
            do {
                return try await endOffsets(timeout: .seconds(2))
            } catch let error as RPCError {
                logger.info("waiting for ingest at \(host):\(port): \(error)")
                try await Task.sleep(for: backoff.nextDelay())
            }
        }
    }

    /// How the services that keep no fold of the log (recommend, risk-control) hear of
    /// erasures: every partition is read from `starts` (one offset a partition) asking for
    /// erasure events only, and the users of each read go to `forget` with the partition
    /// and the offset to resume from. A `forget` that throws is retried with backoff, so no
    /// erasure is passed over. Runs until cancelled.
    public func followErasures(
        from starts: [UInt64], progress: ErasureProgress,
        forget: @escaping @Sendable (_ users: [Int64], _ partition: Int, _ next: UInt64) async throws -> Void
    ) async throws {
        progress.start(starts)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (p, first) in starts.enumerated() {
                group.addTask {
                    var next = first
                    try await consume(partition: p, kinds: [.erasure], offset: { next }, failed: { _ in }) { response, _ in
                        let users = response.events.compactMap { $0.event.map(\.userId) }.filter { $0 > 0 }
                        var backoff = ReconnectBackoff()
                        while !users.isEmpty {
                            do {
                                try await forget(users, p, response.nextOffset)
                                break
                            } catch {
                                logger.error("forgetting erased users failed (retried): \(error)")
                                try? await Task.sleep(for: backoff.nextDelay())
                                if Task.isCancelled { return }
                            }
                        }
                        next = max(next, response.nextOffset)
                        progress.moved(p, to: next)
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

/// Where a service following erasures stands in each partition: its Health check
/// `erasure_offsets` (every erasure below them has been applied), which `persona erase
/// --wait` polls.
public final class ErasureProgress: Sendable {
    private let offsets = Mutex<[UInt64]>([])

    public init() {}

    func start(_ starts: [UInt64]) { offsets.withLock { $0 = starts } }

    func moved(_ partition: Int, to next: UInt64) {
        offsets.withLock { if partition < $0.count { $0[partition] = max($0[partition], next) } }
    }

    /// The Health check: `erasure_offsets` and the offsets, comma separated.
    public var check: (String, String) { ("erasure_offsets", offsets.withLock { $0.map(String.init).joined(separator: ",") }) }
}
