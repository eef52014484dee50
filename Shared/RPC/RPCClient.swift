public import NIOCore
public import NIOPosix
import Synchronization
public import Wire

/// A client of one Persona service: a small pool of connections, each carrying many calls
/// at once (pipelined, answered out of order), with per-call deadlines and cancellation.
/// Reconnects by itself after the server restarts.
public final class RPCClient: Sendable {
    public struct Config: Sendable {
        public var host: String
        public var port: Int
        /// Connections in the pool; calls are spread over them round-robin.
        public var connections: Int
        public var frameLimits: FrameLimits
        /// Limits for decoding responses; servers are trusted more than clients are.
        public var decodingLimits: DecodingLimits
        public var backoff: ReconnectBackoff
        public var connectTimeout: Duration
        /// Deadline for calls that set none and run outside any other call.
        public var defaultTimeout: Duration?
        /// The token every call carries; nil: the process's (`ProcessCredential`), if any.
        public var credential: [UInt8]?

        public static func defaults(host: String, port: Int) -> Config {
            Config(
                host: host, port: port, connections: 1, frameLimits: .default, decodingLimits: .trustedPeer,
                backoff: ReconnectBackoff(), connectTimeout: .seconds(2), defaultTimeout: .seconds(30))
        }
    }

    public let config: Config
    private let slots: [ConnectionSlot]
    private let nextSlot = Atomic<Int>(0)
    private let nextCorrelationID = Atomic<UInt64>(1)

    public init(config: Config, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        precondition(config.connections >= 1)
        self.config = config
        self.slots = (0..<config.connections).map { _ in
            ConnectionSlot(
                host: config.host, port: config.port, limits: config.frameLimits, backoff: config.backoff,
                connectTimeout: config.connectTimeout, group: group)
        }
    }

    /// A client of the peer at `host:port` whose calls that set no deadline wait at most
    /// `defaultTimeout`.
    public convenience init(host: String, port: Int, defaultTimeout: Duration? = .seconds(30)) {
        var config = Config.defaults(host: host, port: port)
        config.defaultTimeout = defaultTimeout
        self.init(config: config)
    }

    /// Calls `method`. The deadline is the earliest of `timeout`, the deadline of the RPC
    /// this task is serving (deadline propagation), and `config.defaultTimeout`.
    /// Throws `RPCError` for every failure, with the server's status when it answered.
    public func call<Request, Response>(
        _ method: Method<Request, Response>, _ request: Request, timeout: Duration? = nil
    ) async throws -> Response {
        try await call(method, encoded: ByteBuffer(bytes: request.serializedBytes()), timeout: timeout)
    }

    /// `call` with the request already encoded (a producer that keeps its events as bytes).
    public func call<Request, Response>(
        _ method: Method<Request, Response>, encoded payload: ByteBuffer, timeout: Duration? = nil
    ) async throws -> Response {
        let frame = try await call(methodID: method.id, payload: payload, timeout: timeout)
        guard frame.status == 0 else {
            let status = try? frame.payload.withUnsafeReadableBytes { try ErrorStatus(serializedBytes: $0, limits: config.decodingLimits) }
            throw RPCError(
                StatusCode(rawValue: Int32(frame.status)), status?.message ?? "status \(frame.status)", details: status?.details ?? [])
        }
        do {
            return try frame.payload.withUnsafeReadableBytes { try Response(serializedBytes: $0, limits: config.decodingLimits) }
        } catch {
            throw RPCError(.internal, "\(method.name): response is not a valid \(Response.self): \(error)")
        }
    }

    /// The raw form of `call`: sends a payload, returns the response frame (any status).
    public func call(methodID: UInt16, payload: ByteBuffer, timeout: Duration? = nil) async throws -> Frame {
        let deadline = effectiveDeadline(timeout)
        var micros: UInt32 = 0
        if let deadline {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { throw RPCError(.deadlineExceeded, "deadline passed before the call was sent") }
            let (s, atto) = remaining.components
            micros = UInt32(clamping: max(1, s * 1_000_000 + atto / 1_000_000_000_000))
        }
        try Task.checkCancellation()
        let slot = slots[nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue % slots.count]
        let connection = try await slot.connection(deadline: deadline)
        let id = nextCorrelationID.wrappingAdd(1, ordering: .relaxed).oldValue
        let promise = connection.channel.eventLoop.makePromise(of: Frame.self)
        // The request id of the call this task serves travels on (nil outside one: the server makes one).
        let frame = Frame(
            kind: .request, method: methodID, correlationID: id, deadlineMicros: micros, payload: payload,
            credential: config.credential ?? ProcessCredential.current, requestID: RPCContext.current.map { Array($0.requestID.utf8) },
            actingFor: ActingFor.current.map { Array($0.utf8) })
        connection.start(frame, deadline: deadline, promise: promise)
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            connection.cancel(id)
        }
    }

    private func effectiveDeadline(_ timeout: Duration?) -> ContinuousClock.Instant? {
        let now = ContinuousClock.now
        let own = timeout.map { now + $0 }
        let inherited = RPCContext.current?.deadline
        switch (own, inherited) {
        case let (a?, b?): return min(a, b)
        case let (a?, nil): return a
        case let (nil, b?): return b
        case (nil, nil): return config.defaultTimeout.map { now + $0 }
        }
    }

    /// Closes every connection; later calls fail UNAVAILABLE.
    public func shutdown() async {
        for slot in slots { await slot.shutdown() }
    }
}
