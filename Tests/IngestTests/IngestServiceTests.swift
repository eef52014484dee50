import DataStructures
import Foundation
import PersonalData
import RPC
import ServiceKit
import Store
import TestSupport
import Testing
import Wire

@testable import Ingest

let nowMs = Int64(Date().timeIntervalSince1970 * 1000)

func view(_ id: String, user: Int64, item: Int64 = 7, at: Int64 = nowMs) -> Event {
    var e = Event()
    e.eventId = id
    e.kind = .view
    e.userId = user
    e.itemId = item
    e.timestampMs = at
    e.ip = "203.0.113.9"
    e.deviceId = "device-raw-123"
    return e
}

/// An in-process ingest service on free ports, stopped after `body`.
func withIngest(
    dataDir: String = temporaryDirectory(), settings: IngestSettings = IngestSettings(),
    _ body: (RPCClient, ServiceHost<IngestService>) async throws -> Void
) async throws {
    try await withHostedService(IngestService.self, settings: settings, dataDir: dataDir) { try await body($0.client, $0.host) }
}

func append(_ client: RPCClient, _ events: [Event]) async throws -> AppendResponse {
    var request = AppendRequest()
    request.events = events
    return try await client.call(IngestAPI.append, request)
}

func readPartition(_ client: RPCClient, _ partition: Int) async throws -> [StoredEvent] {
    var out: [StoredEvent] = []
    var next: UInt64 = 0
    while true {
        var r = ReadRequest()
        r.partition = UInt32(partition)
        r.fromOffset = next
        r.maxEvents = 500
        let response = try await client.call(IngestAPI.read, r)
        if response.events.isEmpty { return out }
        out += response.events
        next = response.nextOffset
    }
}

func readAll(_ client: RPCClient, partitions: Int) async throws -> [StoredEvent] {
    var out: [StoredEvent] = []
    for p in 0..<partitions { out += try await readPartition(client, p) }
    return out
}

@Suite("Ingest service", .timeLimit(.minutes(2)))
struct IngestServiceTests {
    @Test("a table of bad events, each with its own reason, while the rest of the batch lands")
    func badEventsTable() async throws {
        func bad(_ id: String, _ change: (inout Event) -> Void) -> Event {
            var e = view(id, user: 5)
            change(&e)
            return e
        }
        let cases: [(Event, RejectReason)] = [
            (bad("") { _ in }, .missingEventId),
            (bad("b1") { $0.userId = 0 }, .invalidUser),
            (bad("b2") { $0.userId = -4 }, .invalidUser),
            (bad("b3") { $0.timestampMs = nowMs + 10 * 60 * 1000 }, .timestampInFuture),
            (bad("b4") { $0.timestampMs = 100 }, .timestampTooOld),
            (bad("b5") { $0.kind = EventKind(rawValue: 99) }, .unknownKind),
            (bad("b6") { $0.itemId = 0 }, .missingField),
            (bad("b7") { $0.kind = .purchase }, .missingField),
            (
                bad("b8") {
                    $0.kind = .purchase; var o = Order(); o.orderId = "o"; var l = OrderLine(); l.itemId = 1; l.quantity = 1;
                    l.unitPrice = .nan; o.lines = [l]; $0.order = o
                }, .invalidAmount
            ),
            (
                bad("b9") {
                    $0.kind = .payment; var p = Payment(); p.orderId = "o"; p.amount = -1; $0.payment = p
                }, .invalidAmount
            ),
            (
                bad("b10") {
                    $0.kind = .review; var r = Review(); r.itemId = 1; r.rating = 6; $0.review = r
                }, .ratingOutOfRange
            ),
            (
                bad("b11") {
                    $0.kind = .purchase; var o = Order(); o.orderId = "o"; var l = OrderLine(); l.itemId = 1; l.quantity = 1_000_000;
                    o.lines = [l]; $0.order = o
                }, .invalidQuantity
            ),
            (
                bad("b12") {
                    $0.kind = .review; var r = Review(); r.itemId = 1; r.rating = 4; r.text = String(repeating: "x", count: 20_000);
                    $0.review = r
                }, .textTooLong
            ),
            (
                bad("b13") {
                    $0.kind = .search; $0.search = Search()
                }, .missingField
            ),
            (
                bad("b14") {
                    $0.kind = .payment; var p = Payment(); p.orderId = "o"; p.amount = .infinity; $0.payment = p
                }, .invalidAmount
            ),
        ]
        try await withIngest { client, host in
            var good = view("good-1", user: 5)
            good.eventId = "  good-1 \n"
            let events = [good] + cases.map(\.0) + [view("good-2", user: 6)]
            let response = try await append(client, events)
            #expect(response.accepted == 2 && response.rejected == UInt32(cases.count) && response.duplicates == 0)
            #expect(response.statuses.first?.code == .accepted && response.statuses.last?.code == .accepted)
            for (i, (_, reason)) in cases.enumerated() {
                let status = response.statuses[i + 1]
                #expect(status.code == .rejected)
                #expect(status.reason == reason, "case \(i): \(status.detail)")
                #expect(!status.detail.isEmpty)
            }
            let stored = try await readAll(client, partitions: 4)
            #expect(Set(stored.map { $0.event!.eventId }) == ["good-1", "good-2"])  // trimmed
            let metrics = host.context.metrics.render()
            #expect(metrics.contains(#"persona_ingest_rejections_total{reason="invalid_amount"} 3"#))
            #expect(metrics.contains(#"persona_ingest_events_total{result="accepted"} 2"#))
        }
    }

    @Test func oversizedBatchIsRefusedWhole() async throws {
        var settings = IngestSettings()
        settings.maxBatchEvents = 10
        try await withIngest(settings: settings) { client, _ in
            await #expect { try await append(client, (0..<11).map { view("e\($0)", user: 1) }) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument
            }
        }
    }

    @Test("historical imports pass the default floor (CDNOW is from 1997)")
    func historicalEventsPass() async throws {
        try await withIngest { client, _ in
            let response = try await append(client, [view("cdnow-1", user: 1, at: 852_076_800_000)])
            #expect(response.accepted == 1)
        }
    }

    @Test("duplicates are answered DUPLICATE, also after a restart")
    func duplicates() async throws {
        let dir = temporaryDirectory()
        try await withIngest(dataDir: dir) { client, _ in
            let first = try await append(client, [view("a", user: 1), view("b", user: 2)])
            #expect(first.accepted == 2)
            let again = try await append(client, [view("a", user: 1), view("c", user: 3), view("c", user: 3)])
            #expect(again.statuses.map(\.code) == [.duplicate, .accepted, .duplicate])
        }
        try await withIngest(dataDir: dir) { client, _ in
            let afterRestart = try await append(client, [view("a", user: 1), view("b", user: 2), view("d", user: 4)])
            #expect(afterRestart.statuses.map(\.code) == [.duplicate, .duplicate, .accepted])
            #expect(try await readAll(client, partitions: 4).count == 4)
        }
    }

    @Test("IPs and device ids are pseudonymised before anything is written")
    func privacy() async throws {
        let dir = temporaryDirectory()
        var settings = IngestSettings()
        settings.partitions = 1
        try await withIngest(dataDir: dir, settings: settings) { client, _ in
            var e = view("p1", user: 9)
            e.kind = .register
            var r = Register()
            r.email = "Alice@Example.com"
            e.register = r
            _ = try await append(client, [e, view("p2", user: 9)])
            let stored = try await readAll(client, partitions: 1)
            #expect(stored.count == 2)
            for s in stored {
                #expect(s.event!.ip.hasPrefix("p:") && s.event!.ip.count == 34)
                #expect(s.event!.deviceId == stored[0].event!.deviceId)  // equality survives
            }
            #expect(stored[0].event!.register!.email.hasPrefix("p:"))
        }
        // The raw values are nowhere in the data directory.
        let files = FileManager.default.enumerator(atPath: dir)!.compactMap { $0 as? String }
        for file in files {
            guard let data = FileManager.default.contents(atPath: dir + "/" + file) else { continue }
            for raw in ["203.0.113.9", "device-raw-123", "alice@example.com"] {
                #expect(data.range(of: Data(raw.utf8)) == nil, "\(raw) found in \(file)")
            }
        }
    }

    @Test func readLongPollsAndOffsetsSurviveRestart() async throws {
        let dir = temporaryDirectory()
        var settings = IngestSettings()
        settings.partitions = 2
        var offsets: [String: (UInt32, UInt64)] = [:]
        try await withIngest(dataDir: dir, settings: settings) { client, _ in
            let response = try await append(client, (0..<20).map { view("e\($0)", user: Int64($0 % 5 + 1)) })
            for (i, s) in response.statuses.enumerated() { offsets["e\(i)"] = (s.partition, s.offset) }
            // Long poll: a read at the end waits for the next append.
            var r = ReadRequest()
            r.partition = response.statuses[0].partition
            r.fromOffset = response.statuses.filter { $0.partition == r.partition }.map(\.offset).max()! + 1
            r.waitMs = 20_000
            let request = r
            async let polled = client.call(IngestAPI.read, request)
            try await Task.sleep(for: .milliseconds(100))
            _ = try await append(client, [view("late", user: 1)])
            let got = try await polled
            #expect(got.events.map { $0.event!.eventId } == ["late"])
            var bad = ReadRequest()
            bad.partition = 7
            await #expect { try await client.call(IngestAPI.read, bad) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
        }
        try await withIngest(dataDir: dir, settings: settings) { client, _ in
            var stored: [StoredEvent] = []
            for partition in 0..<2 {
                let events = try await readPartition(client, partition)
                for s in events where s.event!.eventId != "late" {
                    #expect(offsets[s.event!.eventId]! == (UInt32(partition), s.offset))
                }
                stored += events
            }
            #expect(stored.count == 21)
            // Per-user order is preserved within the user's partition.
            for user in 1...5 {
                let seq = stored.filter { $0.event!.userId == Int64(user) && $0.event!.eventId != "late" }.map {
                    Int($0.event!.eventId.dropFirst())!
                }
                #expect(seq == seq.sorted())
            }
            // Read's user filter: only that user's events of the partition, the others read past.
            for user in Int64(1)...5 {
                var r = ReadRequest()
                r.partition = UInt32(StableHash.partition(of: user, among: 2))
                r.userId = user
                let mine = try await client.call(IngestAPI.read, r)
                #expect(mine.events.map { $0.event!.userId }.allSatisfy { $0 == user })
                #expect(mine.events.count == stored.filter { $0.event!.userId == user }.count)
                #expect(mine.nextOffset == mine.endOffset)
            }
        }
    }

    @Test func partitionCountCannotChange() async throws {
        let dir = temporaryDirectory()
        try await withIngest(dataDir: dir) { _, _ in }
        var settings = IngestSettings()
        settings.partitions = 8
        await #expect(throws: ServiceError.self) { try await withIngest(dataDir: dir, settings: settings) { _, _ in } }
    }

    @Test func sipHash128ReferenceVector() {
        // SipHash-2-4-128, key 00..0f, empty message (reference test vectors).
        let key = (0..<16).map { UInt8($0) }
        let k0 = key.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let k1 = key.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
        let (h0, h1) = SipHash128.hash("", k0: k0, k1: k1)
        let bytes = withUnsafeBytes(of: h0.littleEndian) { Array($0) } + withUnsafeBytes(of: h1.littleEndian) { Array($0) }
        #expect(bytes == [0xA3, 0x81, 0x7F, 0x04, 0xBA, 0x25, 0xA8, 0xE6, 0x6D, 0xF6, 0x72, 0x14, 0xC7, 0x55, 0x02, 0x93])
        let p = Pseudonymizer(key: key)
        #expect(p.pseudonym("10.0.0.1") == p.pseudonym("10.0.0.1"))
        #expect(p.pseudonym("10.0.0.1") != p.pseudonym("10.0.0.2"))
        #expect(Pseudonymizer(key: key.reversed()).pseudonym("10.0.0.1") != p.pseudonym("10.0.0.1"))
        // Stored pseudonyms must stay stable across versions: "p:" and the 16 hash bytes in order.
        let (a, b) = SipHash128.hash("10.0.0.1", k0: k0, k1: k1)
        let hashBytes = withUnsafeBytes(of: a.littleEndian) { Array($0) } + withUnsafeBytes(of: b.littleEndian) { Array($0) }
        #expect(p.pseudonym("10.0.0.1") == "p:" + hashBytes.map { String(format: "%02x", $0) }.joined())
    }
}

@Suite("Seen event ids")
struct SeenEventIDsTests {
    @Test func boundedByCountOldestForgottenFirst() {
        let seen = SeenEventIDs(capacity: 3)
        for i in 0..<3 { #expect(seen.insert(.init("e\(i)"), atMs: Int64(i))) }
        #expect(!seen.insert(.init("e0"), atMs: 10))
        #expect(seen.insert(.init("e3"), atMs: 11))  // forgets e0
        #expect(seen.count == 3)
        #expect(seen.insert(.init("e0"), atMs: 12))  // e0 is new again; forgets e1
        #expect(!seen.insert(.init("e2"), atMs: 13))
        #expect(seen.insert(.init("e1"), atMs: 14))
    }

    @Test func boundedByIngestionAge() {
        let seen = SeenEventIDs(capacity: 100, maxAgeMs: 1000)
        #expect(seen.insert(.init("a"), atMs: 0))
        #expect(seen.insert(.init("b"), atMs: 600))
        #expect(!seen.insert(.init("a"), atMs: 900))
        #expect(seen.insert(.init("a"), atMs: 1_500))  // a was ingested 1.5 s ago: forgotten
        #expect(!seen.insert(.init("b"), atMs: 1_550))
        #expect(seen.count == 2)
    }

    @Test("the id table agrees with a Set through inserts, removals and growth, collisions included")
    func idTableAgreesWithASet() {
        var table = IDTable()
        var reference = Set<SeenEventIDs.ID>()
        var rng = SystemRandomNumberGenerator()
        // Few distinct first words, so probe runs are long and removals shift entries.
        func randomID() -> SeenEventIDs.ID {
            SeenEventIDs.ID(a: UInt64.random(in: 0..<2_048, using: &rng), b: UInt64.random(in: 1..<4, using: &rng))
        }
        for step in 0..<30_000 {
            let id = randomID()
            if step % 3 == 2 {
                table.remove(id)
                reference.remove(id)
            } else {
                #expect(table.insert(id) == reference.insert(id).inserted)
            }
            if step % 3_000 == 0 {
                for probe in reference { #expect(table.contains(probe)) }
            }
        }
        #expect(table.count == reference.count && reference.count > 2_000)
        for id in reference { #expect(table.contains(id)) }
        #expect(!table.contains(SeenEventIDs.ID(a: 1 << 40, b: 7)))
    }
}
