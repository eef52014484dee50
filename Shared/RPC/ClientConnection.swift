import NIOCore
import Synchronization
import Wire

/// One established client connection: the channel and its call demultiplexer.
struct ClientConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ClientConnectionHandler>
    let state: ClientConnectionState

    /// False once the server said go-away or the socket closed: new calls need another.
    var isUsable: Bool { channel.isActive && !state.goingAway.load(ordering: .relaxed) }

    func start(_ frame: Frame, deadline: ContinuousClock.Instant?, promise: EventLoopPromise<Frame>) {
        channel.eventLoop.execute { handler.value.start(frame, deadline: deadline, promise: promise) }
    }

    func cancel(_ id: UInt64) {
        channel.eventLoop.execute { handler.value.cancel(id) }
    }
}

final class ClientConnectionState: Sendable {
    let goingAway = Atomic<Bool>(false)
}

/// Matches responses to calls by correlation id, on the connection's event loop.
final class ClientConnectionHandler: ChannelInboundHandler, CoalescingFrameWriter {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private struct Pending {
        let promise: EventLoopPromise<Frame>
        let timer: Scheduled<Void>?
    }

    var context: ChannelHandlerContext?
    private var pending: [UInt64: Pending] = [:]
    var flushPending = false
    private var closedError: RPCError?
    let state: ClientConnectionState

    init(state: ClientConnectionState) {
        self.state = state
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func start(_ frame: Frame, deadline: ContinuousClock.Instant?, promise: EventLoopPromise<Frame>) {
        guard let context, closedError == nil else {
            return promise.fail(closedError ?? RPCError(.unavailable, "connection closed"))
        }
        let id = frame.correlationID
        let timer = deadline.map { deadline in
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(clamping: ContinuousClock.now.duration(to: deadline))) {
                self.expire(id)
            }
        }
        pending[id] = Pending(promise: promise, timer: timer)
        send(frame)
    }

    /// The caller's task was cancelled: fail the call here and tell the server to stop.
    func cancel(_ id: UInt64) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.timer?.cancel()
        call.promise.fail(RPCError(.cancelled, "call was cancelled"))
        send(Frame(kind: .cancel, method: 0, correlationID: id, payload: ByteBuffer()))
        closeIfGoingAway()
    }

    private func expire(_ id: UInt64) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.promise.fail(RPCError(.deadlineExceeded, "deadline exceeded waiting for the response"))
        send(Frame(kind: .cancel, method: 0, correlationID: id, payload: ByteBuffer()))
        closeIfGoingAway()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .response:
            guard let call = pending.removeValue(forKey: frame.correlationID) else { return }  // expired or cancelled
            call.timer?.cancel()
            call.promise.succeed(frame)
            closeIfGoingAway()
        case .goAway:
            state.goingAway.store(true, ordering: .relaxed)
            closeIfGoingAway()
            let status = try? frame.payload.withUnsafeReadableBytes { try ErrorStatus(serializedBytes: $0, limits: .default) }
            if frame.status == UInt8(StatusCode.protocolError.rawValue) {
                failAll(RPCError(.protocolError, status?.message ?? "server closed the connection"))
            }
        case .request, .cancel:
            context.close(promise: nil)
        }
    }

    /// After a go-away, the connection closes itself once its last call is answered; the
    /// slot has already moved new calls to a fresh connection.
    private func closeIfGoingAway() {
        if pending.isEmpty, state.goingAway.load(ordering: .relaxed) {
            context?.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.goingAway.store(true, ordering: .relaxed)
        failAll(RPCError(.unavailable, "connection closed"))
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RPCError(.unavailable, "connection failed: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: RPCError) {
        closedError = closedError ?? error
        let calls = pending
        pending.removeAll()
        for (_, call) in calls {
            call.timer?.cancel()
            call.promise.fail(error)
        }
    }
}
