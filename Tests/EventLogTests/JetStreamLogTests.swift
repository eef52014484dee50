import EventLog
import Foundation
import Store
import TestSupport
import Testing

/// The JetStream engine against real `nats-server` processes on loopback.
@Suite("JetStream event log", .serialized)
struct JetStreamLogTests {
    func records(_ range: Range<Int>) -> (Records, [String]) {
        (Records(range.map { Array("event-\($0)".utf8) }), range.map { "id-\($0)" })
    }

    /// Every record of partition `p`, read `batch` at a time from the start.
    func readAll(_ log: JetStreamLog, _ p: Int, batch: Int = 37) async throws -> [(UInt64, String)] {
        var out: [(UInt64, String)] = []
        var next: UInt64 = 0
        while true {
            let before = next
            next = try await log.read(p, from: next, maxRecords: batch, maxBytes: 1 << 20, wait: .zero) {
                out.append(($0, String(decoding: $1, as: UTF8.self)))
            }
            if next == before { return out }
        }
    }

    @Test("--log parses to the file engine or a list of NATS servers")
    func choice() throws {
        #expect(try LogChoice(parsing: "file") == .file && LogChoice(parsing: "") == .file)
        #expect(try LogChoice(parsing: "nats://a:4222,b:4223") == .nats(servers: ["nats://a:4222", "nats://b:4223"]))
        #expect(throws: StoreError.self) { try LogChoice(parsing: "kafka://a:9092") }
        #expect(throws: StoreError.self) { try LogChoice(parsing: "nats://") }
    }

    @Test("records come back in order at their sequences, a retried append is stored once, a read waits for the next record")
    func appendAndRead() async throws {
        let nats = try NATSServers(count: 1)
        defer { nats.stop() }
        var config = JetStreamLog.Config(servers: nats.servers, partitions: 2)
        config.replicas = 1
        let log = try JetStreamLog(config)
        let (first, ids) = records(0..<100)
        let offsets = try await log.append(first, messageID: { ids[$0] }, to: 0)
        #expect(offsets.count == 100 && offsets == offsets.sorted() && Set(offsets).count == 100)
        // The same batch again (a producer's retry): JetStream answers the original sequences.
        #expect(try await log.append(first, messageID: { ids[$0] }, to: 0) == offsets)
        let (other, otherIDs) = records(100..<110)
        let otherOffsets = try await log.append(other, messageID: { otherIDs[$0] }, to: 1)
        let read = try await readAll(log, 0)
        #expect(read.map(\.1) == (0..<100).map { "event-\($0)" })
        #expect(read.map(\.0) == offsets)
        #expect(try await readAll(log, 1).map(\.0) == otherOffsets)
        #expect(try await log.bounds(0).end > offsets.last!)
        // A read may stop inside a message and go on from there.
        #expect(try await readAll(log, 0, batch: 7).map(\.0) == offsets)

        // A read at the end waits for the next record.
        let end = try await log.bounds(1).end
        async let waited = log.read(1, from: end, maxRecords: 10, maxBytes: 1 << 20, wait: .seconds(10)) { _, _ in }
        try await Task.sleep(for: .milliseconds(300))
        let late = try await log.append(Records([Array("late".utf8)]), messageID: { _ in "late" }, to: 1)
        let after = try await log.bounds(1).end
        #expect(try await waited == after && after > late[0])
        // Nothing new: a read without wait returns at once where it started.
        #expect(try await log.read(1, from: after, maxRecords: 10, maxBytes: 1 << 20, wait: .zero) { _, _ in } == after)
        await log.close()

        // The stream outlives the connection; a log with another partition count is refused.
        let again = try JetStreamLog(config)
        #expect(try await readAll(again, 0).count == 100)
        await again.close()
        var wrong = config
        wrong.partitions = 3
        #expect(throws: StoreError.self) { try JetStreamLog(wrong) }
    }

    @Test("on three servers with three replicas, appends go on when a server is SIGKILLed and nothing acknowledged is lost")
    func replicated() async throws {
        try await NATSServers.exclusively {
            let nats = try NATSServers(count: 3)
            defer { nats.stop() }
            var config = JetStreamLog.Config(servers: nats.servers, partitions: 1)
            config.replicas = 3
            config.ackTimeout = .seconds(20)
            let log = try JetStreamLog(config, connectTimeout: .seconds(20))
            var acknowledged: [UInt64] = []
            var written = 0
            func appendBatches(_ count: Int) async throws {
                for _ in 0..<count {
                    let (batch, ids) = records(written..<(written + 200))
                    acknowledged += try await log.append(batch, messageID: { ids[$0] }, to: 0)
                    written += 200
                }
            }
            try await nats.withRollingKills { try await appendBatches(5) }
            let read = try await readAll(log, 0, batch: 500)
            #expect(read.count == written)
            #expect(read.map(\.0) == acknowledged)
            #expect(read.map(\.1) == (0..<written).map { "event-\($0)" })
            await log.close()
        }
    }

    @Test("after every server is SIGKILLed and started again, a reader resumes at its offset and appends go on")
    func wholeClusterRestart() async throws {
        try await NATSServers.exclusively {
            let nats = try NATSServers(count: 3)
            defer { nats.stop() }
            var config = JetStreamLog.Config(servers: nats.servers, partitions: 1)
            config.ackTimeout = .seconds(30)
            let log = try JetStreamLog(config, connectTimeout: .seconds(30))
            let (before, beforeIDs) = records(0..<300)
            _ = try await log.append(before, messageID: { beforeIDs[$0] }, to: 0)
            var seen: [String] = []
            // A consumer reads part of the partition and keeps its offset.
            let offset = try await log.read(0, from: 0, maxRecords: 120, maxBytes: 1 << 20, wait: .zero) {
                seen.append(String(decoding: $1, as: UTF8.self))
            }
            for i in 0..<3 { nats.kill(i) }
            for i in 0..<3 { try nats.start(i) }
            let (after, afterIDs) = records(300..<400)
            _ = try await log.append(after, messageID: { afterIDs[$0] }, to: 0)
            var next = offset
            while true {
                let from = next
                next = try await log.read(0, from: from, maxRecords: 100, maxBytes: 1 << 20, wait: .zero) {
                    seen.append(String(decoding: $1, as: UTF8.self))
                }
                if next == from { break }
            }
            #expect(seen == (0..<400).map { "event-\($0)" })
            await log.close()
        }
    }
}
