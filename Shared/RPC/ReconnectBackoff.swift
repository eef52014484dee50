/// Delays between reconnection attempts: exponential, capped, with jitter so that many
/// clients of a restarted server do not reconnect in lockstep. A plain value type.
public struct ReconnectBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Each delay is scaled by a random factor in `1 ± jitter`.
    public var jitter: Double
    /// Consecutive failed attempts so far.
    public private(set) var failures = 0

    public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(5), multiplier: Double = 2, jitter: Double = 0.2) {
        precondition(multiplier >= 1 && (0..<1).contains(jitter))
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// Records a failed attempt and returns how long to wait before the next one.
    public mutating func nextDelay(using rng: inout some RandomNumberGenerator) -> Duration {
        let base = min(initial * pow(multiplier, failures), maximum)
        failures += 1
        let factor = Double.random(in: (1 - jitter)...(1 + jitter), using: &rng)
        return base * factor
    }

    /// `nextDelay(using:)` with the system's random numbers.
    public mutating func nextDelay() -> Duration {
        var rng = SystemRandomNumberGenerator()
        return nextDelay(using: &rng)
    }

    /// A connection succeeded: the next failure starts from `initial` again.
    public mutating func reset() {
        failures = 0
    }

    private func pow(_ base: Double, _ exponent: Int) -> Double {
        // Past 64 doublings the cap applies anyway; avoid overflowing to infinity.
        (0..<min(exponent, 64)).reduce(1.0) { acc, _ in acc * base }
    }
}
