import ArgumentParser
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
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;"
        )
        .replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A value as a table or a bar shows it: whole numbers whole ("20", not "20.00"), else
    /// with the decimals its size needs.
    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "-" }
        if v == v.rounded() && abs(v) < 1e15 { return String(format: "%.0f", v) }
        let a = abs(v)
        return String(format: a >= 100 ? "%.0f" : (a >= 1 ? "%.2f" : "%.4f"), v)
    }

    /// Axis ticks over lo...hi at a round step (1, 2 or 5 times a power of ten), each labelled
    /// with just the decimals the step needs ("0.2 0.4", not "0.2000 0.4000"). A range of
    /// one value is widened around it, so its axis never reads "1.00 1.00 1.00".
    static func ticks(_ lo: Double, _ hi: Double) -> (lo: Double, hi: Double, values: [Double], labels: [String]) {
        var (lo, hi) = (lo, hi)
        if !(hi - lo > 1e-12) {
            // One value: from zero up past it (or around it, below zero).
            if lo >= 0 {
                (lo, hi) = (0, lo > 0 ? lo * 1.2 : 1)
            } else {
                let pad = max(abs(lo) * 0.1, 0.5)
                (lo, hi) = (lo - pad, hi + pad)
            }
        }
        let rough = (hi - lo) / 5
        let power = pow(10, (log10(rough)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= rough } ?? 10 * power
        let first = Int((lo / step).rounded(.down)), last = Int((hi / step).rounded(.up))
        let decimals = max(0, Int(-log10(step).rounded(.down)))
        let values = (first...last).map { Double($0) * step }
        return (values[0], values[values.count - 1], values, values.map { String(format: "%.\(decimals)f", abs($0) < step / 2 ? 0 : $0) })
    }

    static func render(_ report: EvaluationReport, versions: [ModelInfo]) -> String {
        let info = versions.first { $0.version == report.version }
        let baseline = Dictionary(report.baseline.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let metricRows = report.metrics.map { m in
            let b = baseline[m.name]
            let lift = b.flatMap { $0 > 0 ? String(format: "%.2fx", m.value / $0) : nil } ?? "-"
            return "<tr><td>\(escape(m.name))</td><td>\(number(m.value))</td><td>\(b.map(number) ?? "-")</td><td>\(lift)</td></tr>"
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
            <p>\(held). Protocol: \(escape(report.protocol)).</p>
            <table><tr><th>metric</th><th>this \
            version</th><th>\(classifier ? "prevalence baseline" : "popularity baseline")</th><th>lift</th></tr>\(metricRows)</table>
            """
        let recent = versions.sorted { $0.version < $1.version }.suffix(6)
        let ndcgName = report.metrics.first { $0.name.hasPrefix("ndcg@") }?.name ?? "ndcg@10"
        let versionBars = recent.map { v in
            (label: "v\(v.version)", value: v.metrics.first { $0.name == ndcgName }?.value ?? 0, highlight: v.version == report.version)
        }
        let params = report.params.map { "<tr><td>\(escape($0.key))</td><td>\(escape($0.value))</td></tr>" }.joined()
        let search = report.search.map { "<tr><td>\(escape($0.name))</td><td>\(number($0.y.first ?? 0))</td></tr>" }.joined()
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
                lineChart(
                    title: classifier ? "Validation loss per tree" : "Training loss per iteration",
                    xLabel: classifier ? "tree" : "iteration",
                    series: [("loss", $0.x, $0.y)])
            } ?? ""
        let searchSection =
            search.isEmpty
            ? ""
            : "<h2>Search (validation \(escape(ndcgName)) of each candidate)</h2>"
                + "<table><tr><th>candidate</th><th>\(escape(ndcgName))</th></tr>\(search)</table>"
        let range =
            info.map {
                ($0.dataFromMs == 0 ? "start" : ProfileText.date($0.dataFromMs)) + " to "
                    + ($0.dataToMs == 0 ? "end" : ProfileText.date($0.dataToMs))
            } ?? "-"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(report.name)) v\(report.version): evaluation</title>
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
            <h1>\(escape(report.name)) v\(report.version) <span \
            style="color:#888;font-weight:normal">(\(escape(report.kind.name ?? "")))</span></h1>
            <p class="sub">trained \
            \(created)\(took)\(data)\(info?.published == true ? " · published" : "")</p>
            \(metricsSection)
            \(classifier ? classifierSection(report) : "")
            \(comparisonSection(report))
            <div class="charts">
            \(atK.isEmpty ? "" : lineChart(title: "Metrics at K", xLabel: "K", series: atK.map { ($0.name, $0.x, $0.y) }))
            \(classifier || segments ? "" : barChart(title: "\(ndcgName) of the latest versions", bars: versionBars))
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
            <tr><td>job</td><td>\(escape(info?.jobId ?? "-"))</td></tr></table>
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
            charts += lineChart(
                title: "ROC curve\(auc("roc_auc"))", xLabel: "false positive rate",
                series: [("model", roc.x, roc.y), ("chance", [0, 1], [0, 1])], unit: true)
        }
        if let pr = curve("precision-recall") {
            charts += lineChart(
                title: "Precision against recall\(auc("pr_auc"))", xLabel: "recall", series: [("model", pr.x, pr.y)], unit: true)
        }
        if let cal = curve("calibration") {
            charts += lineChart(
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
                <table style="display:inline-table;margin-right:24px"><tr><th colspan="3">\(escape(c.name)): p &gt;= \
                \(String(format: "%.3f", c.probability))</th></tr>
                <tr><th></th><th>flagged</th><th>passed</th></tr>
                <tr><th>positive</th><td>\(c.truePositives)</td><td>\(c.falseNegatives)</td></tr>
                <tr><th>negative</th><td>\(c.falsePositives)</td><td>\(c.trueNegatives)</td></tr>
                <tr><td colspan="3">precision \(precision), recall \(recall)</td></tr></table>
                """
        }.joined()
        let thresholds = report.thresholds.map { "<li>\(escape($0.name))</li>" }.joined()
        // "name: gain 12.3 permutation 0.0123" as a bar per feature, the 15 with the most gain.
        let top = report.importance.prefix(15)
        let bars = top.map { m in (label: String(m.name.prefix { $0 != ":" }), value: m.value) }
        let importance = top.map { m -> String in
            let name = String(m.name.prefix { $0 != ":" })
            let permutation = m.name.range(of: "permutation ").map { String(m.name[$0.upperBound...]) } ?? "-"
            return "<tr><td>\(escape(name))</td><td>\(number(m.value))</td><td>\(escape(permutation))</td></tr>"
        }.joined()
        let confusionPart = confusion.isEmpty ? "" : "<h2>Confusion at the suggested thresholds (test rows)</h2>\(confusion)"
        let thresholdPart = thresholds.isEmpty ? "" : "<h2>Suggested thresholds (validation rows)</h2><ul>\(thresholds)</ul>"
        let importancePart =
            bars.isEmpty
            ? ""
            : """
            <h2>Feature importance</h2><div \
            class="charts">\(hBarChart(title: "Split gain or |coefficient| (top \(bars.count))", bars: bars))
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
        let table = rows.map { "<tr><td>\(escape($0.id))</td><td>\(Int($0.users))</td><td>\(escape($0.text))</td></tr>" }.joined()
        let silhouette = report.curves.first { $0.name == "silhouette" && !$0.x.isEmpty }
        return """
            <h2>Segments</h2>
            <p>\(report.users) users. Protocol: \(escape(report.protocol)).</p>
            <div class="charts">
            \(barChart(title: "Users per segment", bars: rows.map { (label: $0.id, value: $0.users, highlight: true) }))
            \(silhouette.map { lineChart(title: "Mean silhouette per k", xLabel: "k", series: [("silhouette", $0.x, $0.y)]) } ?? "")
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
            return "<tr><td>\(escape(c.model))</td>" + names.map { "<td>\(values[$0].map(number) ?? "-")</td>" }.joined()
                + "<td>\(String(format: "%.2f", c.trainingSeconds))</td></tr>"
        }.joined()
        let bars = report.comparison.map { c in (label: c.model, value: c.metrics.first { $0.name == ndcgName }?.value ?? 0) }
        return """
            <h2>Beside the other kinds (same split, same protocol, their defaults)</h2>
            <table><tr><th>model</th>\(names.map { "<th>\(escape($0))</th>" }.joined())<th>training s</th></tr>\(rows)</table>
            \(hBarChart(title: "\(ndcgName) by model", bars: bars))
            """
    }

    static func hBarChart(title: String, bars: [(label: String, value: Double)]) -> String {
        let w = 460.0, left = 170.0, right = 56.0, top = 36.0, row = 18.0
        let h = top + row * Double(bars.count) + 12
        guard let most = bars.map(\.value).max(), most > 0 else { return "" }
        var svg =
            """
            <svg width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" \
            xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">
            """
        svg += "<text x=\"\(Int(w / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for (n, b) in bars.enumerated() {
            let y = top + Double(n) * row, bw = b.value / most * (w - left - right)
            svg += "<text x=\"\(left - 6)\" y=\"\(y + 12)\" text-anchor=\"end\">\(escape(b.label))</text>"
            svg += "<rect x=\"\(left)\" y=\"\(y + 2)\" width=\"\(bw)\" height=\"\(row - 5)\" fill=\"\(palette[0])\"/>"
            svg += "<text x=\"\(left + bw + 4)\" y=\"\(y + 12)\">\(number(b.value))</text>"
        }
        return svg + "</svg>"
    }

    /// A line chart of one or more series over a shared x axis; `unit`: both axes 0...1 (ROC,
    /// precision-recall, calibration), whatever the points.
    static func lineChart(title: String, xLabel: String, series: [(String, [Double], [Double])], unit: Bool = false) -> String {
        let w = 460.0, h = 300.0, left = 56.0, right = 16.0, top = 36.0, bottom = 44.0
        let xs = series.flatMap(\.1).filter(\.isFinite), ys = series.flatMap(\.2).filter(\.isFinite)
        guard let xMin = xs.min(), let xMax = xs.max(), let yLow = ys.min(), let yHigh = ys.max() else { return "" }
        let xAxis = unit ? ticks(0, 1) : ticks(xMin, xMax), yAxis = unit ? ticks(0, 1) : ticks(min(0, yLow), yHigh)
        let x0 = xAxis.lo, xSpan = xAxis.hi - xAxis.lo, yMin = yAxis.lo, yTop = yAxis.hi
        func px(_ x: Double) -> Double { left + (x - x0) / xSpan * (w - left - right) }
        func py(_ y: Double) -> Double { h - bottom - (y - yMin) / (yTop - yMin) * (h - top - bottom) }
        var svg =
            """
            <svg width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" \
            xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">
            """
        svg += "<text x=\"\(Int(w / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for (y, label) in zip(yAxis.values, yAxis.labels) {
            svg +=
                """
                <line x1=\"\(left)\" x2=\"\(w - right)\" y1=\"\(py(y))\" y2=\"\(py(y))\" stroke=\"#e4e4e4\"/><text \
                x=\"\(left - 6)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(label)</text>
                """
        }
        for (x, label) in zip(xAxis.values, xAxis.labels) {
            svg += "<text x=\"\(px(x))\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\">\(label)</text>"
        }
        svg += "<text x=\"\(Int((left + w - right) / 2))\" y=\"\(Int(h - 8))\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        for (n, s) in series.enumerated() {
            let color = palette[n % palette.count]
            let points = zip(s.1, s.2).filter { $0.isFinite && $1.isFinite }.map { "\(px($0)),\(py($1))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>"
            for (x, y) in zip(s.1, s.2) where s.1.count <= 60 && x.isFinite && y.isFinite {
                svg += "<circle cx=\"\(px(x))\" cy=\"\(py(y))\" r=\"2.5\" fill=\"\(color)\"/>"
            }
            svg +=
                """
                <rect x=\"\(left + 8)\" y=\"\(top + 4 + Double(n) * 15)\" width=\"10\" height=\"10\" \
                fill=\"\(color)\"/><text x=\"\(left + 22)\" y=\"\(top + 13 + Double(n) * 15)\">\(escape(s.0))</text>
                """
        }
        return svg + "</svg>"
    }

    /// A bar per version; the reported one in a stronger colour.
    static func barChart(title: String, bars: [(label: String, value: Double, highlight: Bool)]) -> String {
        let w = 460.0, h = 300.0, left = 56.0, right = 16.0, top = 36.0, bottom = 44.0
        guard let top1 = bars.map(\.value).max() else { return "" }
        let yTop = max(top1 * 1.15, 1e-9)
        let slot = (w - left - right) / Double(max(bars.count, 1))
        var svg =
            """
            <svg width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" \
            xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">
            """
        svg += "<text x=\"\(Int(w / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for (n, b) in bars.enumerated() {
            let bh = b.value / yTop * (h - top - bottom), x = left + Double(n) * slot + slot * 0.15
            svg +=
                """
                <rect x=\"\(x)\" y=\"\(h - bottom - bh)\" width=\"\(slot * 0.7)\" height=\"\(bh)\" \
                fill=\"\(b.highlight ? palette[0] : "#9ecae1")\"/>
                """
            svg += "<text x=\"\(x + slot * 0.35)\" y=\"\(h - bottom - bh - 4)\" text-anchor=\"middle\">\(number(b.value))</text>"
            svg += "<text x=\"\(x + slot * 0.35)\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\">\(escape(b.label))</text>"
        }
        svg += "<line x1=\"\(left)\" x2=\"\(w - right)\" y1=\"\(h - bottom)\" y2=\"\(h - bottom)\" stroke=\"#999\"/>"
        return svg + "</svg>"
    }
}
