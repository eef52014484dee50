import EventLog
import Foundation
import RPC
import TestSupport
import Testing
import Wire

@testable import Ingest

/// Ingest with its log on a real `nats-server` (JetStream), through the same RPC calls as on
/// the embedded log.
@Suite("Ingest on JetStream", .serialized, .timeLimit(.minutes(2)))
struct JetStreamIngestTests {
    @Test("appends are acknowledged, read back in order by partition, de-duplicated after a restart, and erasable")
    func appendReadErase() async throws {
        let nats = try NATSServers(count: 1)
        defer { nats.stop() }
        var settings = IngestSettings()
        settings.partitions = 2
        settings.log = try LogChoice(parsing: nats.url)
        settings.logReplicas = 1
        let events = (0..<300).map { view("js-\($0)", user: Int64(1 + $0 % 17), item: Int64(1 + $0)) }
        try await withIngest(settings: settings) { client, host in
            let first = try await append(client, events)
            #expect(first.accepted == 300 && first.duplicates == 0, "\(first.statuses.filter { $0.code != .accepted }.prefix(3))")
            #expect(Set(first.statuses.map(\.offset)).count == 300)
            let stored = try await readAll(client, partitions: 2)
            #expect(Set(stored.map { $0.event?.eventId ?? "" }) == Set(events.map(\.eventId)))
            // Per user, the order they were sent in.
            for user in 1...17 {
                let mine = stored.compactMap(\.event).filter { $0.userId == Int64(user) }.map(\.itemId)
                #expect(mine == mine.sorted())
            }
            #expect(await host.service.healthChecks().contains { $0.0 == "log" && $0.1.contains("stream persona") })
        }
        // A fresh ingest on the same stream still knows every id.
        try await withIngest(settings: settings) { client, _ in
            let again = try await append(client, Array(events.prefix(50)) + [view("js-new", user: 3)])
            #expect(again.duplicates == 50 && again.accepted == 1)
            var erase = EraseRequest()
            erase.userId = 3
            let erased = try await client.call(IngestAPI.erase, erase)
            #expect(erased.eventsRemoved == UInt64(events.count { $0.userId == 3 } + 1))
            let left = try await readAll(client, partitions: 2).compactMap(\.event)
            #expect(left.filter { $0.userId == 3 }.map(\.kind) == [.erasure])
            // 300 events, the new one and the erasure were stored; the user's own were removed.
            #expect(left.count == 302 - Int(erased.eventsRemoved))
        }
    }
}
