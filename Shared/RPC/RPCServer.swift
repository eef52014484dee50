public import Logging
public import NIOCore
import NIOPosix
import Synchronization
public import Wire

/// What the server reports about its calls; ServiceKit turns it into Prometheus metrics.
public protocol RPCServerObserver: Sendable {
    func callStarted(method: String)
    /// A started call ended (answered, expired, cancelled).
    func callFinished(method: String, status: StatusCode, duration: Duration)
    /// A call answered without being started: unknown method, over the limit, draining.
    func callRefused(method: String, status: StatusCode)
    /// A call the access policy refused (UNAUTHENTICATED or PERMISSION_DENIED), with the
    /// role of the token it carried ("none" without one).
    func accessRefused(method: String, role: String, status: StatusCode)
    func protocolError(_ code: FrameError.Code)
}

extension RPCServerObserver {
    public func accessRefused(method: String, role: String, status: StatusCode) {}
}

/// Persona's RPC server: many calls in flight per connection, answered as they finish,
/// each with its deadline enforced; a connection over its concurrency limit is answered
/// OVERLOADED; garbage closes only the connection that sent it.
public final class RPCServer: Sendable {
    public struct Config: Sendable {
        public var host: String
        public var port: Int
        /// Calls one connection may have in flight; more are answered OVERLOADED.
        public var maxConcurrentCallsPerConnection: Int
        public var frameLimits: FrameLimits
        public var decodingLimits: DecodingLimits
        /// How long a graceful shutdown waits for in-flight calls before closing anyway.
        public var shutdownGracePeriod: Duration
        /// Tokens and roles every call is checked against; nil: every call is let through.
        public var access: AccessPolicy?

        public static var defaults: Config {
            Config(
                host: "127.0.0.1", port: 0, maxConcurrentCallsPerConnection: 1024,
                frameLimits: .default, decodingLimits: .default, shutdownGracePeriod: .seconds(10))
        }
    }

    public let config: Config
    let router: Router
    let observer: any RPCServerObserver
    let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var channel: (any Channel)?
        var connections: [ObjectIdentifier: ServerConnection] = [:]
        var shuttingDown = false
    }

    public init(config: Config, router: Router, observer: any RPCServerObserver = NoopObserver(), logger: Logger) {
        self.config = config
        self.router = router
        self.observer = observer
        self.logger = logger
    }

    /// Binds the listening socket and starts accepting. Returns the bound address (useful
    /// with port 0). Calling it again returns the same address.
    @discardableResult
    public func start() async throws -> SocketAddress {
        if let channel = state.withLock({ $0.channel }) { return channel.localAddress! }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.initialize(channel) }
            }
            .bind(host: config.host, port: config.port)
            .get()
        state.withLock { $0.channel = channel }
        logger.info("rpc listening", metadata: ["address": "\(channel.localAddress!)", "methods": "\(router.methodNames.count)"])
        return channel.localAddress!
    }

    /// Whether a graceful shutdown began.
    public var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// The bound port, once `start()` returned.
    public var port: Int? { state.withLock { $0.channel?.localAddress?.port } }

    /// Serves until `beginGracefulShutdown()`; returns once every connection has finished
    /// its in-flight calls (or the grace period ran out) and closed.
    public func run() async throws {
        try await start()
        let channel = state.withLock { $0.channel! }
        try? await channel.closeFuture.get()
        let connections = state.withLock { Array($0.connections.values) }
        for connection in connections { connection.drain() }
        let deadline = ContinuousClock.now + config.shutdownGracePeriod
        for connection in connections {
            let remaining = ContinuousClock.now.duration(to: deadline)
            let closed = connection.channel.eventLoop.makePromise(of: Void.self)
            let timer = connection.channel.eventLoop.scheduleTask(in: TimeAmount(clamping: remaining)) {
                connection.channel.close(promise: nil)
            }
            connection.channel.closeFuture.cascade(to: closed)
            try? await closed.futureResult.get()
            timer.cancel()
        }
        logger.info("rpc server stopped")
    }

    /// Stops accepting connections, tells connected clients to go away, and lets in-flight
    /// calls finish. `run()` returns when that is done.
    public func beginGracefulShutdown() {
        let channel = state.withLock { s -> (any Channel)? in
            s.shuttingDown = true
            return s.channel
        }
        channel?.close(promise: nil)
    }

    private func initialize(_ channel: any Channel) throws {
        let handler = ServerConnectionHandler(server: self)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limits: config.frameLimits)))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder(limits: config.frameLimits)))
        try channel.pipeline.syncOperations.addHandler(handler)
        let connection = ServerConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        let id = ObjectIdentifier(channel)
        let draining = state.withLock { s in
            s.connections[id] = connection
            return s.shuttingDown
        }
        if draining { connection.drain() }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.connections.removeValue(forKey: id) }
        }
    }
}

/// Observer that records nothing.
public struct NoopObserver: RPCServerObserver {
    public init() {}
    public func callStarted(method: String) {}
    public func callFinished(method: String, status: StatusCode, duration: Duration) {}
    public func callRefused(method: String, status: StatusCode) {}
    public func protocolError(_ code: FrameError.Code) {}
}

struct ServerConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ServerConnectionHandler>

    func drain() {
        channel.eventLoop.execute { handler.value.startDraining() }
    }
}

/// One connection's calls. Runs on the connection's event loop; each request's handler runs
/// in its own task and hops back here with its result.
final class ServerConnectionHandler: ChannelInboundHandler, CoalescingFrameWriter {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private struct Call {
        let task: Task<Void, Never>
        let timer: Scheduled<Void>?
        let method: String
        let started: ContinuousClock.Instant
    }

    private let server: RPCServer
    var context: ChannelHandlerContext?
    private var calls: [UInt64: Call] = [:]
    private var draining = false
    /// When this connection's calls were last refused by the access policy.
    private var refusals: [ContinuousClock.Instant] = []
    /// Set a moment after the go-away frame, so requests already on the wire are answered
    /// (UNAVAILABLE) rather than cut off by the close.
    private var lingerOver = false
    var flushPending = false
    /// The peer's address, `IP:port`, handed to every call (the audit log names it).
    private var peer = ""
    /// Request ids made for this connection's calls derive from it (`RPCContext.requestID`).
    private let requestNonce = UInt64.random(in: 0...UInt64.max)

    init(server: RPCServer) {
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.remoteAddress { peer = "\(address.ipAddress ?? "?"):\(address.port ?? 0)" }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .request:
            startCall(frame, context: context)
        case .cancel:
            if let call = calls.removeValue(forKey: frame.correlationID) {
                call.timer?.cancel()
                call.task.cancel()
                server.observer.callFinished(method: call.method, status: .cancelled, duration: call.started.duration(to: .now))
                closeIfDrained()
            }
        case .response, .goAway:
            fail(FrameError(code: .unexpectedFrameKind, message: "a client sent a \(frame.kind) frame"), context: context)
        }
    }

    private func startCall(_ frame: Frame, context: ChannelHandlerContext) {
        let id = frame.correlationID
        let route = server.router.route(for: frame.method)
        guard !draining else {
            server.observer.callRefused(method: route?.name ?? "unknown", status: .unavailable)
            return respond(id, method: frame.method, error: RPCError(.unavailable, "server is shutting down"))
        }
        guard let route else {
            server.observer.callRefused(method: "unknown", status: .unimplemented)
            return respond(
                id, method: frame.method, error: RPCError(.unimplemented, "no method with id 0x\(String(frame.method, radix: 16))"))
        }
        var caller: (token: String, role: Role)?
        if let access = server.config.access {
            switch access.check(method: frame.method, credential: frame.credential) {
            case .allowed(let token, let role): if let token, let role { caller = (token, role) }
            case .unauthenticated:
                return refuse(
                    id, frame.method, route.name, role: nil,
                    RPCError(.unauthenticated, "\(route.name) needs a token (none given, or not one this service accepts)"), access, context
                )
            case .denied(let token, let role):
                return refuse(
                    id, frame.method, route.name, role: role,
                    RPCError(.permissionDenied, "token '\(token)' (\(role.rawValue)) may not call \(route.name)"), access, context)
            }
        }
        guard calls.count < server.config.maxConcurrentCallsPerConnection else {
            server.observer.callRefused(method: route.name, status: .overloaded)
            return respond(id, method: frame.method, error: RPCError(.overloaded, "\(calls.count) calls in flight on this connection"))
        }
        guard calls[id] == nil else {
            return fail(FrameError(code: .duplicateCorrelationID, message: "correlation id \(id) is already in flight"), context: context)
        }
        let started = ContinuousClock.now
        let deadline = frame.deadlineMicros > 0 ? started + .microseconds(frame.deadlineMicros) : nil
        let rpcContext = RPCContext(
            deadline: deadline, method: route.name, correlationID: id, caller: caller, peer: peer,
            requestID: frame.requestID.flatMap { $0.isEmpty ? nil : String(decoding: $0, as: UTF8.self) }, requestNonce: requestNonce,
            actingFor: frame.actingFor.flatMap { $0.isEmpty ? nil : String(decoding: $0, as: UTF8.self) },
            shuttingDown: { [server] in server.isShuttingDown })
        let payload = frame.payload
        let limits = server.config.decodingLimits
        server.observer.callStarted(method: route.name)
        if let inline = route.inline {
            let result: Result<ByteBuffer, any Error> = Result {
                try RPCContext.$current.withValue(rpcContext) { try inline(payload, limits) }
            }
            return answer(id, method: frame.method, name: route.name, started: started, result: result)
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let method = frame.method
        let task = Task {
            let result: Result<ByteBuffer, any Error>
            do {
                result = .success(
                    try await RPCContext.$current.withValue(rpcContext) {
                        try await route.handle(payload, limits)
                    })
            } catch {
                result = .failure(error)
            }
            loop.execute { bound.value.finish(id, method: method, result: result) }
        }
        let timer = deadline.map { _ in
            loop.scheduleTask(in: .microseconds(Int64(frame.deadlineMicros))) {
                bound.value.finish(
                    id, method: method, result: .failure(RPCError(.deadlineExceeded, "deadline of \(frame.deadlineMicros) µs exceeded")))
            }
        }
        calls[id] = Call(task: task, timer: timer, method: route.name, started: started)
    }

    /// Answers call `id` unless it was answered already (deadline) or cancelled.
    private func finish(_ id: UInt64, method: UInt16, result: Result<ByteBuffer, any Error>) {
        guard let call = calls.removeValue(forKey: id) else { return }
        call.timer?.cancel()
        if case .failure(let error as RPCError) = result, error.code == .deadlineExceeded { call.task.cancel() }
        answer(id, method: method, name: call.method, started: call.started, result: result)
    }

    /// Sends the response of a call that is over, and records it.
    private func answer(_ id: UInt64, method: UInt16, name: String, started: ContinuousClock.Instant, result: Result<ByteBuffer, any Error>)
    {
        switch result {
        case .success(let payload):
            server.observer.callFinished(method: name, status: .ok, duration: started.duration(to: .now))
            send(Frame(kind: .response, method: method, correlationID: id, payload: payload))
        case .failure(let error):
            let rpcError: RPCError
            switch error {
            case let e as RPCError: rpcError = e
            case is CancellationError: rpcError = RPCError(.cancelled, "call was cancelled")
            default:
                server.logger.error("handler failed", metadata: ["method": "\(name)", "error": "\(error)"])
                rpcError = RPCError(.internal, "internal error")
            }
            server.observer.callFinished(method: name, status: rpcError.code, duration: started.duration(to: .now))
            respond(id, method: method, error: rpcError)
        }
        closeIfDrained()
    }

    /// Answers a call the access policy refused, counted by method and role; a connection
    /// refused `refusalLimit` times within `refusalWindow` is told why and closed.
    private func refuse(
        _ id: UInt64, _ method: UInt16, _ name: String, role: Role?, _ error: RPCError, _ access: AccessPolicy,
        _ context: ChannelHandlerContext
    ) {
        server.observer.callRefused(method: name, status: error.code)
        server.observer.accessRefused(method: name, role: role?.rawValue ?? "none", status: error.code)
        respond(id, method: method, error: error)
        let now = ContinuousClock.now
        refusals.append(now)
        refusals.removeAll { $0 < now - access.refusalWindow }
        guard refusals.count >= access.refusalLimit else { return }
        server.logger.notice(
            "closing connection after \(refusals.count) refused calls",
            metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        var status = ErrorStatus()
        status.code = error.code
        status.message = "\(refusals.count) calls refused within \(access.refusalWindow): closing"
        let frame = Frame(
            kind: .goAway, status: UInt8(truncatingIfNeeded: error.code.rawValue), method: 0, correlationID: 0,
            payload: ByteBuffer(bytes: status.serializedBytes()))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    private func respond(_ id: UInt64, method: UInt16, error: RPCError) {
        send(
            Frame(
                kind: .response, status: UInt8(truncatingIfNeeded: error.code.rawValue), method: method,
                correlationID: id, payload: ByteBuffer(bytes: error.errorStatus.serializedBytes())))
    }

    func startDraining() {
        guard !draining else { return }
        draining = true
        var status = ErrorStatus()
        status.code = .unavailable
        status.message = "server is shutting down"
        send(
            Frame(
                kind: .goAway, status: UInt8(StatusCode.unavailable.rawValue), method: 0, correlationID: 0,
                payload: ByteBuffer(bytes: status.serializedBytes())))
        context?.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(200)) {
            self.lingerOver = true
            self.closeIfDrained()
        }
    }

    private func closeIfDrained() {
        guard draining, lingerOver, calls.isEmpty, let context else { return }
        context.flush()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for (_, call) in calls {
            call.timer?.cancel()
            call.task.cancel()
            server.observer.callFinished(method: call.method, status: .cancelled, duration: call.started.duration(to: .now))
        }
        calls.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let frameError = error as? FrameError {
            fail(frameError, context: context)
        } else {
            context.close(promise: nil)
        }
    }

    /// Protocol violation: count it, tell the peer why, close this connection only.
    private func fail(_ error: FrameError, context: ChannelHandlerContext) {
        server.observer.protocolError(error.code)
        server.logger.notice(
            "closing connection after protocol error",
            metadata: ["error": "\(error)", "peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        var status = ErrorStatus()
        status.code = .protocolError
        status.message = error.description
        let frame = Frame(
            kind: .goAway, status: UInt8(StatusCode.protocolError.rawValue), method: 0, correlationID: 0,
            payload: ByteBuffer(bytes: status.serializedBytes()))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in bound.value.close(promise: nil) }
    }
}
