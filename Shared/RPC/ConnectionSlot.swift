import NIOCore
import NIOPosix
import Synchronization

/// One of the client's pooled connections: connects on first use, reconnects after the
/// server goes away, backs off between failed attempts.
final class ConnectionSlot: Sendable {
    private enum Phase {
        case idle
        case connecting(EventLoopFuture<ClientConnection>)
        case ready(ClientConnection)
        case backingOff(until: ContinuousClock.Instant, lastError: String)
        case shutDown
    }

    private enum Step {
        case use(ClientConnection)
        case wait(EventLoopFuture<ClientConnection>)
        case sleep(until: ContinuousClock.Instant, lastError: String)
        case connect(EventLoopPromise<ClientConnection>)
        case fail(RPCError)
    }

    private struct State {
        var phase: Phase = .idle
        var backoff: ReconnectBackoff
        var rng = SystemRandomNumberGenerator()
    }

    private let state: Mutex<State>
    private let host: String
    private let port: Int
    private let limits: FrameLimits
    private let connectTimeout: Duration
    private let group: any EventLoopGroup

    init(host: String, port: Int, limits: FrameLimits, backoff: ReconnectBackoff, connectTimeout: Duration, group: any EventLoopGroup) {
        self.state = Mutex(State(backoff: backoff))
        self.host = host
        self.port = port
        self.limits = limits
        self.connectTimeout = connectTimeout
        self.group = group
    }

    /// A usable connection, connecting (and waiting out the backoff) if needed, but never
    /// past `deadline`: then the call fails UNAVAILABLE.
    func connection(deadline: ContinuousClock.Instant?) async throws -> ClientConnection {
        while true {
            let step = state.withLock { s -> Step in
                switch s.phase {
                case .ready(let c) where c.isUsable:
                    return .use(c)
                case .ready, .idle:
                    let promise = group.next().makePromise(of: ClientConnection.self)
                    s.phase = .connecting(promise.futureResult)
                    return .connect(promise)
                case .connecting(let future):
                    return .wait(future)
                case .backingOff(let until, let lastError):
                    if until <= .now {
                        let promise = group.next().makePromise(of: ClientConnection.self)
                        s.phase = .connecting(promise.futureResult)
                        return .connect(promise)
                    }
                    return .sleep(until: until, lastError: lastError)
                case .shutDown:
                    return .fail(RPCError(.unavailable, "client is shut down"))
                }
            }
            switch step {
            case .use(let c):
                return c
            case .fail(let error):
                throw error
            case .connect(let promise):
                connect(promise)
                continue
            case .wait(let future):
                do {
                    return try await future.get()
                } catch {
                    // Loop: the slot is backing off now; the deadline decides whether we wait.
                    continue
                }
            case .sleep(let until, let lastError):
                if let deadline, deadline < until {
                    throw RPCError(.unavailable, "cannot connect to \(host):\(port): \(lastError)")
                }
                try await Task.sleep(until: until, clock: .continuous)
            }
        }
    }

    private func connect(_ promise: EventLoopPromise<ClientConnection>) {
        let connectionState = ClientConnectionState()
        let limits = self.limits
        let connected = ClientBootstrap(group: promise.futureResult.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(TimeAmount(clamping: connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limits: limits)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder(limits: limits)))
                    try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(state: connectionState))
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
                return ClientConnection(
                    channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop), state: connectionState)
            }
        connected.whenComplete { [self] result in
            switch result {
            case .success(let connection):
                let keep = state.withLock { s -> Bool in
                    if case .shutDown = s.phase { return false }
                    s.phase = .ready(connection)
                    s.backoff.reset()
                    return true
                }
                guard keep else {
                    connection.channel.close(promise: nil)
                    return promise.fail(RPCError(.unavailable, "client is shut down"))
                }
                connection.channel.closeFuture.whenComplete { [self] _ in
                    state.withLock { s in
                        if case .ready(let current) = s.phase, current.channel === connection.channel {
                            s.phase = .idle
                        }
                    }
                }
                promise.succeed(connection)
            case .failure(let error):
                state.withLock { s in
                    if case .shutDown = s.phase { return }
                    let delay = s.backoff.nextDelay(using: &s.rng)
                    s.phase = .backingOff(until: .now + delay, lastError: "\(error)")
                }
                promise.fail(error)
            }
        }
    }

    func shutdown() async {
        let phase = state.withLock { s -> Phase in
            let old = s.phase
            s.phase = .shutDown
            return old
        }
        switch phase {
        case .ready(let c):
            try? await c.channel.close()
        case .connecting(let future):
            if let c = try? await future.get() { try? await c.channel.close() }
        default:
            break
        }
    }
}
