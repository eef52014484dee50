import Foundation

/// Histogram gradient-boosted decision trees for binary classification (log loss) and for
/// ranking (LambdaMART), the kind LightGBM and scikit-learn's HistGradientBoosting are.
///
/// - Every feature is cut into at most `maxBins` quantile bins once; a missing value (NaN)
///   has its own bin, and each split learns which side missing values go.
/// - Trees grow leaf-wise (the leaf whose best split gains most is split next) up to
///   `maxLeaves` leaves and `maxDepth` levels, a split needing `minRowsInLeaf` rows and
///   `minHessianInLeaf` of hessian on each side; the histogram of the larger child is the
///   parent's minus the smaller's.
/// - Leaf values are Newton steps −G / (H + λ), scaled by the learning rate.
/// - Positive rows weigh `positiveWeight` (class imbalance); early stopping keeps the
///   number of trees with the best log loss on the validation rows, when some are given.
public struct BoostedTrees: Sendable, Equatable {
    public struct Parameters: Sendable, Equatable {
        public var trees = 300
        public var learningRate: Float = 0.05
        public var maxLeaves = 31
        public var maxDepth = 8
        public var minRowsInLeaf = 20
        public var minHessianInLeaf: Float = 1e-3
        public var l2: Float = 1
        public var maxBins = 255
        /// Weight of a positive row (negatives weigh 1); 0 balances the classes.
        public var positiveWeight: Float = 1
        /// Stop after this many trees without a better validation loss.
        public var earlyStoppingRounds = 30
        public init() {}
    }

    /// One node: a split (`feature` ≥ 0) sends a row left when its value is at most
    /// `threshold`, a missing value to the side `missingLeft` says; a leaf (`feature` −1)
    /// holds `value`. `cover` is the hessian that reached the node in training (TreeSHAP's
    /// weights).
    public struct Node: Sendable, Equatable {
        public var feature: Int32
        public var threshold: Float
        public var missingLeft: Bool
        public var left: Int32
        public var right: Int32
        public var value: Float
        public var cover: Float
        public var gain: Float

        public init(feature: Int32, threshold: Float, missingLeft: Bool, left: Int32, right: Int32, value: Float, cover: Float, gain: Float)
        {
            self.feature = feature
            self.threshold = threshold
            self.missingLeft = missingLeft
            self.left = left
            self.right = right
            self.value = value
            self.cover = cover
            self.gain = gain
        }
    }

    public struct Tree: Sendable, Equatable {
        public var nodes: [Node]

        public init(nodes: [Node]) { self.nodes = nodes }

        /// The leaf `row` reaches.
        @inline(__always)
        func leaf(_ row: UnsafePointer<Float>) -> Int {
            var i = 0
            while nodes[i].feature >= 0 {
                let n = nodes[i]
                let v = row[Int(n.feature)]
                let left = v.isNaN ? n.missingLeft : v <= n.threshold
                i = Int(left ? n.left : n.right)
            }
            return i
        }
    }

    public var features: Int
    /// The margin before any tree: the log-odds of the (weighted) positive rate.
    public var base: Float
    public var trees: [Tree]
    /// Validation loss after each tree (log loss; a ranker's −NDCG), empty without validation rows.
    public var validationLoss: [Double] = []

    public init(features: Int, base: Float, trees: [Tree]) {
        self.features = features
        self.base = base
        self.trees = trees
    }

    /// The log-odds for one row of `features` values (NaN: missing).
    public func margin(_ row: UnsafePointer<Float>) -> Float {
        var m = base
        for t in trees { m += t.nodes[t.leaf(row)].value }
        return m
    }

    public func margin(_ row: [Float]) -> Float { row.withBase { margin($0) } }

    public func probability(_ row: [Float]) -> Float { sigmoid(margin(row)) }

    /// Total split gain per feature (the report's global importance).
    public var gainImportance: [Double] {
        var out = [Double](repeating: 0, count: features)
        for t in trees {
            for n in t.nodes where n.feature >= 0 { out[Int(n.feature)] += Double(n.gain) }
        }
        return out
    }

    /// Trains on `rows` (row-major, `features` columns, NaN for missing) with labels 0/1;
    /// `validation` rows, when given, decide how many trees to keep.
    public static func train(
        rows: [Float], labels: [Float], features: Int, parameters p: Parameters = .init(),
        validation: (rows: [Float], labels: [Float])? = nil,
        progress: (Int) -> Bool = { _ in true }
    ) -> BoostedTrees {
        let n = labels.count
        precondition(rows.count == n * features && n > 0)
        let positives = labels.reduce(0, +)
        let positiveWeight = p.positiveWeight > 0 ? p.positiveWeight : (positives > 0 ? Float(n) / positives - 1 : 1)
        let weights = labels.map { $0 > 0.5 ? positiveWeight : 1 }
        let weightedPositive = zip(labels, weights).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        let total = weights.reduce(0, +)
        let rate = min(max(weightedPositive / total, 1e-6), 1 - 1e-6)
        return boost(
            rows: rows, count: n, features: features, base: log(rate / (1 - rate)), parameters: p,
            gradients: { margins, g, h in
                for i in 0..<n {
                    let q = sigmoid(margins[i])
                    g[i] = weights[i] * (q - labels[i])
                    h[i] = max(weights[i] * q * (1 - q), 1e-12)
                }
            },
            validation: validation.map { v in (v.rows, v.labels.count, { logLoss($0, v.labels) }) }, progress: progress)
    }

    /// A ranker (LambdaMART: Burges, 2010): rows come in groups (`groups[g]..<groups[g + 1]`,
    /// one per query, here a user's candidates), `relevance` ≥ 0 per row; each pair in a group
    /// whose relevance differs pulls the better one up by how much swapping the two would
    /// change the group's NDCG@`k`. The margin orders a group's rows; its value means nothing
    /// across groups. `validation` groups keep the number of trees with their best NDCG@`k`.
    public static func trainRanker(
        rows: [Float], relevance: [Float], groups: [Int], features: Int, k: Int = 10, parameters p: Parameters = .init(),
        validation: (rows: [Float], relevance: [Float], groups: [Int])? = nil,
        progress: (Int) -> Bool = { _ in true }
    ) -> BoostedTrees {
        let n = relevance.count
        precondition(rows.count == n * features && n > 0 && groups.first == 0 && groups.last == n)
        return boost(
            rows: rows, count: n, features: features, base: 0, parameters: p,
            gradients: { margins, g, h in lambdaGradients(margins, relevance, groups, k: k, &g, &h) },
            validation: validation.map { v in (v.rows, v.relevance.count, { -ndcg($0, v.relevance, v.groups, k: k) }) },
            progress: progress)
    }

    /// The boosting loop every objective shares: each round `gradients` fills the rows'
    /// gradients and hessians at the current margins, a tree is grown on them and added;
    /// `validation`'s loss (lower is better) of its margins picks how many trees to keep.
    static func boost(
        rows: [Float], count n: Int, features: Int, base: Float, parameters p: Parameters,
        gradients: ([Float], inout [Float], inout [Float]) -> Void,
        validation: (rows: [Float], count: Int, loss: ([Float]) -> Double)?,
        progress: (Int) -> Bool
    ) -> BoostedTrees {
        let binning = Binning(rows: rows, count: n, features: features, maxBins: p.maxBins)
        var grower = Grower(binning: binning, parameters: p)
        var model = BoostedTrees(features: features, base: base, trees: [])
        var margins = [Float](repeating: base, count: n)
        var g = [Float](repeating: 0, count: n), h = [Float](repeating: 0, count: n)
        var validationMargins = validation.map { [Float](repeating: base, count: $0.count) } ?? []
        var best = (loss: Double.infinity, trees: 0)
        for round in 0..<p.trees {
            gradients(margins, &g, &h)
            let tree = grower.grow(gradients: g, hessians: h)
            model.trees.append(tree)
            // Each training row's leaf is the leaf whose range of rows holds it.
            for leaf in grower.grown {
                let value = tree.nodes[leaf.node].value
                for k in leaf.start..<leaf.end { margins[Int(grower.order[k])] += value }
            }
            if let validation {
                validation.rows.withBase { vp in
                    for i in 0..<validation.count { validationMargins[i] += tree.nodes[tree.leaf(vp + i * features)].value }
                }
                let loss = validation.loss(validationMargins)
                model.validationLoss.append(loss)
                if loss < best.loss - 1e-9 { best = (loss, round + 1) }
                if round + 1 - best.trees >= p.earlyStoppingRounds { break }
            }
            if !progress(round + 1) { break }
        }
        if validation != nil && best.trees > 0 { model.trees.removeLast(model.trees.count - best.trees) }
        return model
    }

    /// LambdaRank's gradients and hessians: for each pair (i, j) of a group with
    /// relevance i > j, ρ = σ(s_j − s_i) weighted by |ΔNDCG@k| of swapping their places
    /// (the places the current margins give; pairs both below k change nothing).
    static func lambdaGradients(
        _ margins: [Float], _ relevance: [Float], _ groups: [Int], k: Int, _ g: inout [Float], _ h: inout [Float]
    ) {
        for i in g.indices { (g[i], h[i]) = (0, 1e-12) }
        var place: [Int] = []
        for q in 0..<(groups.count - 1) {
            let range = groups[q]..<groups[q + 1]
            let ideal = idealDCG(range.map { relevance[$0] }, k: k)
            guard ideal > 0 else { continue }
            let order = range.sorted { margins[$0] != margins[$1] ? margins[$0] > margins[$1] : $0 < $1 }
            place = [Int](repeating: 0, count: range.count)
            for (r, i) in order.enumerated() { place[i - range.lowerBound] = r }
            for i in range where relevance[i] > 0 {
                let pi = place[i - range.lowerBound]
                for j in range where relevance[j] < relevance[i] {
                    let pj = place[j - range.lowerBound]
                    guard pi < k || pj < k else { continue }
                    let gain = Float(pow(2, Double(relevance[i])) - pow(2, Double(relevance[j])))
                    let discount = Float(1 / log2(Double(pi) + 2) - 1 / log2(Double(pj) + 2))
                    let delta = abs(gain * discount) / Float(ideal)
                    let rho = sigmoid(margins[j] - margins[i])
                    g[i] -= rho * delta
                    g[j] += rho * delta
                    let curvature = max(rho * (1 - rho) * delta, 1e-12)
                    h[i] += curvature
                    h[j] += curvature
                }
            }
        }
    }

    static func idealDCG(_ relevance: [Float], k: Int) -> Double {
        relevance.sorted(by: >).prefix(k).enumerated().reduce(0.0) { $0 + (pow(2, Double($1.element)) - 1) / log2(Double($1.offset) + 2) }
    }

    /// Mean NDCG@k over the groups with a relevant row, rows ordered by margin (ties: first row).
    public static func ndcg(_ margins: [Float], _ relevance: [Float], _ groups: [Int], k: Int) -> Double {
        var total = 0.0, counted = 0
        for q in 0..<(groups.count - 1) {
            let range = groups[q]..<groups[q + 1]
            let ideal = idealDCG(range.map { relevance[$0] }, k: k)
            guard ideal > 0 else { continue }
            let order = range.sorted { margins[$0] != margins[$1] ? margins[$0] > margins[$1] : $0 < $1 }
            var dcg = 0.0
            for (r, i) in order.prefix(k).enumerated() { dcg += (pow(2, Double(relevance[i])) - 1) / log2(Double(r) + 2) }
            total += dcg / ideal
            counted += 1
        }
        return counted == 0 ? 0 : total / Double(counted)
    }

    /// Mean log loss of margins against 0/1 labels.
    public static func logLoss(_ margins: [Float], _ labels: [Float]) -> Double {
        var s = 0.0
        for (m, y) in zip(margins, labels) {
            // log(1 + e^-m) for a positive, log(1 + e^m) for a negative, computed stably.
            let z = Double(y > 0.5 ? -m : m)
            s += z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))
        }
        return s / Double(max(1, labels.count))
    }
}

@inline(__always)
public func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

/// Quantile bins per feature: `edges[f]` are the upper bounds of feature f's bins (a value
/// goes to the first bin whose edge is at least it), and the last bin holds NaN.
struct Binning {
    let count: Int
    let features: Int
    var edges: [[Float]]
    /// Column-major bins: `bins[f * count + i]`.
    var bins: [UInt8]
    let missingBin: Int
    /// The features with more than one bin: the only ones a split can use.
    var active: [Int] = []
    /// Per feature, the bin that holds most of the rows when it holds at least
    /// `dominantShare` of them (a count that is mostly 0), else -1: a histogram pass adds
    /// only the other rows and gives that bin the rest of the leaf's sums.
    var dominant: [Int] = []
    static let dominantShare = 0.7

    init(rows: [Float], count: Int, features: Int, maxBins: Int) {
        self.count = count
        self.features = features
        let bins = min(max(maxBins, 2), 255)
        missingBin = bins
        edges = []
        self.bins = [UInt8](repeating: 0, count: count * features)
        for f in 0..<features {
            var values: [Float] = []
            values.reserveCapacity(count)
            for i in 0..<count where !rows[i * features + f].isNaN { values.append(rows[i * features + f]) }
            values.sort()
            var cut: [Float] = []
            var distinct: [Float] = []
            for v in values where distinct.last != v { distinct.append(v) }
            if distinct.count <= bins {
                // Each distinct value its own bin: edges halfway between neighbours.
                for k in 0..<max(0, distinct.count - 1) { cut.append((distinct[k] + distinct[k + 1]) / 2) }
            } else {
                for b in 1..<bins {
                    let v = values[min(values.count - 1, b * values.count / bins)]
                    if cut.last.map({ v > $0 }) ?? true { cut.append(v) }
                }
            }
            edges.append(cut)
            if !cut.isEmpty { active.append(f) }
            var perBin = [Int](repeating: 0, count: bins + 1)
            for i in 0..<count {
                let v = rows[i * features + f]
                let b = v.isNaN ? missingBin : Self.bin(v, cut)
                self.bins[f * count + i] = UInt8(b)
                perBin[b] += 1
            }
            let top = perBin.indices.max { perBin[$0] < perBin[$1] }!
            dominant.append(Double(perBin[top]) >= Self.dominantShare * Double(count) ? top : -1)
        }
    }

    /// The first bin whose upper edge is at least `v` (binary search).
    static func bin(_ v: Float, _ edges: [Float]) -> Int {
        var lo = 0, hi = edges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if edges[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The raw-value threshold of a split after `bin`: rows of bins ≤ bin go left.
    func threshold(feature f: Int, bin: Int) -> Float { edges[f][bin] }
}

/// Grows one tree at a time over fixed bins.
struct Grower {
    let binning: Binning
    let p: BoostedTrees.Parameters
    /// Row indices, each leaf owning a contiguous range.
    var order: [Int32]
    let slots: Int
    /// The last grown tree's leaves: their rows (a range of `order`) and node.
    var grown: [(start: Int, end: Int, node: Int)] = []

    init(binning: Binning, parameters: BoostedTrees.Parameters) {
        self.binning = binning
        self.p = parameters
        order = (0..<Int32(binning.count)).map { $0 }
        slots = binning.missingBin + 1
    }

    /// Gradient sum, hessian sum and row count per (feature, bin), side by side: the three
    /// numbers a row adds to share a cache line.
    struct Histogram {
        var sums: [Double]

        /// This histogram less `b`, in place (the larger child from the parent and the smaller).
        mutating func subtract(_ b: Histogram) {
            let count = sums.count
            sums.withUnsafeMutableBufferPointer { s in b.sums.withUnsafeBufferPointer { bs in for i in 0..<count { s[i] -= bs[i] } } }
        }
    }

    struct Split {
        var gain: Double = 0
        var feature = -1
        var bin = 0
        var missingLeft = false
    }

    struct Leaf {
        var start: Int
        var end: Int
        var depth: Int
        var node: Int
        var g: Double
        var h: Double
        var histogram: Histogram
        var split: Split
    }

    /// The histogram of the rows `order[start..<end]`: their gradients and hessians gathered
    /// once into contiguous arrays, then one pass per feature column.
    func histogram(_ start: Int, _ end: Int, _ gradients: [Float], _ hessians: [Float]) -> Histogram {
        var hist = Histogram(sums: [Double](repeating: 0, count: 3 * binning.features * slots))
        let count = end - start
        var og = [Double](repeating: 0, count: count), oh = [Double](repeating: 0, count: count)
        var rows = [Int32](repeating: 0, count: count)
        var totalG = 0.0, totalH = 0.0
        order.withUnsafeBufferPointer { o in
            for k in 0..<count {
                let r = Int(o[start + k])
                rows[k] = Int32(r)
                og[k] = Double(gradients[r])
                oh[k] = Double(hessians[r])
                totalG += og[k]
                totalH += oh[k]
            }
        }
        binning.bins.withUnsafeBufferPointer { bins in
            rows.withUnsafeBufferPointer { rp in
                og.withUnsafeBufferPointer { ogp in
                    oh.withUnsafeBufferPointer { ohp in
                        hist.sums.withUnsafeMutableBufferPointer { sums in
                            for f in binning.active {
                                let column = bins.baseAddress! + f * binning.count
                                let base = sums.baseAddress! + 3 * f * slots
                                // A feature mostly in one bin adds only its other rows (-1: none
                                // is left out), then that bin takes the rest of the sums.
                                let dominant = binning.dominant[f]
                                for k in 0..<count {
                                    let b = Int(column[Int(rp[k])])
                                    guard b != dominant else { continue }
                                    let cell = base + 3 * b
                                    cell[0] += ogp[k]
                                    cell[1] += ohp[k]
                                    cell[2] += 1
                                }
                                guard dominant >= 0 else { continue }
                                var g = totalG, h = totalH, n = Double(count)
                                for b in 0..<slots where b != dominant {
                                    g -= base[3 * b]
                                    h -= base[3 * b + 1]
                                    n -= base[3 * b + 2]
                                }
                                base[3 * dominant] = g
                                base[3 * dominant + 1] = h
                                base[3 * dominant + 2] = n
                            }
                        }
                    }
                }
            }
        }
        return hist
    }

    func score(_ g: Double, _ h: Double) -> Double { g * g / (h + Double(p.l2)) }

    /// The best split of a leaf with sums (g, h) and `rows` rows.
    func bestSplit(_ hist: Histogram, g: Double, h: Double, rows: Int) -> Split {
        var best = Split()
        let parent = score(g, h)
        let minRows = Int32(p.minRowsInLeaf), minH = Double(p.minHessianInLeaf), l2 = Double(p.l2)
        hist.sums.withUnsafeBufferPointer { sums in
            for f in binning.active {
                let bins = binning.edges[f].count + 1
                let cells = sums.baseAddress! + 3 * f * slots
                let m = cells + 3 * binning.missingBin
                let mg = m[0], mh = m[1], mn = Int32(m[2])
                var lg = 0.0, lh = 0.0
                var ln: Int32 = 0
                for b in 0..<(bins - 1) {
                    // An empty bin splits the rows as the one before it did: nothing new to try.
                    guard cells[3 * b + 2] > 0 else { continue }
                    lg += cells[3 * b]
                    lh += cells[3 * b + 1]
                    ln += Int32(cells[3 * b + 2])
                    // Missing values right, then (when there are some) left.
                    for side in 0..<(mn > 0 ? 2 : 1) {
                        let Lg = side == 0 ? lg : lg + mg, Lh = side == 0 ? lh : lh + mh, Ln = side == 0 ? ln : ln + mn
                        let Rg = g - Lg, Rh = h - Lh, Rn = Int32(rows) - Ln
                        guard Ln >= minRows, Rn >= minRows, Lh >= minH, Rh >= minH else { continue }
                        let gain = Lg * Lg / (Lh + l2) + Rg * Rg / (Rh + l2) - parent
                        if gain > best.gain + 1e-12 { best = Split(gain: gain, feature: f, bin: b, missingLeft: side == 1) }
                    }
                }
            }
        }
        return best
    }

    mutating func grow(gradients: [Float], hessians: [Float]) -> BoostedTrees.Tree {
        let n = binning.count
        var g = 0.0, h = 0.0
        for i in 0..<n {
            g += Double(gradients[i])
            h += Double(hessians[i])
        }
        var nodes: [BoostedTrees.Node] = [leafNode(g, h)]
        let rootHist = histogram(0, n, gradients, hessians)
        var leaves = [
            Leaf(start: 0, end: n, depth: 0, node: 0, g: g, h: h, histogram: rootHist, split: bestSplit(rootHist, g: g, h: h, rows: n))
        ]
        var count = 1
        while count < p.maxLeaves {
            // The leaf whose split gains most (ties: the earliest).
            var pick = -1
            for (i, l) in leaves.enumerated() where l.split.feature >= 0 && l.depth < p.maxDepth {
                if pick < 0 || l.split.gain > leaves[pick].split.gain { pick = i }
            }
            guard pick >= 0 else { break }
            var leaf = leaves.remove(at: pick)
            let s = leaf.split
            // Partition the leaf's rows: left first.
            let column = s.feature * n
            var mid = leaf.start
            order.withUnsafeMutableBufferPointer { rows in
                binning.bins.withUnsafeBufferPointer { bins in
                    var i = leaf.start, j = leaf.end - 1
                    while i <= j {
                        let b = Int(bins[column + Int(rows[i])])
                        let left = b == binning.missingBin ? s.missingLeft : b <= s.bin
                        if left { i += 1 } else { rows.swapAt(i, j); j -= 1 }
                    }
                    mid = i
                }
            }
            var lg = 0.0, lh = 0.0
            for k in leaf.start..<mid {
                let r = Int(order[k])
                lg += Double(gradients[r])
                lh += Double(hessians[r])
            }
            let (rg, rh) = (leaf.g - lg, leaf.h - lh)
            let leftSmaller = mid - leaf.start <= leaf.end - mid
            let small = leftSmaller ? histogram(leaf.start, mid, gradients, hessians) : histogram(mid, leaf.end, gradients, hessians)
            // The parent's histogram becomes the larger child's, in its own buffer.
            var large = leaf.histogram
            leaf.histogram = Histogram(sums: [])
            large.subtract(small)
            let (leftHist, rightHist) = leftSmaller ? (small, large) : (large, small)
            let leftIndex = nodes.count, rightIndex = nodes.count + 1
            nodes.append(leafNode(lg, lh))
            nodes.append(leafNode(rg, rh))
            nodes[leaf.node].feature = Int32(s.feature)
            nodes[leaf.node].threshold = binning.threshold(feature: s.feature, bin: s.bin)
            nodes[leaf.node].missingLeft = s.missingLeft
            nodes[leaf.node].left = Int32(leftIndex)
            nodes[leaf.node].right = Int32(rightIndex)
            nodes[leaf.node].gain = Float(s.gain)
            nodes[leaf.node].value = 0
            leaves.append(
                Leaf(
                    start: leaf.start, end: mid, depth: leaf.depth + 1, node: leftIndex, g: lg, h: lh, histogram: leftHist,
                    split: bestSplit(leftHist, g: lg, h: lh, rows: mid - leaf.start)))
            leaves.append(
                Leaf(
                    start: mid, end: leaf.end, depth: leaf.depth + 1, node: rightIndex, g: rg, h: rh, histogram: rightHist,
                    split: bestSplit(rightHist, g: rg, h: rh, rows: leaf.end - mid)))
            count += 1
        }
        grown = leaves.map { ($0.start, $0.end, $0.node) }
        return BoostedTrees.Tree(nodes: nodes)
    }

    func leafNode(_ g: Double, _ h: Double) -> BoostedTrees.Node {
        let value = -g / (h + Double(p.l2)) * Double(p.learningRate)
        return .init(feature: -1, threshold: 0, missingLeft: false, left: -1, right: -1, value: Float(value), cover: Float(h), gain: 0)
    }
}
