public import NIOCore

extension TimeAmount {
    /// The same span as a NIO time amount; negative durations become zero.
    public init(clamping duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanos.overflow else {
            self = .nanoseconds(seconds > 0 ? .max : 0)
            return
        }
        self = .nanoseconds(max(0, nanos.partialValue + attoseconds / 1_000_000_000))
    }
}
