import Testing

@testable import RPC

@Suite("Reconnect backoff")
struct ReconnectBackoffTests {
    @Test func growsExponentiallyWithinJitterAndCaps() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0.2)
        var rng = SystemRandomNumberGenerator()
        let expected: [Duration] = [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1),
        ]
        for base in expected {
            let delay = backoff.nextDelay(using: &rng)
            #expect(delay >= base * 0.8 && delay <= base * 1.2)
        }
        #expect(backoff.failures == 6)
        backoff.reset()
        let first = backoff.nextDelay(using: &rng)
        #expect(first <= .milliseconds(120))
    }

    @Test func jitterSpreadsClients() {
        var rng = SystemRandomNumberGenerator()
        let delays = (0..<50).map { _ in
            var b = ReconnectBackoff(initial: .milliseconds(100))
            return b.nextDelay(using: &rng)
        }
        #expect(Set(delays).count > 1)
    }

    @Test func manyFailuresDoNotOverflow() {
        var backoff = ReconnectBackoff(initial: .milliseconds(1), maximum: .seconds(5))
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1000 { _ = backoff.nextDelay(using: &rng) }
        #expect(backoff.nextDelay(using: &rng) <= .seconds(6))
    }
}
