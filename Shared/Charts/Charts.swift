import Foundation

/// The SVG charts and number formats of Persona's HTML reports (`persona model report`):
/// self-contained markup, no scripts, axes that read well whatever the data's size.
public enum Charts {
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;"
        )
        .replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A value as a table or a bar shows it: whole numbers whole ("20", not "20.00"), else
    /// with the decimals its size needs.
    public static func number(_ v: Double) -> String {
        guard v.isFinite else { return "-" }
        if v == v.rounded() && abs(v) < 1e15 { return String(format: "%.0f", v) }
        let a = abs(v)
        return String(format: a >= 100 ? "%.0f" : (a >= 1 ? "%.2f" : "%.4f"), v)
    }

    /// Axis ticks over lo...hi at a round step (1, 2 or 5 times a power of ten), each labelled
    /// with just the decimals the step needs ("0.2 0.4", not "0.2000 0.4000"). A range of
    /// one value is widened around it, so its axis never reads "1.00 1.00 1.00".
    public static func ticks(_ lo: Double, _ hi: Double) -> (lo: Double, hi: Double, values: [Double], labels: [String]) {
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

    public static func hBarChart(title: String, bars: [(label: String, value: Double)]) -> String {
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
    public static func lineChart(title: String, xLabel: String, series: [(String, [Double], [Double])], unit: Bool = false) -> String {
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
    public static func barChart(title: String, bars: [(label: String, value: Double, highlight: Bool)]) -> String {
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

    /// Differences with their intervals, one row each, on a shared axis through zero (a
    /// forest plot): an interval that crosses the zero line is one chance could give.
    public static func intervalChart(title: String, rows: [(label: String, value: Double, low: Double, high: Double)]) -> String {
        let w = 460.0, left = 150.0, right = 24.0, top = 36.0, row = 30.0, bottom = 30.0
        let h = top + row * Double(rows.count) + bottom
        let ends = rows.flatMap { [$0.low, $0.high, $0.value] }.filter(\.isFinite) + [0]
        guard let lo = ends.min(), let hi = ends.max(), !rows.isEmpty else { return "" }
        let axis = ticks(lo, hi)
        func px(_ x: Double) -> Double { left + (x - axis.lo) / (axis.hi - axis.lo) * (w - left - right) }
        var svg =
            """
            <svg width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" \
            xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">
            """
        svg += "<text x=\"\(Int(w / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for (x, label) in zip(axis.values, axis.labels) {
            svg += "<line x1=\"\(px(x))\" x2=\"\(px(x))\" y1=\"\(top)\" y2=\"\(h - bottom)\" stroke=\"#e4e4e4\"/>"
            svg += "<text x=\"\(px(x))\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\">\(label)</text>"
        }
        svg += "<line x1=\"\(px(0))\" x2=\"\(px(0))\" y1=\"\(top)\" y2=\"\(h - bottom)\" stroke=\"#666\"/>"
        for (n, r) in rows.enumerated() where r.value.isFinite {
            let y = top + Double(n) * row + row / 2
            let color = r.low > 0 ? palette[2] : r.high < 0 ? palette[3] : palette[0]
            svg += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(escape(r.label))</text>"
            if r.low.isFinite && r.high.isFinite {
                svg += "<line x1=\"\(px(r.low))\" x2=\"\(px(r.high))\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"\(color)\" stroke-width=\"3\"/>"
            }
            svg += "<circle cx=\"\(px(r.value))\" cy=\"\(y)\" r=\"5\" fill=\"\(color)\"/>"
        }
        return svg + "</svg>"
    }
}
