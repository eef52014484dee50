import Foundation
import Math
import Model
import RPC
import TestSupport
import Testing
import Wire

/// Real model processes killed with SIGKILL: while they consume a growing log, and in the
/// middle of a training job.
@Suite("Model crash safety", .serialized, .timeLimit(.minutes(5)))
struct ModelCrashTests {
    func startIngest() async throws -> (ChildProcess, RPCClient, Int) {
        let port = freePort()
        let process = try ChildProcess("persona-ingest", ["--port", "\(port)", "--metrics-port", "0", "--data-dir", temporaryDirectory()])
        let client = RPCClient(host: "127.0.0.1", port: port)
        try await waitHealthy(client)
        return (process, client, port)
    }

    func modelArguments(dir: String, port: Int, ingestPort: Int) -> [String] {
        [
            "--port", "\(port)", "--metrics-port", "0", "--data-dir", dir, "--ingest", "127.0.0.1:\(ingestPort)", "--read-events", "20",
            "--snapshot-seconds", "1", "--feature", "127.0.0.1:\(freePort())",
        ]
    }

    /// Runs a model process on `dir` until it has consumed the whole log, then stops it with
    /// SIGTERM (which writes its final snapshot) and returns the snapshot's bytes.
    func consumeAndStop(dir: String, ingest: RPCClient, ingestPort: Int) async throws -> [UInt8] {
        let port = freePort()
        let process = try ChildProcess("persona-model", modelArguments(dir: dir, port: port, ingestPort: ingestPort))
        defer { process.kill() }
        let client = RPCClient(host: "127.0.0.1", port: port)
        try await waitHealthy(client)
        try await waitConsumed(ingest: ingest, consumer: client, timeout: .seconds(120))
        await client.shutdown()
        process.signal(SIGTERM)
        #expect(await process.waitForExit(timeout: .seconds(20)) == 0, "\(process.output)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/interactions.snapshot")))
    }

    @Test("6 SIGKILLs while consuming a growing log: the same interactions as a run without a crash, pair for pair")
    func sigkillWhileConsuming() async throws {
        let (ingestProcess, ingest, ingestPort) = try await startIngest()
        defer { ingestProcess.kill() }
        defer { Task { await ingest.shutdown() } }
        let events = clusteredShop(users: 400, itemsPerGroup: 40, groups: 5, perUser: 40)
        try await append(ingest, Array(events.prefix(2_000)))
        let appending = Task {
            for start in stride(from: 2_000, to: events.count, by: 500) {
                try await Task.sleep(for: .milliseconds(200))
                try await append(ingest, Array(events[start..<min(events.count, start + 500)]))
            }
        }
        let dir = temporaryDirectory(), port = freePort()
        let probe = RPCClient(host: "127.0.0.1", port: port)
        defer { Task { await probe.shutdown() } }
        var rng = SplitMix(seed: 17)
        var midway = 0
        for _ in 0..<6 {
            let model = try ChildProcess("persona-model", modelArguments(dir: dir, port: port, ingestPort: ingestPort))
            try await Task.sleep(for: .milliseconds(Int64(600 + rng.below(1200))))
            let health = try? await probe.call(HealthAPI.check, HealthRequest(), timeout: .milliseconds(300))
            model.kill()
            let consumed =
                health?.checks.first { $0.key == "offsets" }?.value.split(separator: ",").compactMap { Int($0) }.reduce(0, +) ?? 0
            if FileManager.default.fileExists(atPath: dir + "/interactions.snapshot") && (1..<events.count).contains(consumed) {
                midway += 1
            }
        }
        try await appending.value
        #expect(midway > 0, "no kill came mid-way after a snapshot")
        let crashed = try await consumeAndStop(dir: dir, ingest: ingest, ingestPort: ingestPort)
        let reference = try await consumeAndStop(dir: temporaryDirectory(), ingest: ingest, ingestPort: ingestPort)
        // Partitions fold concurrently, so dense indices differ between runs: compare content.
        let a = try InteractionTable.restore(crashed), b = try InteractionTable.restore(reference)
        #expect(a.summary.offsets == b.summary.offsets)
        let pa = a.canonicalPairs, pb = b.canonicalPairs
        #expect(pa.count == pb.count && pa.count > 10_000)
        #expect(pa == pb, "\(zip(pa, pb).first { $0 != $1 }.map { "\($0) against \($1)" } ?? "")")
    }

    @Test("SIGKILL mid-training: the job is reported failed after the restart and no version was added")
    func sigkillMidTraining() async throws {
        let (ingestProcess, ingest, ingestPort) = try await startIngest()
        defer { ingestProcess.kill() }
        defer { Task { await ingest.shutdown() } }
        try await append(ingest, clusteredShop(users: 60, perUser: 6))
        let dir = temporaryDirectory(), port = freePort()
        let arguments = modelArguments(dir: dir, port: port, ingestPort: ingestPort)
        let first = try ChildProcess("persona-model", arguments)
        defer { first.kill() }
        let client = RPCClient(host: "127.0.0.1", port: port)
        defer { Task { await client.shutdown() } }
        try await waitHealthy(client)
        try await waitConsumed(ingest: ingest, consumer: client)
        let id = try await train(client, .bpr, name: "killed", params: ["iterations": "10000", "factors": "8"], publish: true)
        _ = try await waitJob(client, id, until: [.running])
        try await Task.sleep(for: .milliseconds(500))
        first.kill()

        let second = try ChildProcess("persona-model", arguments)
        defer { second.kill() }
        try await waitHealthy(client)
        let status = try await waitJob(client, id, timeout: .seconds(5))
        #expect(
            status.state == .failed && status.message.contains("stopped while this job was running"), "\(status.state): \(status.message)")
        var list = ListModelsRequest()
        list.name = "killed"
        #expect(try await client.call(ModelAPI.listModels, list).models.isEmpty)
        // The service trains again after the crash, once it has read the log back (the kill
        // may have come before its first snapshot).
        try await waitConsumed(ingest: ingest, consumer: client)
        let again = try await waitJob(client, try await train(client, .popularity, name: "killed", publish: true))
        #expect(again.state == .succeeded && again.version == 1)
    }
}
