import Feature
import Foundation
import FoundationNetworking
import Ingest
import Model
import RPC
import Recommend
import RiskControl
import ServiceKit
import TestSupport
import Testing
import Wire

/// Starts `S` in-process on free ports, runs `body`, then shuts it down gracefully.
func withService<S: PersonaService>(_ type: S.Type, settings: S.Settings, _ body: (ServiceHost<S>, Int, Int) async throws -> Void)
    async throws
{
    try await withHostedService(type, settings: settings) { try await body($0.host, $0.rpcPort, $0.metricsPort) }
}

func httpGet(port: Int, path: String) async throws -> (status: Int, body: String) {
    let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
}

@Suite("Service host", .timeLimit(.minutes(2)))
struct ServiceHostTests {
    @Test func ingestAnswersHealthAndExportsMetrics() async throws { try await check(IngestService.self, settings: IngestSettings()) }
    @Test func featureAnswersHealthAndExportsMetrics() async throws { try await check(FeatureService.self, settings: FeatureSettings()) }
    @Test func modelAnswersHealthAndExportsMetrics() async throws { try await check(ModelService.self, settings: ModelService.Settings()) }
    @Test func riskControlAnswersHealthAndExportsMetrics() async throws {
        try await check(RiskControlService.self, settings: isolatedRiskSettings())
    }
    @Test func recommendAnswersHealthAndExportsMetrics() async throws {
        try await check(RecommendService.self, settings: RecommendSettings())
    }

    /// Peers on free ports, so a suite running on the default ports is never reached.
    private func isolatedRiskSettings() -> RiskSettings {
        var s = RiskSettings()
        (s.featurePort, s.modelPort, s.ingestPort) = (freePort(), freePort(), freePort())
        return s
    }

    private func check<S: PersonaService>(_ type: S.Type, settings: S.Settings) async throws {
        try await withService(type, settings: settings) { host, rpc, metrics in
            let client = RPCClient(host: "127.0.0.1", port: rpc)
            let health = try await client.call(HealthAPI.check, HealthRequest())
            #expect(health.service == S.name)
            #expect(health.status == .serving)
            #expect(health.checks.contains { $0.key == "data_dir" && $0.value == "writable" })
            await #expect { try await client.call(TestMethods.unknown, HealthRequest()) } throws: {
                ($0 as? RPCError)?.code == .unimplemented
            }
            await client.shutdown()

            let page = try await httpGet(port: metrics, path: "/metrics")
            #expect(page.status == 200)
            #expect(page.body.contains(#"persona_rpc_calls_total{method="Health/Check",status="ok"} 1"#))
            #expect(page.body.contains(#"persona_rpc_calls_total{method="unknown",status="unimplemented"} 1"#))
            #expect(page.body.contains("persona_rpc_duration_seconds_bucket"))
            #expect(page.body.contains("persona_rpc_in_flight 0"))
            let healthPage = try await httpGet(port: metrics, path: "/health")
            #expect(healthPage.status == 200)
            #expect(healthPage.body.contains(#""service":"\#(S.name)""#))
            #expect(try await httpGet(port: metrics, path: "/nope").status == 404)
        }
    }

    @Test func dataDirectoryIsExclusive() async throws {
        let dir = temporaryDirectory()
        let first = try DataDirectory(path: dir)
        #expect(throws: DataDirectory.Error.self) { try DataDirectory(path: dir) }
        _ = first
    }

    @Test func optionsResolveFlagsThenEnvironmentThenDefaults() throws {
        var options = try ServiceOptions.parse([])
        let env = ["PERSONA_PORT": "8101", "PERSONA_METRICS_PORT": "8201", "PERSONA_DATA_DIR": "/srv/ingest", "PERSONA_LOG_LEVEL": "debug"]
        let fromEnv = try options.resolve(service: "ingest", defaultPort: 7101, defaultMetricsPort: 9101, environment: env)
        #expect(fromEnv.port == 8101 && fromEnv.metricsPort == 8201 && fromEnv.dataDir == "/srv/ingest" && fromEnv.logLevel == .debug)
        options.port = 9999
        let fromFlag = try options.resolve(service: "ingest", defaultPort: 7101, defaultMetricsPort: 9101, environment: env)
        #expect(fromFlag.port == 9999)
        let defaults = try ServiceOptions.parse([]).resolve(
            service: "ingest", defaultPort: 7101, defaultMetricsPort: 9101, environment: [:])
        #expect(defaults.port == 7101 && defaults.metricsPort == 9101 && defaults.dataDir == "data/ingest" && defaults.host == "127.0.0.1")
        #expect(throws: (any Error).self) {
            try ServiceOptions.parse([]).resolve(service: "x", defaultPort: 1, defaultMetricsPort: 2, environment: ["PERSONA_PORT": "http"])
        }
    }
}

enum TestMethods {
    static let unknown = Method<HealthRequest, HealthResponse>(id: 0x7E01, name: "Test/Unknown")
}
