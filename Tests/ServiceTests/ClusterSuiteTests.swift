import DataStructures
import EventLog
import Feature
import Foundation
import Ingest
import Model
import RPC
import Recommend
import RiskControl
import ServiceKit
import TestSupport
import Testing
import Wire

/// The five services with ingest's log on three real `nats-server` processes (R3) and the
/// feature service as two replicas, each serving half the partitions.
@Suite("The suite on a JetStream cluster", .serialized, .timeLimit(.minutes(5)))
struct ClusterSuiteTests {
    /// 120 users, each viewing and buying a few of 40 items, from their own device.
    static func shop() -> [Event] {
        var events: [Event] = []
        let start: Int64 = 1_709_510_400_000
        for u in Int64(1)...120 {
            for k in Int64(0)..<6 {
                var e = Event()
                e.eventId = "v-\(u)-\(k)"
                e.kind = k < 4 ? .view : .purchase
                e.userId = u
                e.itemId = (u * 3 + k * 7) % 40 + 1
                e.timestampMs = start + u * 60_000 + k * 1_000
                e.deviceId = "device-\(u % 50)"
                if e.kind == .purchase {
                    var o = Order()
                    o.orderId = "o-\(u)-\(k)"
                    o.total = Double(10 + k)
                    var line = OrderLine()
                    line.itemId = e.itemId
                    line.quantity = 1
                    line.unitPrice = o.total
                    o.lines = [line]
                    e.order = o
                }
                events.append(e)
            }
        }
        return events
    }

    @Test("import, train, recommend and score with the log on three NATS servers (R3) and feature as two replicas")
    func wholeSuite() async throws {
        try await NATSServers.exclusively {
            let nats = try NATSServers(count: 3)
            defer { nats.stop() }
            let key = temporaryDirectory() + ".key"
            try Data((0..<32).map { UInt8($0 * 5 + 1) }).write(to: URL(fileURLWithPath: key))
            var ingestSettings = IngestSettings()
            ingestSettings.log = try LogChoice(parsing: nats.url)
            ingestSettings.pseudonymKeyFile = key
            let events = Self.shop()
            try await withHostedService(IngestService.self, settings: ingestSettings) { ingest in
                var consumer = ConsumerSettings()
                consumer.ingestPort = ingest.rpcPort
                consumer.readWait = .milliseconds(200)
                let modelPort = freePort()
                func replica(_ partitions: Set<Int>) -> FeatureSettings {
                    var s = FeatureSettings(consumer)
                    s.modelPort = modelPort
                    s.partitions = partitions
                    return s
                }
                try await withHostedService(FeatureService.self, settings: replica([0, 1])) { low in
                    try await withHostedService(FeatureService.self, settings: replica([2, 3])) { high in
                        let features = [("127.0.0.1", low.rpcPort), ("127.0.0.1", high.rpcPort)]
                        var modelSettings = ModelSettings(consumer)
                        (modelSettings.featurePort, modelSettings.moreFeatureReplicas) = (low.rpcPort, [features[1]])
                        try await withHostedService(ModelService.self, settings: modelSettings, port: modelPort) { model in
                            var recommendSettings = RecommendSettings()
                            (recommendSettings.modelPort, recommendSettings.ingestPort) = (model.rpcPort, ingest.rpcPort)
                            (recommendSettings.featurePort, recommendSettings.moreFeatureReplicas) = (low.rpcPort, [features[1]])
                            recommendSettings.featureTimeout = .seconds(5)
                            var riskSettings = RiskSettings()
                            (riskSettings.modelPort, riskSettings.ingestPort) = (model.rpcPort, ingest.rpcPort)
                            (riskSettings.featurePort, riskSettings.moreFeatureReplicas) = (low.rpcPort, [features[1]])
                            riskSettings.pseudonymKeyFile = key
                            riskSettings.featureTimeout = .seconds(2)
                            try await withHostedService(RecommendService.self, settings: recommendSettings) { recommend in
                                try await withHostedService(RiskControlService.self, settings: riskSettings) { risk in
                                    let clients = (model.client, recommend.client, risk.client)
                                    try await run(events, ingest.client, [low.client, high.client], clients.0, clients.1, clients.2)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private func run(
        _ events: [Event], _ ingest: RPCClient, _ replicas: [RPCClient], _ model: RPCClient, _ recommend: RPCClient, _ risk: RPCClient
    ) async throws {
        try await append(ingest, events)
        for replica in replicas { try await waitConsumed(ingest: ingest, consumer: replica) }
        try await waitConsumed(ingest: ingest, consumer: model)

        // Profiles, through the replica serving each user, equal a recount of the events.
        let health = try await replicas[1].call(HealthAPI.check, HealthRequest())
        #expect(health.checks.first { $0.key == "partitions" }?.value.hasPrefix("serving 2-3 (home 2-3)") == true)
        let router = FeatureReplicas(replicas.map { ($0.config.host, $0.config.port) })
        defer { Task { await router.shutdown() } }
        for u in Int64(1)...120 {
            var r = GetProfileRequest()
            r.userId = u
            let profile = try #require(try await router.call(FeatureAPI.getProfile, r, user: u).profile, "user \(u)")
            let mine = events.filter { $0.userId == u }
            #expect(profile.rfm?.frequency == UInt32(mine.filter { $0.kind == .purchase }.count), "user \(u)")
            #expect(profile.rfm?.monetary == mine.compactMap { $0.order?.total }.reduce(0, +), "user \(u)")
        }

        // Train and publish; recommend serves the models for a user of each replica.
        for kind in [ModelKind.itemKnn, .popularity] {
            let job = try await train(model, kind, publish: true)
            #expect(try await waitJob(model, job).state == .succeeded)
        }
        try await waitHealth(recommend, "models", "item_knn=1,popularity=1")
        for u in [Int64(1), 2, 3, 4, 5] {
            var request = RecommendRequest()
            request.userId = u
            request.n = 5
            let answer = try await recommend.call(RecommendAPI.recommend, request, timeout: .seconds(10))
            #expect(answer.items.count == 5, "user \(u) partition \(StableHash.partition(of: u, among: 4))")
        }

        // Score reads the request's features from the replica serving the user.
        for u in [Int64(1), 2, 3, 4, 5] {
            var r = ScoreRequest()
            r.userId = u
            r.orderId = "cluster-\(u)"
            r.amount = 25
            r.currency = "EUR"
            r.timestampMs = 1_709_600_000_000
            r.deviceId = "device-\(u % 50)"
            let decision = try #require(try await risk.call(RiskAPI.score, r, timeout: .seconds(10)).decision)
            #expect(!decision.reasons.contains { $0.code == "policy:features_unavailable" }, "user \(u): \(decision.reasons.map(\.code))")
        }
    }
}
