import Foundation
import TestSupport
import Testing

/// deploy/: the Prometheus configuration, alert rules and Grafana dashboard name metrics and
/// ports the services really have.
@Suite("Deploy samples")
struct DeploySamplesTests {
    static func read(_ path: String) throws -> String {
        try String(contentsOf: repositoryRoot.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every `persona_*` name registered in the sources.
    static func registeredMetrics() throws -> Set<String> {
        var names: Set<String> = []
        for folder in ["Services", "Shared"] {
            let root = repositoryRoot.appendingPathComponent(folder).path
            let files = FileManager.default.enumerator(atPath: root)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
            for file in files {
                let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
                names.formUnion(Self.names(in: text, quoted: true))
            }
        }
        return names
    }

    static func names(in text: String, quoted: Bool) -> Set<String> {
        let pattern = quoted ? "\"(persona_[a-z0-9_]+)\"" : "(persona_[a-z0-9_]+)"
        let regex = try! NSRegularExpression(pattern: pattern)
        let range = NSRange(text.startIndex..., in: text)
        return Set(regex.matches(in: text, range: range).compactMap { Range($0.range(at: 1), in: text).map { String(text[$0]) } })
    }

    @Test("the dashboard and the alerts query only metrics the services export")
    func metricsExist() throws {
        let known = try Self.registeredMetrics()
        #expect(known.contains("persona_rpc_calls_total") && known.count > 30)
        let dashboard = try JSONSerialization.jsonObject(with: Data(try Self.read("deploy/grafana-dashboard.json").utf8)) as? [String: Any]
        let panels = dashboard?["panels"] as? [[String: Any]] ?? []
        #expect(panels.count >= 10)
        let used = Self.names(
            in: try Self.read("deploy/grafana-dashboard.json") + (try Self.read("deploy/persona-alerts.yml")), quoted: false)
        #expect(!used.isEmpty)
        for name in used {
            let base = name.replacingOccurrences(of: "_bucket", with: "")
            #expect(known.contains(base), "\(name) is not a metric any service exports")
        }
    }

    @Test("Prometheus scrapes each service's metrics port as compose.yaml publishes it")
    func scrapeTargets() throws {
        let prometheus = try Self.read("deploy/prometheus.yml"), compose = try Self.read("compose.yaml")
        for (service, port) in [("ingest", 9101), ("feature", 9102), ("model", 9103), ("risk-control", 9104), ("recommend", 9105)] {
            #expect(prometheus.contains("\"\(service):\(port)\""), "\(service) is not scraped at \(port)")
            #expect(compose.contains("PERSONA_METRICS_PORT: \"\(port)\""), "compose.yaml does not give a service metrics port \(port)")
        }
    }
}
