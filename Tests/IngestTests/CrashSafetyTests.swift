import Foundation
import RPC
import Synchronization
import TestSupport
import Testing
import Wire

/// A real ingest process under continuous appends, killed with SIGKILL at random moments.
@Suite("Ingest crash safety", .serialized, .timeLimit(.minutes(5)))
struct CrashSafetyTests {
    final class Acked: Sendable {
        let ids = Mutex<[String: Int64]>([:])  // event id -> user
    }

    @Test("20 SIGKILLs under load: every acknowledged event is there exactly once, in order per user")
    func sigkillUnderLoad() async throws {
        let dir = temporaryDirectory(), port = freePort()
        let acked = Acked()
        var sequence: [Int64: Int64] = [:]  // per-user counter, carried across rounds
        var rng = SystemRandomNumberGenerator()
        var outputs = ""
        for round in 0..<20 {
            let process = try ChildProcess(
                "persona-ingest", ["--port", "\(port)", "--metrics-port", "0", "--data-dir", dir, "--partitions", "4"])
            defer { process.kill() }
            var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
            config.backoff = ReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(100))
            let client = RPCClient(config: config)
            try await waitHealthy(client)
            // Two producers, disjoint users, each sequential so per-user order is defined.
            let startSequence = sequence
            let producers = (0..<2).map { producer in
                Task { () -> [Int64: Int64] in
                    var seq = startSequence
                    var batchNumber = 0
                    while !Task.isCancelled {
                        var request = AppendRequest()
                        var pending: [(String, Int64, Int64)] = []
                        for i in 0..<50 {
                            let user = Int64(producer * 10 + (i % 10) + 1)
                            let n = seq[user, default: 0] + Int64(pending.filter { $0.1 == user }.count)
                            var e = Event()
                            e.eventId = "r\(round)-p\(producer)-b\(batchNumber)-\(i)"
                            e.kind = .view
                            e.userId = user
                            e.itemId = n + 1  // the user's sequence number, to check order
                            e.timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
                            request.events.append(e)
                            pending.append((e.eventId, user, n))
                        }
                        batchNumber += 1
                        do {
                            let response = try await client.call(IngestAPI.append, request, timeout: .seconds(2))
                            guard response.accepted == 50 else { break }
                            acked.ids.withLock { ids in for p in pending { ids[p.0] = p.1 } }
                            for p in pending { seq[p.1] = max(seq[p.1, default: 0], p.2 + 1) }
                        } catch {
                            // Unacknowledged: it may or may not be stored. Its users' later
                            // sequence numbers must stay above it, so count it as used.
                            for p in pending { seq[p.1] = max(seq[p.1, default: 0], p.2 + 1) }
                            break
                        }
                    }
                    return seq
                }
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 50...400, using: &rng)))
            process.signal(SIGKILL)
            _ = await process.waitForExit()
            for p in producers {
                p.cancel()
                for (user, n) in await p.value { sequence[user] = max(sequence[user, default: 0], n) }
            }
            outputs += process.output
            await client.shutdown()
        }

        // Restart once more and read everything back.
        let process = try ChildProcess(
            "persona-ingest", ["--port", "\(port)", "--metrics-port", "0", "--data-dir", dir, "--partitions", "4"])
        defer { process.kill() }
        let client = RPCClient(host: "127.0.0.1", port: port)
        try await waitHealthy(client)
        let stored = try await readAll(client, partitions: 4)
        await client.shutdown()
        process.signal(SIGTERM)
        #expect(await process.waitForExit() == 0)
        outputs += process.output

        let expected = acked.ids.withLock { $0 }
        #expect(expected.count > 1000, "the producers should have had time to append")
        var counts: [String: Int] = [:]
        for s in stored { counts[s.event!.eventId, default: 0] += 1 }
        #expect(counts.values.allSatisfy { $0 == 1 }, "an event is stored twice")
        let missing = expected.keys.filter { counts[$0] == nil }
        #expect(missing.isEmpty, "\(missing.count) acknowledged events lost, e.g. \(missing.prefix(3))")
        // Per user, sequence numbers increase with offset (reads are per partition, in order).
        var last: [Int64: Int64] = [:]
        for s in stored {
            let e = s.event!
            #expect(e.itemId > last[e.userId, default: 0], "user \(e.userId) out of order")
            last[e.userId] = e.itemId
        }
        #expect(!outputs.contains("CORRUPT"), "recovery found corrupt batches")
    }
}
