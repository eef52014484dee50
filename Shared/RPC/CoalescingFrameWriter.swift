import NIOCore

/// A handler that writes frames as they are ready and flushes once per event-loop tick,
/// however many frames were written in it: 64 pipelined responses finishing together cost
/// one syscall, not 64. Used by both ends of a connection; runs on the event loop.
protocol CoalescingFrameWriter: AnyObject {
    var context: ChannelHandlerContext? { get }
    var flushPending: Bool { get set }
}

extension CoalescingFrameWriter {
    func send(_ frame: Frame) {
        guard let context else { return }
        context.write(NIOAny(frame), promise: nil)
        guard !flushPending else { return }
        flushPending = true
        context.eventLoop.assumeIsolated().execute {
            self.flushPending = false
            self.context?.flush()
        }
    }
}
