import Foundation
import Math
import RPC
import TestSupport
import Testing
import Wire

/// A real feature process, killed with SIGKILL at random moments while it consumes a real
/// log that is still growing, ends with the profiles an uninterrupted run computes.
@Suite("Feature crash safety", .serialized, .timeLimit(.minutes(5)))
struct FeatureCrashTests {
    static func loadSample() throws -> [Event] {
        TaobaoRow.events(try TaobaoRow.manyUsers(copies: 10))
    }

    @Test("6 SIGKILLs while consuming 43,210 Taobao events (430 users): the same profiles as a run without a crash")
    func sigkillWhileConsuming() async throws {
        let events = try Self.loadSample()
        let users = Array(Set(events.map(\.userId))).sorted()
        var rng = SplitMix(seed: 11)
        let sampleUsers = (0..<400).map { _ in users[Int(rng.next() % UInt64(users.count))] }
        let ingestPort = freePort()
        let ingestProcess = try ChildProcess(
            "persona-ingest", ["--port", "\(ingestPort)", "--metrics-port", "0", "--data-dir", temporaryDirectory()])
        defer { ingestProcess.kill() }
        let ingest = RPCClient(host: "127.0.0.1", port: ingestPort)
        defer { Task { await ingest.shutdown() } }
        try await waitHealthy(ingest)
        // The log grows while the feature process runs, over about 9 seconds: however fast
        // it folds, the kills come before it has consumed everything.
        try await append(ingest, Array(events.prefix(5_000)))
        let appending = Task {
            for start in stride(from: 5_000, to: events.count, by: 1_000) {
                try await Task.sleep(for: .milliseconds(250))
                try await append(ingest, Array(events[start..<min(events.count, start + 1_000)]))
            }
        }

        // The crashing run: small reads and a snapshot every second, killed 6 times.
        let featureDir = temporaryDirectory(), featurePort = freePort()
        let arguments = [
            "--port", "\(featurePort)", "--metrics-port", "0", "--data-dir", featureDir, "--ingest", "127.0.0.1:\(ingestPort)",
            "--read-events", "20", "--snapshot-seconds", "1", "--model", "127.0.0.1:\(freePort())",
        ]
        let probe = RPCClient(host: "127.0.0.1", port: featurePort)
        defer { Task { await probe.shutdown() } }
        var midway = 0
        var consumed: [Int] = []
        for _ in 0..<6 {
            let feature = try ChildProcess("persona-feature", arguments)
            try await Task.sleep(for: .milliseconds(Int64(700 + rng.next() % 1500)))
            let health = try? await probe.call(HealthAPI.check, HealthRequest(), timeout: .milliseconds(300))
            feature.kill()
            _ = await feature.waitForExit()
            let offsets = health?.checks.first { $0.key == "offsets" }?.value.split(separator: ",").compactMap { Int($0) } ?? []
            consumed.append(offsets.reduce(0, +))
            if FileManager.default.fileExists(atPath: featureDir + "/state.snapshot") && (1..<events.count).contains(offsets.reduce(0, +)) {
                midway += 1
            }
        }
        try await appending.value
        #expect(midway > 0, "no kill came mid-way after a snapshot (events consumed at each kill: \(consumed))")
        let feature = try ChildProcess("persona-feature", arguments)
        defer { feature.kill() }
        let crashed = RPCClient(host: "127.0.0.1", port: featurePort)
        defer { Task { await crashed.shutdown() } }
        try await waitHealthy(crashed)
        try await waitConsumed(ingest: ingest, consumer: crashed, timeout: .seconds(120))
        let afterCrashes = try await profiles(crashed, sampleUsers)

        // The reference: an uninterrupted run on a fresh directory.
        let reference = try await withFeature(ingestPort: ingestPort) { client, _ in
            try await waitConsumed(ingest: ingest, consumer: client, timeout: .seconds(120))
            return try await profiles(client, sampleUsers)
        }
        #expect(afterCrashes.count == Set(sampleUsers).count)
        #expect(afterCrashes == reference)
        for u in sampleUsers where afterCrashes[u] != reference[u] {
            Issue.record("user \(u) differs")
            break
        }
    }
}
