public import Logging
public import RPC
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
        var config = RPCClient.Config.defaults(host: host, port: port)
        config.defaultTimeout = .seconds(10)
        self.ingest = RPCClient(config: config)
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
        partition p: Int, offset: () -> UInt64, failed: (RPCError) -> Void, fold: (ReadResponse, _ from: UInt64) -> Void
    ) async throws {
        var backoff = ReconnectBackoff()
        while true {
            try Task.checkCancellation()
            var request = ReadRequest()
            request.partition = UInt32(p)
            request.fromOffset = offset()
            request.maxEvents = UInt32(readEvents)
            request.waitMs = UInt32(readWait / .milliseconds(1))
            let response: ReadResponse
            do {
                response = try await ingest.call(IngestAPI.read, request, timeout: readWait + .seconds(5))
                backoff.reset()
            } catch let error as RPCError {
                // Shutting down: the read was cancelled, not failed.
                try Task.checkCancellation()
                failed(error)
                logger.warning("reading partition \(p) failed: \(error)")
                try await Task.sleep(for: backoff.nextDelay())
                continue
            }
            guard !response.events.isEmpty || response.nextOffset > request.fromOffset else { continue }
            fold(response, request.fromOffset)
        }
    }
}
