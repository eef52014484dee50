import Foundation

/// Plain-text tables and human-readable numbers for terminal output.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func duration(seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        return "\(s / 86400)d\(s % 86400 / 3600)h"
    }

    static func latency(_ d: Duration) -> String {
        let micros = d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        return micros < 1000 ? "\(micros)µs" : String(format: "%.1fms", Double(micros) / 1000)
    }

    /// "p50 / p99 (N calls)" of call latencies (nearest rank); "-" for none.
    static func quantiles(_ latencies: [Duration]) -> String {
        guard !latencies.isEmpty else { return "-" }
        let sorted = latencies.sorted()
        func q(_ q: Double) -> String { latency(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) }
        return "\(q(0.5)) / \(q(0.99)) (\(sorted.count) calls)"
    }
}
