import Foundation

/// L2-regularised logistic regression on standardised inputs, fitted by Newton's method
/// (iteratively reweighted least squares: each step solves (XᵀWX + λI)·δ = −∇ by Cholesky),
/// with a class weight for the positives. Missing values (NaN) count as the feature's mean.
public struct LogisticRegression: Sendable, Equatable {
    public struct Parameters: Sendable, Equatable {
        /// λ on the standardised coefficients (not on the intercept).
        public var l2: Double = 1
        /// Weight of a positive row; 0 balances the classes.
        public var positiveWeight: Double = 1
        public var maxIterations = 50
        public init() {}
    }

    public var means: [Float]
    public var scales: [Float]
    /// Coefficients on standardised inputs, and the intercept.
    public var coefficients: [Float]
    public var intercept: Float

    public var features: Int { means.count }

    public init(means: [Float], scales: [Float], coefficients: [Float], intercept: Float) {
        self.means = means
        self.scales = scales
        self.coefficients = coefficients
        self.intercept = intercept
    }

    /// The standardised value of feature `f` (0 for a missing value).
    @inline(__always)
    public func standardised(_ v: Float, _ f: Int) -> Float { v.isNaN ? 0 : (v - means[f]) / scales[f] }

    public func margin(_ row: UnsafePointer<Float>) -> Float {
        var m = intercept
        for f in 0..<features { m += coefficients[f] * standardised(row[f], f) }
        return m
    }

    public func margin(_ row: [Float]) -> Float { row.withBase { margin($0) } }

    /// Each feature's share of the margin: coefficient times standardised value.
    public func attributions(_ row: [Float]) -> [Float] { (0..<features).map { coefficients[$0] * standardised(row[$0], $0) } }

    /// Each feature's mean and deviation over `rows` (row-major, `d` a row; NaN is missing
    /// and left out; a constant feature gets scale 1).
    public static func standardisation(_ rows: [Float], features d: Int) -> (means: [Float], scales: [Float]) {
        let n = d > 0 ? rows.count / d : 0
        var means = [Float](repeating: 0, count: d), scales = [Float](repeating: 1, count: d)
        for f in 0..<d {
            var s = 0.0, s2 = 0.0, c = 0.0
            for i in 0..<n where !rows[i * d + f].isNaN {
                let v = Double(rows[i * d + f])
                s += v
                s2 += v * v
                c += 1
            }
            let mean = c > 0 ? s / c : 0
            let variance = c > 0 ? max(0, s2 / c - mean * mean) : 0
            means[f] = Float(mean)
            scales[f] = variance > 1e-12 ? Float(variance.squareRoot()) : 1
        }
        return (means, scales)
    }

    public static func train(rows: [Float], labels: [Float], features d: Int, parameters p: Parameters = .init()) throws
        -> LogisticRegression
    {
        let n = labels.count
        precondition(rows.count == n * d && n > 0)
        let (means, scales) = standardisation(rows, features: d)
        var model = LogisticRegression(means: means, scales: scales, coefficients: [Float](repeating: 0, count: d), intercept: 0)
        let positives = Double(labels.reduce(0, +))
        let positiveWeight = p.positiveWeight > 0 ? p.positiveWeight : (positives > 0 ? Double(n) / positives - 1 : 1)
        // Standardised design with a constant column last.
        let k = d + 1
        var x = [Double](repeating: 0, count: n * k)
        for i in 0..<n {
            for f in 0..<d { x[i * k + f] = Double(model.standardised(rows[i * d + f], f)) }
            x[i * k + d] = 1
        }
        var beta = [Double](repeating: 0, count: k)
        var weighted = [Double](repeating: 0, count: n * k)
        for _ in 0..<p.maxIterations {
            // ∇ = Xᵀ(w(q − y)) + λβ; H = Xᵀ diag(w q (1 − q)) X + λI, the Gram matrix of the
            // rows scaled by √h (OpenBLAS dsyrk).
            var gradient = [Double](repeating: 0, count: k)
            x.withUnsafeBufferPointer { xp in
                weighted.withUnsafeMutableBufferPointer { wp in
                    for i in 0..<n {
                        let row = xp.baseAddress! + i * k
                        var m = 0.0
                        for j in 0..<k { m += beta[j] * row[j] }
                        let q = 1 / (1 + exp(-m))
                        let w = labels[i] > 0.5 ? positiveWeight : 1
                        let r = w * (q - Double(labels[i])), root = max(w * q * (1 - q), 1e-10).squareRoot()
                        for j in 0..<k {
                            gradient[j] += r * row[j]
                            wp[i * k + j] = root * row[j]
                        }
                    }
                }
            }
            var hessian = Kernels.gramDouble(weighted, rows: n, cols: k)
            for a in 0..<d {
                gradient[a] += p.l2 * beta[a]
                hessian[a * k + a] += p.l2
            }
            let step = try Solvers.solveSPD(hessian, gradient.map { -$0 }, n: k)
            var largest = 0.0
            for j in 0..<k {
                beta[j] += step[j]
                largest = max(largest, abs(step[j]))
            }
            if largest < 1e-8 { break }
        }
        model.coefficients = beta.prefix(d).map { Float($0) }
        model.intercept = Float(beta[d])
        return model
    }
}

/// Isotonic calibration: a monotone map from a model's scores to probabilities, fitted on
/// held-out rows by pool-adjacent-violators (blocks of equal probability, linear between
/// their bounds).
public struct IsotonicCalibration: Sendable, Equatable {
    /// Upper score bound of each block, and its probability (both increasing).
    public var bounds: [Float]
    public var probabilities: [Float]

    public init(bounds: [Float], probabilities: [Float]) {
        self.bounds = bounds
        self.probabilities = probabilities
    }

    public init(scores: [Float], labels: [Float]) {
        let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] < scores[$1] : $0 < $1 }
        var blocks: [(upper: Float, sum: Double, count: Double)] = []
        for i in order {
            blocks.append((scores[i], Double(labels[i]), 1))
            while blocks.count > 1 {
                let b = blocks[blocks.count - 1], a = blocks[blocks.count - 2]
                // Merge while the block before has a higher mean, and always equal scores.
                guard a.sum / a.count >= b.sum / b.count || a.upper == b.upper else { break }
                blocks.removeLast(2)
                blocks.append((b.upper, a.sum + b.sum, a.count + b.count))
            }
        }
        bounds = blocks.map(\.upper)
        // Each block's rate with one pseudo-row at the overall rate: a block of a few rows
        // all of one class does not claim a certainty of 0 or 1.
        let rate = labels.isEmpty ? 0 : Double(labels.reduce(0, +)) / Double(labels.count)
        var smoothed = blocks.map { Float(($0.sum + rate) / ($0.count + 1)) }
        // The pseudo-row can lift a small low block above a larger one after it: keep the map monotone.
        for i in smoothed.indices.dropFirst() { smoothed[i] = max(smoothed[i], smoothed[i - 1]) }
        probabilities = smoothed
    }

    /// The probability of a score: the first block whose bound is at least it, interpolated
    /// linearly between block bounds so that nearby scores map close.
    public func probability(_ score: Float) -> Float {
        guard let last = bounds.last else { return score.isNaN ? 0 : 1 / (1 + exp(-score)) }
        if score <= bounds[0] { return probabilities[0] }
        if score >= last { return probabilities[probabilities.count - 1] }
        var lo = 0, hi = bounds.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if bounds[mid] < score { lo = mid + 1 } else { hi = mid }
        }
        let a = bounds[lo - 1], b = bounds[lo]
        let t = b > a ? (score - a) / (b - a) : 1
        return probabilities[lo - 1] + t * (probabilities[lo] - probabilities[lo - 1])
    }
}

/// Ranking quality of scores against 0/1 labels.
public enum BinaryMetrics {
    /// Area under the ROC curve (ties count half).
    public static func rocAUC(_ scores: [Float], _ labels: [Float]) -> Double {
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0, positives = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] > 0.5 {
                rankSum += rank
                positives += 1
            }
            i = j + 1
        }
        let negatives = Double(scores.count) - positives
        guard positives > 0, negatives > 0 else { return .nan }
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// Area under the precision-recall curve, as average precision (scikit-learn's
    /// `average_precision_score`: Σ (Rₖ − Rₖ₋₁)·Pₖ over thresholds).
    public static func prAUC(_ scores: [Float], _ labels: [Float]) -> Double {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let positives = Double(labels.filter { $0 > 0.5 }.count)
        guard positives > 0 else { return .nan }
        var tp = 0.0, seen = 0.0, ap = 0.0, lastRecall = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j where labels[order[k]] > 0.5 { tp += 1 }
            seen += Double(j - i + 1)
            let recall = tp / positives
            ap += (recall - lastRecall) * (tp / seen)
            lastRecall = recall
            i = j + 1
        }
        return ap
    }

    /// Mean log loss of probabilities.
    public static func logLoss(_ probabilities: [Float], _ labels: [Float]) -> Double {
        var s = 0.0
        for (q, y) in zip(probabilities, labels) {
            let p = min(max(Double(q), 1e-15), 1 - 1e-15)
            s -= y > 0.5 ? log(p) : log(1 - p)
        }
        return s / Double(max(1, labels.count))
    }

    /// The lowest score threshold whose precision on (scores, labels) is at least `precision`
    /// (flagging every row at or above it), with the recall and the share flagged there; nil
    /// when no threshold reaches it.
    public static func threshold(forPrecision precision: Double, _ scores: [Float], _ labels: [Float]) -> (
        threshold: Float, recall: Double, flagged: Double
    )? {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let positives = Double(labels.filter { $0 > 0.5 }.count)
        var tp = 0.0, best: (Float, Double, Double)? = nil
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j where labels[order[k]] > 0.5 { tp += 1 }
            let flagged = Double(j + 1)
            if tp / flagged >= precision { best = (scores[order[i]], positives > 0 ? tp / positives : 0, flagged / Double(order.count)) }
            i = j + 1
        }
        return best
    }

    /// The score threshold that flags `share` of the rows (a review budget).
    public static func threshold(forShare share: Double, _ scores: [Float]) -> Float {
        let sorted = scores.sorted(by: >)
        guard !sorted.isEmpty else { return .infinity }
        return sorted[min(sorted.count - 1, max(0, Int((share * Double(sorted.count)).rounded(.up)) - 1))]
    }
}
