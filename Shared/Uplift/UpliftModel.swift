public import Math

/// One user of a past campaign: their features at its start, whether they were treated, and
/// whether they converted over its window.
public struct UpliftRow: Sendable {
    public var features: [Float]
    public var treated: Bool
    public var converted: Bool

    public init(features: [Float], treated: Bool, converted: Bool) {
        self.features = features
        self.treated = treated
        self.converted = converted
    }
}

/// A model of how much an offer changes a user's chance to convert (the uplift), trained on
/// past campaigns' treatment and control outcomes on the boosted trees, so that an audience
/// can be cut to the users the offer moves rather than those who would buy anyway.
public struct UpliftModel: Sendable {
    public enum Method: String, Sendable, CaseIterable {
        /// Two classifiers, one on the treated and one on the controls: uplift = p_t − p_c.
        case twoModel = "two_model"
        /// One classifier of Z = converted == treated, on arms balanced by subsampling the
        /// larger: uplift = 2 P(Z) − 1 (Jaskowski and Jaroszewicz, 2012).
        case classTransformation = "class_transformation"
    }

    public let method: Method
    let treated: BoostedTrees
    let control: BoostedTrees?

    public static func train(
        _ rows: [UpliftRow], method: Method = .twoModel, parameters: BoostedTrees.Parameters = defaults, seed: UInt64 = 1
    )
        -> UpliftModel
    {
        let features = rows.first?.features.count ?? 0
        func fit(_ subset: [UpliftRow], label: (UpliftRow) -> Bool) -> BoostedTrees {
            BoostedTrees.train(
                rows: subset.flatMap(\.features), labels: subset.map { label($0) ? 1 : 0 }, features: features, parameters: parameters)
        }
        switch method {
        case .twoModel:
            return UpliftModel(
                method: method, treated: fit(rows.filter(\.treated), label: \.converted),
                control: fit(rows.filter { !$0.treated }, label: \.converted))
        case .classTransformation:
            var t = rows.filter(\.treated), c = rows.filter { !$0.treated }
            var rng = SplitMix(seed: seed)
            t.shuffle(using: &rng)
            c.shuffle(using: &rng)
            let n = min(t.count, c.count)
            return UpliftModel(
                method: method, treated: fit(Array(t.prefix(n)) + Array(c.prefix(n)), label: { $0.converted == $0.treated }), control: nil)
        }
    }

    /// Parameters for the few thousand rows a campaign has: shallow trees, large leaves.
    public static let defaults: BoostedTrees.Parameters = {
        var p = BoostedTrees.Parameters()
        (p.trees, p.learningRate, p.maxLeaves, p.maxDepth, p.minRowsInLeaf, p.earlyStoppingRounds) = (100, 0.05, 8, 3, 40, 0)
        return p
    }()

    /// The predicted change in the probability of converting if treated.
    public func uplift(_ features: [Float]) -> Float {
        switch method {
        case .twoModel: treated.probability(features) - (control?.probability(features) ?? 0)
        case .classTransformation: 2 * treated.probability(features) - 1
        }
    }
}

/// The Qini curve of a ranking over a campaign's users (Radcliffe, 2007): target the top k by
/// score; at each k, the conversions among the treated there minus those among the controls
/// there scaled to the treated count. A model that finds the users the offer moves rises
/// fast; a random order is the straight line to the end point.
public struct QiniCurve: Sendable, Equatable {
    /// Share of the users targeted, 0...1, and the incremental conversions there.
    public var points: [(share: Double, gain: Double)]
    /// The area between the curve and the random line, over the users counted: higher is a
    /// better ranking; 0 is no better than random.
    public var coefficient: Double

    public static func == (a: Self, b: Self) -> Bool {
        a.coefficient == b.coefficient && a.points.count == b.points.count
            && zip(a.points, b.points).allSatisfy { $0.share == $1.share && $0.gain == $1.gain }
    }

    public init(scores: [Float], treated: [Bool], converted: [Bool], steps: Int = 100) {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let n = order.count
        var (nt, nc, yt, yc) = (0.0, 0.0, 0.0, 0.0)
        var gains = [0.0]
        gains.reserveCapacity(n + 1)
        for i in order {
            if treated[i] {
                nt += 1
                if converted[i] { yt += 1 }
            } else {
                nc += 1
                if converted[i] { yc += 1 }
            }
            gains.append(yt - (nc > 0 ? yc * nt / nc : 0))
        }
        let end = gains.last ?? 0
        var area = 0.0
        for k in 1...max(1, n) where n > 0 {
            // Trapezoids above the straight line from (0, 0) to (n, end).
            let random = end * Double(k) / Double(n), previous = end * Double(k - 1) / Double(n)
            area += ((gains[k] - random) + (gains[k - 1] - previous)) / 2
        }
        coefficient = n > 0 ? area / Double(n) / Double(n) : 0
        points = (0...steps).map { s in
            let k = n * s / steps
            return (Double(s) / Double(steps), gains[k])
        }
    }
}
