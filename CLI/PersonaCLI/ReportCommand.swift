import ArgumentParser
import Charts
import Foundation
import RPC
import Wire

/// `persona model report NAME [VERSION]`: one self-contained HTML file (inline SVG charts, no
/// scripts, no external files) with a version's evaluation. A recommender's: metrics against
/// the popularity baseline, metric-at-K curves, the version against the model's last
/// versions, the training loss per iteration, the search grid. A classifier's: ROC and
/// precision-recall curves, the calibration plot, the confusion matrix at each suggested
/// threshold, feature importance (gain and permutation). A segmentation's: segment sizes and
/// profiles, the silhouette of each k tried. All with parameters and data.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Write a model version's evaluation report as an HTML file.")

    @Argument(help: "The model name.") var name: String
    @Argument(help: "The version (default: the published one, else the latest).") var version: UInt32 = 0
    @Option(name: .shortAndLong, help: "Where to write it (default: NAME-vVERSION.html).") var output: String?
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var r = GetReportRequest()
        r.name = name
        r.version = version
        let report = try await endpoints.call("model") { try await $0.call(ModelAPI.getReport, r, timeout: .seconds(5)) }
        var l = ListModelsRequest()
        l.name = name
        let versions = try await endpoints.call("model") { try await $0.call(ModelAPI.listModels, l, timeout: .seconds(5)) }.models
        let html = ReportHTML.render(report, versions: versions)
        let path = output ?? "\(name)-v\(report.version).html"
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        print("wrote \(path) (\(name) v\(report.version), \(html.utf8.count) bytes)")
    }
}

/// The report page and its charts, as text.
enum ReportHTML {
    /// The start of a report page up to its body: the title and the style every report shares.
    static func head(title: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(Charts.escape(title))</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 32px auto; max-width: \
        1000px; color: #222; }
        h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid \
        #ddd; padding-bottom: 4px; }
        .sub { color: #666; margin-top: 0; } table { border-collapse: collapse; margin: 8px 0; } td, th { padding: \
        4px 12px; border-bottom: 1px solid #eee; text-align: left; }
        td:nth-child(n+2) { font-variant-numeric: tabular-nums; } .charts { display: flex; flex-wrap: wrap; gap: \
        24px; } svg { background: #fafafa; border: 1px solid #eee; } .note { color: #8a4b00; max-width: 940px; }
        </style></head><body>
        """
    }

    static func render(_ report: EvaluationReport, versions: [ModelInfo]) -> String {
        let info = versions.first { $0.version == report.version }
        let baseline = Dictionary(report.baseline.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let metricRows = report.metrics.map { m in
            let b = baseline[m.name]
            let lift = b.flatMap { $0 > 0 ? String(format: "%.2fx", m.value / $0) : nil } ?? "-"
            let cells = [Charts.escape(m.name), Charts.number(m.value), b.map(Charts.number) ?? "-", lift]
            return "<tr>" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>"
        }.joined()
        let classifier = [.gbdt, .logistic, .ftrl].contains(report.kind)
        let segments = report.kind == .kmeans
        let atK = report.curves.filter { $0.name != "loss" && !classifier && !segments }
        let loss = report.curves.first { $0.name == "loss" && !$0.x.isEmpty }
        let held =
            classifier
            ? "\(report.testPairs) held-out rows of \(report.users) users"
            : "\(report.users) users evaluated, \(report.testPairs) held-out pairs"
        let metricsSection =
            segments
            ? segmentsSection(report)
            : """
            <h2>Metrics on the held-out split</h2>
            <p>\(held). Protocol: \(Charts.escape(report.protocol)).</p>
            <table><tr><th>metric</th><th>this \
            version</th><th>\(classifier ? "prevalence baseline" : "popularity baseline")</th><th>lift</th></tr>\(metricRows)</table>
            """
        let recent = versions.sorted { $0.version < $1.version }.suffix(6)
        let ndcgName = report.metrics.first { $0.name.hasPrefix("ndcg@") }?.name ?? "ndcg@10"
        let versionBars = recent.map { v in
            (label: "v\(v.version)", value: v.metrics.first { $0.name == ndcgName }?.value ?? 0, highlight: v.version == report.version)
        }
        let params = report.params.map { "<tr><td>\(Charts.escape($0.key))</td><td>\(Charts.escape($0.value))</td></tr>" }.joined()
        let search = report.search.map { "<tr><td>\(Charts.escape($0.name))</td><td>\(Charts.number($0.y.first ?? 0))</td></tr>" }.joined()
        let created = ProfileText.date(report.createdMs)
        let took = info.map { String(format: " in %.1f s", $0.trainingSeconds) } ?? ""
        let data =
            info.map {
                classifier
                    ? " on \($0.interactions) rows of \($0.users) users, \($0.items) features"
                    : " on \($0.interactions) interactions of \($0.users) users and \($0.items) items"
            } ?? ""
        let lossChart =
            loss.map {
                Charts.lineChart(
                    title: classifier ? "Validation loss per tree" : "Training loss per iteration",
                    xLabel: classifier ? "tree" : "iteration",
                    series: [("loss", $0.x, $0.y)])
            } ?? ""
        let searchSection =
            search.isEmpty
            ? ""
            : "<h2>Search (validation \(Charts.escape(ndcgName)) of each candidate)</h2>"
                + "<table><tr><th>candidate</th><th>\(Charts.escape(ndcgName))</th></tr>\(search)</table>"
        let range =
            info.map {
                ($0.dataFromMs == 0 ? "start" : ProfileText.date($0.dataFromMs)) + " to "
                    + ($0.dataToMs == 0 ? "end" : ProfileText.date($0.dataToMs))
            } ?? "-"
        return """
            \(head(title: "\(report.name) v\(report.version): evaluation"))
            <h1>\(Charts.escape(report.name)) v\(report.version) <span \
            style="color:#888;font-weight:normal">(\(Charts.escape(report.kind.name ?? "")))</span></h1>
            <p class="sub">trained \
            \(created)\(took)\(data)\(info?.published == true ? " · published" : "")</p>
            \(metricsSection)
            \(classifier ? classifierSection(report) : "")
            \(comparisonSection(report))
            <div class="charts">
            \(atK.isEmpty ? "" : Charts.lineChart(title: "Metrics at K", xLabel: "K", series: atK.map { ($0.name, $0.x, $0.y) }))
            \(classifier || segments ? "" : Charts.barChart(title: "\(ndcgName) of the latest versions", bars: versionBars))
            \(lossChart)
            </div>
            <h2>Parameters</h2>
            <table>\(params)</table>
            \(searchSection)
            <h2>Data</h2>
            <table><tr><td>data \
            range</td><td>\(range)</td></tr>
            <tr><td>log offsets</td><td>\(info?.logOffsets.map(String.init).joined(separator: ", ") ?? "-")</td></tr>
            <tr><td>artifact</td><td>\(info.map { "\($0.artifactBytes) bytes, CRC-32C \($0.checksum)" } ?? "-")</td></tr>
            <tr><td>job</td><td>\(Charts.escape(info?.jobId ?? "-"))</td></tr></table>
            </body></html>

            """
    }

    /// A classifier's curves (ROC, precision-recall, calibration against the diagonal), its
    /// confusion matrix at each suggested threshold, the thresholds and the feature importance.
    static func classifierSection(_ report: EvaluationReport) -> String {
        func curve(_ name: String) -> Curve? { report.curves.first { $0.name == name && !$0.x.isEmpty } }
        func auc(_ name: String) -> String { report.metrics.first { $0.name == name }.map { String(format: " (%.4f)", $0.value) } ?? "" }
        var charts = ""
        if let roc = curve("roc") {
            charts += Charts.lineChart(
                title: "ROC curve\(auc("roc_auc"))", xLabel: "false positive rate",
                series: [("model", roc.x, roc.y), ("chance", [0, 1], [0, 1])], unit: true)
        }
        if let pr = curve("precision-recall") {
            charts += Charts.lineChart(
                title: "Precision against recall\(auc("pr_auc"))", xLabel: "recall", series: [("model", pr.x, pr.y)], unit: true)
        }
        if let cal = curve("calibration") {
            charts += Charts.lineChart(
                title: "Calibration: observed rate per predicted bin", xLabel: "predicted probability",
                series: [("model", cal.x, cal.y), ("perfect", [0, 1], [0, 1])], unit: true)
        }
        // Curves from a handful of rows say little: say so where they are drawn.
        let positives = Int(report.metrics.first { $0.name == "positives" }?.value ?? 0)
        let points = curve("roc")?.x.count ?? 0
        if report.testPairs < 200 || positives < 20 || (points > 0 && points < 5) {
            charts +=
                """
                <p class="note">Only \(report.testPairs) held-out rows (\(positives) positive) and \(points) points on the ROC \
                curve: too few for these curves and metrics to mean much; another few rows could move them a long way.</p>
                """
        }
        let confusion = report.confusion.map { c -> String in
            let flagged = c.truePositives + c.falsePositives, positives = c.truePositives + c.falseNegatives
            let precision = flagged == 0 ? "-" : String(format: "%.3f", Double(c.truePositives) / Double(flagged))
            let recall = positives == 0 ? "-" : String(format: "%.3f", Double(c.truePositives) / Double(positives))
            return """
                <table style="display:inline-table;margin-right:24px"><tr><th colspan="3">\(Charts.escape(c.name)): p &gt;= \
                \(String(format: "%.3f", c.probability))</th></tr>
                <tr><th></th><th>flagged</th><th>passed</th></tr>
                <tr><th>positive</th><td>\(c.truePositives)</td><td>\(c.falseNegatives)</td></tr>
                <tr><th>negative</th><td>\(c.falsePositives)</td><td>\(c.trueNegatives)</td></tr>
                <tr><td colspan="3">precision \(precision), recall \(recall)</td></tr></table>
                """
        }.joined()
        let thresholds = report.thresholds.map { "<li>\(Charts.escape($0.name))</li>" }.joined()
        // "name: gain 12.3 permutation 0.0123" as a bar per feature, the 15 with the most gain.
        let top = report.importance.prefix(15)
        let bars = top.map { m in (label: String(m.name.prefix { $0 != ":" }), value: m.value) }
        let importance = top.map { m -> String in
            let name = String(m.name.prefix { $0 != ":" })
            let permutation = m.name.range(of: "permutation ").map { String(m.name[$0.upperBound...]) } ?? "-"
            return "<tr><td>\(Charts.escape(name))</td><td>\(Charts.number(m.value))</td><td>\(Charts.escape(permutation))</td></tr>"
        }.joined()
        let confusionPart = confusion.isEmpty ? "" : "<h2>Confusion at the suggested thresholds (test rows)</h2>\(confusion)"
        let thresholdPart = thresholds.isEmpty ? "" : "<h2>Suggested thresholds (validation rows)</h2><ul>\(thresholds)</ul>"
        let importancePart =
            bars.isEmpty
            ? ""
            : """
            <h2>Feature importance</h2><div \
            class="charts">\(Charts.hBarChart(title: "Split gain or |coefficient| (top \(bars.count))", bars: bars))
            <table><tr><th>feature</th><th>gain</th><th>permutation (ROC-AUC lost)</th></tr>\(importance)</table></div>
            """
        return "<div class=\"charts\">\(charts)</div>\n\(confusionPart)\n\(thresholdPart)\n\(importancePart)"
    }

    /// A segmentation's sizes and profiles ("segment 3: 412 users: spends ..."), and the
    /// silhouette of each k tried.
    static func segmentsSection(_ report: EvaluationReport) -> String {
        let rows = report.metrics.map { m -> (id: String, users: Double, text: String) in
            let parts = m.name.components(separatedBy: ": ")
            return (parts.first?.replacingOccurrences(of: "segment ", with: "") ?? "", m.value, parts.dropFirst(2).joined(separator: ": "))
        }
        let table = rows.map { "<tr><td>\(Charts.escape($0.id))</td><td>\(Int($0.users))</td><td>\(Charts.escape($0.text))</td></tr>" }
            .joined()
        let silhouette = report.curves.first { $0.name == "silhouette" && !$0.x.isEmpty }
        return """
            <h2>Segments</h2>
            <p>\(report.users) users. Protocol: \(Charts.escape(report.protocol)).</p>
            <div class="charts">
            \(Charts.barChart(title: "Users per segment", bars: rows.map { (label: $0.id, value: $0.users, highlight: true) }))
            \(silhouette.map { Charts.lineChart(title: "Mean silhouette per k", xLabel: "k", series: [("silhouette", $0.x, $0.y)]) } ?? "")
            </div>
            <table><tr><th>segment</th><th>users</th><th>what sets it apart</th></tr>\(table)</table>
            """
    }

    /// Horizontal bars in the order given, labels on the left.
    /// A sequence model's report: the other kinds on the same split, each one's metrics and
    /// training time, with their NDCG as bars.
    static func comparisonSection(_ report: EvaluationReport) -> String {
        guard let names = report.comparison.first?.metrics.map(\.name), !names.isEmpty else { return "" }
        let ndcgName = names.first { $0.hasPrefix("ndcg@") } ?? names[0]
        let rows = report.comparison.map { c in
            let values = Dictionary(c.metrics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            return "<tr><td>\(Charts.escape(c.model))</td>" + names.map { "<td>\(values[$0].map(Charts.number) ?? "-")</td>" }.joined()
                + "<td>\(String(format: "%.2f", c.trainingSeconds))</td></tr>"
        }.joined()
        let bars = report.comparison.map { c in (label: c.model, value: c.metrics.first { $0.name == ndcgName }?.value ?? 0) }
        return """
            <h2>Beside the other kinds (same split, same protocol, their defaults)</h2>
            <table><tr><th>model</th>\(names.map { "<th>\(Charts.escape($0))</th>" }.joined())<th>training s</th></tr>\(rows)</table>
            \(Charts.hBarChart(title: "\(ndcgName) by model", bars: bars))
            """
    }

}
