import EventLog
import Foundation
import Ingest
import RPC
import ServiceKit
import TestSupport
import Testing
import Wire

/// Feature folding ingest's log on three real `nats-server` processes (R3) while servers are
/// SIGKILLed under the producers.
@Suite("Feature on a JetStream cluster", .serialized, .timeLimit(.minutes(5)))
struct FeatureOnJetStreamTests {
    @Test("SIGKILL a NATS server while producers append, restart it, kill another: feature reads every acknowledged event once")
    func everyAcknowledgedEventOnce() async throws {
        try await NATSServers.exclusively {
            let nats = try NATSServers(count: 3)
            defer { nats.stop() }
            var settings = IngestSettings()
            settings.log = try LogChoice(parsing: nats.url)
            try await withIngest(settings: settings) { ingest, port in
                try await withFeature(ingestPort: port) { feature, _ in
                    var accepted: [Int64: Int] = [:]
                    var written = 0
                    func appendBatches(_ count: Int) async throws {
                        for _ in 0..<count {
                            var request = AppendRequest()
                            request.events = (written..<(written + 200)).map { i in
                                var e = Event()
                                e.eventId = "view-\(i)"
                                e.kind = .view
                                e.userId = Int64(i % 50 + 1)
                                e.itemId = Int64(i % 17 + 1)
                                e.timestampMs = 1_709_510_400_000 + Int64(i) * 1000
                                return e
                            }
                            // A batch that fails while a server is down is sent again with the same ids;
                            // every id is new to the log, so a duplicate is a retry's event stored before.
                            var response: AppendResponse?
                            for _ in 0..<5 where response == nil {
                                response = try? await ingest.call(IngestAPI.append, request, timeout: .seconds(30))
                            }
                            let answer = try #require(response)
                            let stored: Set<AppendCode> = [.accepted, .duplicate]
                            for (event, status) in zip(request.events, answer.statuses) where stored.contains(status.code) {
                                accepted[event.userId, default: 0] += 1
                            }
                            written += 200
                        }
                    }
                    try await nats.withRollingKills { try await appendBatches(5) }
                    #expect(accepted.values.reduce(0, +) == written)
                    try await waitConsumed(ingest: ingest, consumer: feature, timeout: .seconds(120))
                    for (user, count) in accepted {
                        var r = GetProfileRequest()
                        r.userId = user
                        let profile = try #require(try await feature.call(FeatureAPI.getProfile, r).profile)
                        let views = profile.counts.first { $0.kind == .view }?.counts?.lifetime
                        #expect(views == UInt64(count), "user \(user)")
                    }
                }
            }
        }
    }
}
