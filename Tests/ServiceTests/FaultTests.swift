import Foundation
import RPC
import TestSupport
import Testing
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// The five services as real processes under continuous load, each SIGKILLed in turn and
/// started again on its data directory.
@Suite("Faults in the whole suite", .serialized, .timeLimit(.minutes(5)))
struct FaultTests {
    /// What the load saw: acknowledged event ids and orders, calls past their deadline, and
    /// when each kind of call last succeeded.
    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var events: Set<String> = []
        var orders: [String] = []
        var slow: [(String, Range<ContinuousClock.Instant>, Duration)] = []
        var lastSuccess: [String: ContinuousClock.Instant] = [:]
        var calls: [String: Int] = [:]
        var stopped = false
        var running: Bool { lock.withLock { !stopped } }
        /// Times this test process itself stalled (other suites keep its threads busy): a
        /// heartbeat that slept far longer than asked.
        var stalls: [Range<ContinuousClock.Instant>] = []

        func timed<T>(_ what: String, timeout: Duration, _ call: () async throws -> T) async -> T? {
            let start = ContinuousClock.now
            let result = try? await call()
            let end = ContinuousClock.now
            lock.withLock {
                calls[what, default: 0] += 1
                if start.duration(to: end) > timeout + .milliseconds(700) { slow.append((what, start..<end, timeout)) }
                if result != nil { lastSuccess[what] = .now }
            }
            return result
        }

        /// Calls that ran past their deadline: by more than 700 ms (this 2-core machine) plus
        /// the time the test process could not run at all meanwhile. Read once the load stopped.
        var late: [String] {
            lock.withLock {
                slow.compactMap { what, span, timeout in
                    let stalled = stalls.reduce(Duration.zero) { sum, s in
                        let overlap = s.clamped(to: span)
                        return sum + overlap.lowerBound.duration(to: overlap.upperBound)
                    }
                    let took = span.lowerBound.duration(to: span.upperBound)
                    return took > timeout + .milliseconds(700) + stalled ? "\(what) took \(took) (test process stalled \(stalled))" : nil
                }
            }
        }

        func heartbeat() async {
            while running {
                let start = ContinuousClock.now
                try? await Task.sleep(for: .milliseconds(20))
                let end = ContinuousClock.now
                if start.duration(to: end) > .milliseconds(120) { lock.withLock { stalls.append(start..<end) } }
            }
        }
    }

    static func batch(_ b: Int) -> [Event] {
        (0..<25).map { k in
            let i = b * 25 + k
            let user = Int64(1 + (i * 7) % 60), item = Int64(1 + (i * 13) % 40)
            var e = view(
                user, item, at: 1_764_000_000_000 + Int64(i) * 1000, category: 100 + item % 4, kind: i % 9 == 0 ? .addToCart : .view)
            e.eventId = "fault-\(i)"
            return e
        }
    }

    @Test(
        """
        SIGKILL each service in turn under load: no acknowledged event or decision lost, no call past its deadline, \
        clients reconnect, profiles and interactions converge to a run without faults
        """
    )
    func killEachInTurn() async throws {
        let names = ["ingest", "feature", "model", "risk-control", "recommend"]
        let ports = Dictionary(uniqueKeysWithValues: names.map { ($0, freePort()) })
        let dirs = Dictionary(uniqueKeysWithValues: names.map { ($0, temporaryDirectory()) })
        var environment: [String: String] = [:]
        for name in names {
            environment["PERSONA_\(name.uppercased().replacingOccurrences(of: "-", with: "_"))_ADDR"] = "127.0.0.1:\(ports[name]!)"
        }
        func start(_ name: String, port: Int? = nil, dir: String? = nil) throws -> ChildProcess {
            try ChildProcess(
                "persona-\(name)",
                ["--port", "\(port ?? ports[name]!)", "--metrics-port", "0", "--data-dir", dir ?? dirs[name]!, "--log-level", "warning"],
                environment: environment)
        }
        var processes = try Dictionary(uniqueKeysWithValues: names.map { ($0, try start($0)) })
        var extra: [ChildProcess] = []
        defer {
            processes.values.forEach { $0.kill() }
            extra.forEach { $0.kill() }
        }
        func client(_ name: String, timeout: Duration = .seconds(2)) -> RPCClient {
            var config = RPCClient.Config.defaults(host: "127.0.0.1", port: ports[name]!)
            config.defaultTimeout = timeout
            return RPCClient(config: config)
        }
        for name in names {
            let c = client(name)
            _ = try await waitHealthy(c)
            await c.shutdown()
        }

        // The load: appends (each batch retried until acknowledged), scores, recommendations,
        // each through one client that lives through every restart.
        let seen = Seen()
        let (ingest, risk, recommend) = (client("ingest"), client("risk-control"), client("recommend", timeout: .seconds(1)))
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await seen.heartbeat() }
                group.addTask {
                    var b = 0
                    while seen.running {
                        var request = AppendRequest()
                        request.events = Self.batch(b)
                        if let answer = await seen.timed(
                            "append", timeout: .seconds(2), { try await ingest.call(IngestAPI.append, request, timeout: .seconds(2)) })
                        {
                            #expect(answer.rejected == 0)
                            seen.lock.withLock { seen.events.formUnion(request.events.map(\.eventId)) }
                            b += 1
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                group.addTask {
                    var k = 0
                    while seen.running {
                        var score = ScoreRequest()
                        score.orderId = "fault-order-\(k)"
                        score.userId = Int64(1 + k % 60)
                        score.amount = Double(10 + k % 90)
                        score.currency = "EUR"
                        k += 1
                        if await seen.timed(
                            "score", timeout: .seconds(2), { try await risk.call(RiskAPI.score, score, timeout: .seconds(2)) }) != nil
                        {
                            seen.lock.withLock { seen.orders.append(score.orderId) }
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                group.addTask {
                    var k = 0
                    while seen.running {
                        var ask = RecommendRequest()
                        ask.userId = Int64(1 + k % 60)
                        ask.n = 5
                        k += 1
                        _ = await seen.timed(
                            "recommend", timeout: .seconds(1),
                            { try await recommend.call(RecommendAPI.recommend, ask, timeout: .seconds(1)) })
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
        }

        // Each service in turn: SIGKILL under load, start again on its directory and port.
        try await Task.sleep(for: .seconds(1))
        var restarted = ContinuousClock.now
        for name in names {
            processes[name]!.kill()
            try await Task.sleep(for: .milliseconds(300))
            processes[name] = try start(name)
            let c = client(name)
            _ = try await waitHealthy(c)
            await c.shutdown()
            restarted = .now
            try await Task.sleep(for: .milliseconds(1500))
        }
        seen.lock.withLock { seen.stopped = true }
        await load.value

        // Every kind of call succeeded again after the last restart, on the same clients.
        for what in ["append", "score", "recommend"] {
            let last = seen.lock.withLock { seen.lastSuccess[what] }
            #expect(last.map { $0 > restarted } == true, "no \(what) succeeded after the last restart")
        }
        #expect(seen.late.isEmpty, "calls past their deadline: \(seen.late.prefix(5))")
        #expect(seen.events.count >= 25 * 20 && seen.orders.count >= 20, "too little load: \(seen.calls)")

        // No acknowledged event is lost, none is stored twice.
        var stored: [String: Int] = [:]
        for e in try await ErasureTests.readAll(ingest) { stored[e.event?.eventId ?? "", default: 0] += 1 }
        let lost = seen.events.filter { stored[$0] == nil }, doubled = stored.filter { $0.value > 1 }.map(\.key)
        #expect(lost.isEmpty, "acknowledged events missing: \(lost.count)")
        #expect(doubled.isEmpty, "events stored twice: \(doubled.prefix(5))")
        // No acknowledged decision is lost.
        var missing: [String] = []
        for order in seen.orders {
            var q = QueryDecisionsRequest()
            q.orderId = order
            if try await risk.call(RiskAPI.queryDecisions, q).decisions.count != 1 { missing.append(order) }
        }
        #expect(missing.isEmpty, "acknowledged decisions missing: \(missing.prefix(5))")

        // Profiles and interactions converge to those of processes that never crashed.
        let (feature, model) = (client("feature"), client("model"))
        try await waitConsumed(ingest: ingest, consumer: feature, timeout: .seconds(60))
        try await waitConsumed(ingest: ingest, consumer: model, timeout: .seconds(60))
        let (freshFeaturePort, freshModelPort) = (freePort(), freePort())
        extra.append(try start("feature", port: freshFeaturePort, dir: temporaryDirectory()))
        extra.append(try start("model", port: freshModelPort, dir: temporaryDirectory()))
        let freshFeature = RPCClient(host: "127.0.0.1", port: freshFeaturePort),
            freshModel = RPCClient(host: "127.0.0.1", port: freshModelPort)
        _ = try await waitHealthy(freshFeature)
        _ = try await waitHealthy(freshModel)
        try await waitConsumed(ingest: ingest, consumer: freshFeature, timeout: .seconds(60))
        try await waitConsumed(ingest: ingest, consumer: freshModel, timeout: .seconds(60))
        var differing: [Int64] = []
        for user in Int64(1)...60 {
            var r = GetProfileRequest()
            r.userId = user
            let (a, b) = (try await feature.call(FeatureAPI.getProfile, r), try await freshFeature.call(FeatureAPI.getProfile, r))
            if !a.found || a.profile != b.profile { differing.append(user) }
        }
        #expect(differing.isEmpty, "profiles differ from a run without faults: users \(differing.prefix(10))")
        func interactions(_ c: RPCClient) async throws -> [String] {
            try await c.call(HealthAPI.check, HealthRequest()).checks.filter {
                ["users", "items", "interactions", "offsets"].contains($0.key)
            }.map { "\($0.key)=\($0.value)" }
        }
        #expect(try await interactions(model) == interactions(freshModel))
        for c in [ingest, risk, recommend, feature, model, freshFeature, freshModel] { await c.shutdown() }
    }
}
