import ArgumentParser
import Datasets
import Foundation
import Math
import RPC
import Wire

/// `persona eval fraud --test FILE`: held-out fraud rows replayed in time order against the
/// running suite, as the shop would live them: each row's registration appended at its
/// signup, Score called at its purchase (features as of that moment, everything before it
/// read by the feature service), then the purchase appended. Score's answers are ranked
/// against the rows' labels (never imported).
struct EvalFraud: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fraud",
        abstract:
            """
            Replay held-out fraud rows in time order (signup, Score at the purchase, then the purchase) and rank \
            Score's answers against their labels (ROC-AUC, PR-AUC).
            """
    )

    @Option(help: "The held-out rows (fraud format, labelled; the labels are never imported).") var test: String
    @Option(help: "At most this many orders (0: every one), the first in time order.") var maxOrders = 0
    @Option(help: "Seconds to wait for the feature service to read what was appended before each Score.")
    var readTimeout: Double = 10
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var skips = DatasetFormat.Skips()
        let events = DatasetFormat.fraud.events(lines: try ImportCommand.lines(of: test), options: .init(withLabels: true), skips: &skips)
        var labels: [String: Float] = [:]
        for e in events where e.kind == .label {
            if let l = e.label { labels[l.orderId] = l.kind == .confirmedFraud || l.kind == .chargeback ? 1 : 0 }
        }
        // Time order; at the same minute a signup comes before the purchase it leads to.
        var timeline = events.enumerated().filter { $0.element.kind != .label }
        timeline.sort { ($0.element.timestampMs, $0.offset) < ($1.element.timestampMs, $1.offset) }
        var orders = timeline.filter { $0.element.kind == .purchase }.count
        if maxOrders > 0 { orders = min(orders, maxOrders) }

        let ingest = try endpoints.endpoint("ingest"), feature = try endpoints.endpoint("feature")
        let risk = try endpoints.endpoint("risk-control")
        let ingestClient = RPCClient(host: ingest.host, port: ingest.port)
        let featureClient = RPCClient(host: feature.host, port: feature.port)
        let riskClient = RPCClient(host: risk.host, port: risk.port)
        var scores: [Float] = [], probabilities: [Float] = [], truth: [Float] = []
        var latencies: [Duration] = []
        var pending: [Event] = []
        var bar = ProgressBar()
        do {
            for (_, e) in timeline {
                guard e.kind == .purchase else {
                    pending.append(e)
                    continue
                }
                guard scores.count < orders else { break }
                try await append(pending, ingest: ingestClient, feature: featureClient)
                pending = []
                let start = ContinuousClock.now
                let answer = try await riskClient.call(RiskAPI.score, Self.request(e), timeout: .seconds(5))
                latencies.append(start.duration(to: .now))
                guard let d = answer.decision else { throw ValidationError("risk-control answered without a decision") }
                scores.append(Float(d.score))
                probabilities.append(d.probability)
                truth.append(labels[e.order?.orderId ?? ""] ?? 0)
                pending.append(e)
                bar.draw(fraction: Double(scores.count) / Double(orders), text: "\(scores.count)/\(orders) orders")
            }
            try await append(pending, ingest: ingestClient, feature: featureClient)
        } catch {
            for c in [ingestClient, featureClient, riskClient] { await c.shutdown() }
            throw ValidationError("replay stopped: \(error)")
        }
        bar.finish()
        for c in [ingestClient, featureClient, riskClient] { await c.shutdown() }
        guard !scores.isEmpty else {
            print("no order in \(test)")
            throw ExitCode(1)
        }
        let frauds = truth.filter { $0 > 0.5 }.count
        print("replayed \(scores.count) orders (\(frauds) fraudulent) through Score")
        print(
            Table.render(
                header: ["METRIC", "VALUE"],
                rows: [
                    ["ROC-AUC (score)", String(format: "%.4f", BinaryMetrics.rocAUC(scores, truth))],
                    ["PR-AUC (score)", String(format: "%.4f", BinaryMetrics.prAUC(scores, truth))],
                    ["ROC-AUC (probability)", String(format: "%.4f", BinaryMetrics.rocAUC(probabilities, truth))],
                    ["PR-AUC (probability)", String(format: "%.4f", BinaryMetrics.prAUC(probabilities, truth))],
                    ["fraud share", String(format: "%.4f", Double(frauds) / Double(scores.count))],
                    ["Score p50 / p99", Table.quantiles(latencies)],
                ]))
    }

    /// The order as the shop would ask about it: raw identifiers, the purchase's time.
    static func request(_ e: Event) -> ScoreRequest {
        var r = ScoreRequest()
        let order = e.order ?? Order()
        r.userId = e.userId
        r.orderId = order.orderId
        r.amount = order.total
        r.currency = order.currency
        r.lines = order.lines
        r.deviceId = e.deviceId
        r.ip = e.ip
        r.channel = e.channel
        r.sessionId = e.sessionId
        r.userAgent = e.userAgent
        r.timestampMs = e.timestampMs
        r.kind = .order
        return r
    }

    /// Appends `events` and waits until the feature service has read them.
    func append(_ events: [Event], ingest: RPCClient, feature: RPCClient) async throws {
        var needed: [UInt32: UInt64] = [:]
        for start in stride(from: 0, to: events.count, by: 5000) {
            var request = AppendRequest()
            request.events = Array(events[start..<min(start + 5000, events.count)])
            let response = try await ingest.call(IngestAPI.append, request, timeout: .seconds(30))
            for s in response.statuses where s.code == .accepted {
                needed[s.partition] = max(needed[s.partition] ?? 0, s.offset + 1)
            }
            if let bad = response.statuses.first(where: { $0.code == .rejected }) {
                throw ValidationError("ingest rejected an event: \(bad.detail)")
            }
        }
        guard !needed.isEmpty else { return }
        let started = ContinuousClock.now
        while true {
            let health = try await feature.call(HealthAPI.check, HealthRequest(), timeout: .seconds(5))
            let offsets = health.checks.first { $0.key == "offsets" }?.value.split(separator: ",").compactMap { UInt64($0) } ?? []
            if needed.allSatisfy({ Int($0.key) < offsets.count && offsets[Int($0.key)] >= $0.value }) { return }
            guard started.duration(to: .now) < .seconds(readTimeout) else {
                throw ValidationError("the feature service has not read the appended events after \(Int(readTimeout)) s")
            }
            try await Task.sleep(for: .microseconds(500))
        }
    }
}
