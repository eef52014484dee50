import Charts
import Foundation
import Hummingbird
import RPC
import Wire

/// The dashboard: decisions and declines per hour over the last day, the score histogram,
/// each rule's hits and false-positive ratio over the last week's labelled decisions, and the
/// model deciding with its ROC-AUC, drawn as SVG on the server (`Charts`).
extension Console {
    /// A rule's hits over the week, at most this many counted.
    static let hitsCounted = 1000

    func dashboardPage(_ session: ConsoleSession) async throws -> Response {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Whole hours, this one and the 24 before: risk-control answers from its running counts.
        let thisHour = now / 3_600_000
        var q = DecisionStatsRequest()
        (q.fromMs, q.toMs, q.bucketMs) = ((thisHour - 24) * 3_600_000, 0, 3_600_000)
        let stats = try await risk.call(RiskAPI.decisionStats, q)
        // Every hour of the day, those without decisions at 0 (the stats list only hours with some).
        let byHour = Dictionary(stats.buckets.map { ($0.startMs / 3_600_000, $0) }, uniquingKeysWith: { a, _ in a })
        let hours = (0..<25).map { thisHour - 24 + Int64($0) }
        let perHour = Charts.lineChart(
            title: "Decisions and declines per hour", xLabel: "hours before now",
            series: [
                ("decisions", hours.map { Double($0 - thisHour) }, hours.map { Double(byHour[$0]?.decisions ?? 0) }),
                ("declines", hours.map { Double($0 - thisHour) }, hours.map { Double(byHour[$0]?.declines ?? 0) }),
            ])
        let histogram = Charts.barChart(
            title: "Scores of the last day",
            bars: stats.scoreHistogram.enumerated().map {
                (label: "\($0.offset * 100)", value: Double($0.element), highlight: $0.offset >= 7)
            })

        // Each rule in force: how often it fired this week, and how often wrongly among its labelled decisions.
        let rules = try await risk.call(RiskAPI.getRules, GetRulesRequest()).sets.first { !$0.shadow }?.rules ?? []
        var rows: [[String: Any]] = []
        for rule in rules {
            var r = QueryDecisionsRequest()
            (r.reason, r.fromMs, r.limit, r.withoutFeatures) = (rule.id, now - 7 * 86_400_000, UInt32(Self.hitsCounted), true)
            let hits = try await risk.call(RiskAPI.queryDecisions, r).decisions
            let labelled = hits.filter { $0.label != .unspecified }
            let wrong = labelled.filter { $0.label == .falsePositive || $0.label == .legitimate }.count
            rows.append([
                "rule": rule.id, "action": rule.action.name ?? "",
                "hits": hits.count >= Self.hitsCounted ? "\(Self.hitsCounted)+" : "\(hits.count)",
                "labelled": labelled.count,
                "false_positive": labelled.isEmpty ? "-" : String(format: "%.0f%%", 100 * Double(wrong) / Double(labelled.count)),
            ])
        }

        // The model risk-control decides with, and its ROC-AUC from the model service.
        let health = try await risk.call(HealthAPI.check, HealthRequest()).checks
        let served = health.first { $0.key == "model" }?.value ?? ""
        var model = served.isEmpty ? "none (rules and lists alone)" : served
        if let (name, version) = Self.nameVersion(served) {
            var m = ListModelsRequest()
            m.name = name
            if let info = try? await self.model.call(ModelAPI.listModels, m).models.first(where: { $0.version == version }),
                let auc = info.metrics.first(where: { $0.name == "roc_auc" })
            {
                model += String(format: ", ROC-AUC %.4f on its held-out rows", auc.value)
            }
        }
        let o = stats.outcome ?? LabelledOutcome()
        let object: [String: Any] = [
            "title": "Dashboard", "per_hour": perHour, "histogram": histogram, "rules": rows, "model": model,
            "decisions": stats.buckets.reduce(0) { $0 + Int($1.decisions) }, "labelled": o.labelled,
            "precision": String(format: "%.3f", o.precision), "recall": String(format: "%.3f", o.recall),
            "decline_rate": String(format: "%.2f%%", 100 * o.declineRate),
        ]
        return page("dashboard", object, session: session)
    }

    /// "fraud=3" as ("fraud", 3).
    static func nameVersion(_ text: String) -> (String, UInt32)? {
        let parts = text.split(separator: "=")
        guard parts.count == 2, let v = UInt32(parts[1]) else { return nil }
        return (String(parts[0]), v)
    }
}
