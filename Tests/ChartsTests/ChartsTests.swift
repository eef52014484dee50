import Charts
import Testing

@Suite("Report charts")
struct ChartsTests {
    /// The text of every `<text>` element, in order.
    static func labels(_ svg: String) -> [String] {
        svg.split(separator: "<text").dropFirst().compactMap { part in
            guard let open = part.firstIndex(of: ">"), let close = part.range(of: "</text>") else { return nil }
            return String(part[part.index(after: open)..<close.lowerBound])
        }
    }

    @Test("whole numbers print whole; others with the decimals their size needs; non-finite as a dash")
    func numbers() {
        #expect(Charts.number(20) == "20")
        #expect(Charts.number(0) == "0")
        #expect(Charts.number(-3) == "-3")
        #expect(Charts.number(12.345) == "12.35")
        #expect(Charts.number(0.12345) == "0.1235")
        #expect(Charts.number(-0.5) == "-0.5000")
        #expect(Charts.number(1234.5) == "1235" || Charts.number(1234.5) == "1234")
        #expect(Charts.number(.nan) == "-")
    }

    @Test("ticks fall on round steps labelled with the decimals the step needs, covering the range")
    func ticks() {
        let unit = Charts.ticks(0, 1)
        #expect(unit.labels == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let loss = Charts.ticks(0.013, 0.41)
        #expect(loss.lo <= 0.013 && loss.hi >= 0.41)
        #expect(loss.labels == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5"])
        let counts = Charts.ticks(0, 300)
        #expect(counts.labels == ["0", "100", "200", "300"])
        let small = Charts.ticks(0.0012, 0.0049)
        #expect(small.labels.allSatisfy { $0.count <= 6 } && Set(small.labels).count == small.labels.count, "\(small.labels)")
    }

    @Test("a range of one value is widened: never the same label twice, never below zero for a value that is not")
    func degenerateRanges() {
        for v in [0.0, 1.0, 20.0, 1e-7] {
            let t = Charts.ticks(v, v)
            #expect(Set(t.labels).count == t.labels.count, "\(v): \(t.labels)")
            #expect(t.lo == 0 && t.hi > v, "\(v): \(t.lo)...\(t.hi)")
        }
        let negative = Charts.ticks(-2, -2)
        #expect(negative.lo < -2 && negative.hi > -2 && Set(negative.labels).count == negative.labels.count)
    }

    @Test("precision against recall at 1.0 everywhere: the axes read 0 to 1, not 1.00 1.00 1.00")
    func flatCurveOnUnitAxes() {
        let svg = Charts.lineChart(title: "PR", xLabel: "recall", series: [("model", [0, 0.5, 1], [1, 1, 1])], unit: true)
        let labels = Self.labels(svg)
        #expect(labels.filter { $0 == "1.0" }.count == 2, "\(labels)")
        #expect(labels.contains("0.0") && labels.contains("0.4"))
        #expect(!labels.contains("1.00"))
        // Non-finite points are left out of the line, not drawn at NaN.
        let gaps = Charts.lineChart(title: "t", xLabel: "x", series: [("a", [0, 1, 2], [1, .nan, 3])])
        #expect(!gaps.contains("nan"))
    }
}
