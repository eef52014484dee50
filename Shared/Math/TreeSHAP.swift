/// Exact per-prediction attributions of a tree ensemble: the path-dependent TreeSHAP values
/// of Lundberg, Erion and Lee (2018). For one row, `attributions` gives each feature's
/// Shapley value in margin units, and `expected + Σ attributions` equals the model's margin
/// for that row. A node's weight for the expectation is the hessian that reached it in
/// training (its cover).
///
/// Two ways to the same values. The fast one (Fast TreeSHAP v2, Yang 2021) rests on each
/// leaf's share being a function of which of its path's features the row satisfies: with P
/// the leaf's features (k of them), z_j the product of its path's cover ratios for feature j,
/// O the features whose every split on the path the row follows, and
/// G(T) = Σ_{S⊆T} |S|!(k−|S|−1)!/k! · Π_{j∈P∖S} z_j, a leaf of value v adds
/// v·(1 − z_i)/z_i · G(O∖{i}) to each i in O and −v·G(O) to each i not in it. G is tabled per
/// leaf over its path's 2^depth patterns when the model is built, so a row costs one
/// comparison a node and one table read a feature of each leaf's path, not Algorithm 2's
/// depth² work a leaf. Models whose tables would be too large (deep trees), or with a child
/// of zero cover, take Algorithm 2 of the paper.
public struct TreeSHAP: Sendable {
    public let model: BoostedTrees
    /// The margin's expectation over the training rows (base plus each tree's cover-weighted
    /// mean leaf).
    public let expected: Float
    let maxDepth: Int
    let tables: LeafTables?

    public init(_ model: BoostedTrees) {
        self.model = model
        var e = model.base
        var depth = 0
        for t in model.trees {
            e += Self.mean(t, 0)
            depth = max(depth, Self.depth(t, 0))
        }
        expected = e
        maxDepth = depth
        tables = LeafTables(model)
    }

    /// Whether rows are explained from the per-leaf tables (else by Algorithm 2).
    public var isTabled: Bool { tables != nil }

    static func mean(_ t: BoostedTrees.Tree, _ i: Int) -> Float {
        let n = t.nodes[i]
        guard n.feature >= 0 else { return n.value }
        let l = t.nodes[Int(n.left)], r = t.nodes[Int(n.right)]
        let total = l.cover + r.cover
        guard total > 0 else { return 0 }
        return (l.cover * mean(t, Int(n.left)) + r.cover * mean(t, Int(n.right))) / total
    }

    static func depth(_ t: BoostedTrees.Tree, _ i: Int) -> Int {
        let n = t.nodes[i]
        return n.feature < 0 ? 0 : 1 + max(depth(t, Int(n.left)), depth(t, Int(n.right)))
    }

    struct PathElement {
        var feature: Int32 = -1
        var zero: Double = 0
        var one: Double = 0
        var weight: Double = 0
    }

    /// Each feature's contribution to the margin of `row`.
    public func attributions(_ row: [Float]) -> [Float] {
        precondition(row.count >= model.features, "a row of \(row.count) values for a model of \(model.features) features")
        if let tables { return row.withBase { tables.attributions($0, features: model.features) } }
        return exactByPaths(row)
    }

    /// The same values by Algorithm 2 of the paper (the path's weights extended and unwound
    /// at every node), whatever the model: what the tables are checked against.
    public func exactByPaths(_ row: [Float]) -> [Float] {
        var phi = [Double](repeating: 0, count: model.features)
        var path = [PathElement](repeating: .init(), count: (maxDepth + 2) * (maxDepth + 3) / 2)
        row.withBase { x in
            path.withUnsafeMutableBufferPointer { buffer in
                for t in model.trees {
                    recurse(t, x, &phi, buffer.baseAddress!, node: 0, depth: 0, zero: 1, one: 1, feature: -1)
                }
            }
        }
        return phi.map { Float($0) }
    }

    private func recurse(
        _ t: BoostedTrees.Tree, _ x: UnsafePointer<Float>, _ phi: inout [Double], _ parentPath: UnsafeMutablePointer<PathElement>,
        node: Int, depth: Int,
        zero: Double, one: Double, feature: Int32
    ) {
        let path = parentPath + depth + 1
        path.update(from: parentPath, count: depth + 1)
        extend(path, depth, zero, one, feature)
        let n = t.nodes[node]
        if n.feature < 0 {
            for i in 1...max(1, depth) where i <= depth {
                let w = unwoundSum(path, depth, i)
                let e = path[i]
                phi[Int(e.feature)] += w * (e.one - e.zero) * Double(n.value)
            }
            return
        }
        let v = x[Int(n.feature)]
        let goesLeft = v.isNaN ? n.missingLeft : v <= n.threshold
        let hot = Int(goesLeft ? n.left : n.right), cold = Int(goesLeft ? n.right : n.left)
        let cover = Double(n.cover)
        let hotZero = cover > 0 ? Double(t.nodes[hot].cover) / cover : 0
        let coldZero = cover > 0 ? Double(t.nodes[cold].cover) / cover : 0
        var incomingZero = 1.0, incomingOne = 1.0
        var depth = depth
        // A feature split on before: undo that split, and redo it here.
        var k = 0
        while k <= depth && path[k].feature != n.feature { k += 1 }
        if k <= depth {
            incomingZero = path[k].zero
            incomingOne = path[k].one
            unwind(path, depth, k)
            depth -= 1
        }
        recurse(t, x, &phi, path, node: hot, depth: depth + 1, zero: hotZero * incomingZero, one: incomingOne, feature: n.feature)
        recurse(t, x, &phi, path, node: cold, depth: depth + 1, zero: coldZero * incomingZero, one: 0, feature: n.feature)
    }

    private func extend(_ p: UnsafeMutablePointer<PathElement>, _ depth: Int, _ zero: Double, _ one: Double, _ feature: Int32) {
        p[depth] = PathElement(feature: feature, zero: zero, one: one, weight: depth == 0 ? 1 : 0)
        var i = depth - 1
        while i >= 0 {
            p[i + 1].weight += one * p[i].weight * Double(i + 1) / Double(depth + 1)
            p[i].weight = zero * p[i].weight * Double(depth - i) / Double(depth + 1)
            i -= 1
        }
    }

    private func unwind(_ p: UnsafeMutablePointer<PathElement>, _ depth: Int, _ index: Int) {
        let one = p[index].one, zero = p[index].zero
        var next = p[depth].weight
        var i = depth - 1
        while i >= 0 {
            if one != 0 {
                let tmp = p[i].weight
                p[i].weight = next * Double(depth + 1) / (Double(i + 1) * one)
                next = tmp - p[i].weight * zero * Double(depth - i) / Double(depth + 1)
            } else {
                p[i].weight = p[i].weight * Double(depth + 1) / (zero * Double(depth - i))
            }
            i -= 1
        }
        for j in index..<depth {
            p[j].feature = p[j + 1].feature
            p[j].zero = p[j + 1].zero
            p[j].one = p[j + 1].one
        }
    }

    private func unwoundSum(_ p: UnsafeMutablePointer<PathElement>, _ depth: Int, _ index: Int) -> Double {
        let one = p[index].one, zero = p[index].zero
        var next = p[depth].weight
        var total = 0.0
        var i = depth - 1
        while i >= 0 {
            if one != 0 {
                let tmp = next * Double(depth + 1) / (Double(i + 1) * one)
                total += tmp
                next = p[i].weight - tmp * zero * Double(depth - i) / Double(depth + 1)
            } else if zero != 0 {
                total += p[i].weight / zero / (Double(depth - i) / Double(depth + 1))
            }
            i -= 1
        }
        return total
    }
}

/// The fast path's tables, every tree's laid one after another: the internal nodes of each
/// tree parents first (what a row is compared against), its leaves (value, path length, where
/// their features and table start), each leaf's distinct path features (the path positions
/// that split on it, and v·(1 − z)/z), and each leaf's G over its path's patterns (bit p of a
/// pattern: the row goes the leaf's way at the path's node of depth p).
struct LeafTables: Sendable {
    struct Split {
        var feature: Int32
        var threshold: Float
        var missingLeft: Bool
        var bit: UInt16
        /// The node and its children, as the tree numbers them.
        var node: Int32, left: Int32, right: Int32
    }

    struct Leaf {
        var node: Int32
        var value: Float
        var table: Int32
        var slots: Int32
        var count: Int32
    }

    struct Slot {
        var feature: Int32
        var bits: UInt16
        var coefficient: Float
    }

    /// At most this many table entries for a whole model (4 bytes each).
    static let maxEntries = 1 << 24

    var splits: [Split] = []
    var leaves: [Leaf] = []
    var slots: [Slot] = []
    var table: [Float] = []
    /// Per tree: where its splits and its leaves start (one more entry closing the last tree).
    var splitStart: [Int] = [0]
    var leafStart: [Int] = [0]
    var largestTree = 1

    init?(_ model: BoostedTrees) {
        var entries = 0
        for t in model.trees {
            // Parents first (children always come later in a tree's node list, but not
            // necessarily right after their parent): breadth first from the root.
            var queue = [(node: 0, depth: 0, path: [(node: Int, left: Bool)]())]
            var head = 0
            largestTree = max(largestTree, t.nodes.count)
            while head < queue.count {
                let (i, depth, path) = queue[head]
                head += 1
                let n = t.nodes[i]
                if n.feature >= 0 {
                    guard depth < 16, t.nodes[Int(n.left)].cover > 0, t.nodes[Int(n.right)].cover > 0, n.cover > 0 else { return nil }
                    splits.append(
                        Split(
                            feature: n.feature, threshold: n.threshold, missingLeft: n.missingLeft, bit: UInt16(1) << depth,
                            node: Int32(i), left: n.left, right: n.right))
                    queue.append((Int(n.left), depth + 1, path + [(i, true)]))
                    queue.append((Int(n.right), depth + 1, path + [(i, false)]))
                    continue
                }
                entries += 1 << path.count
                guard entries <= Self.maxEntries else { return nil }
                addLeaf(t, node: i, value: n.value, path: path)
            }
            splitStart.append(splits.count)
            leafStart.append(leaves.count)
        }
    }

    /// The leaf's distinct features, their zero fractions, and G over every pattern.
    mutating func addLeaf(_ t: BoostedTrees.Tree, node: Int, value: Float, path: [(node: Int, left: Bool)]) {
        var features: [Int32] = [], zero: [Double] = [], bits: [UInt16] = []
        for (p, step) in path.enumerated() {
            let n = t.nodes[step.node]
            let child = t.nodes[Int(step.left ? n.left : n.right)]
            let ratio = Double(child.cover) / Double(n.cover)
            if let j = features.firstIndex(of: n.feature) {
                zero[j] *= ratio
                bits[j] |= UInt16(1) << p
            } else {
                features.append(n.feature)
                zero.append(ratio)
                bits.append(UInt16(1) << p)
            }
        }
        let k = features.count
        // Shapley weights |S|!(k−|S|−1)!/k! by subset size (S is never all of P: it leaves i out).
        var weight = [Double](repeating: 0, count: k + 1)
        for size in 0..<k { weight[size] = factorial(size) * factorial(k - size - 1) / factorial(k) }
        // G over feature subsets T: Σ over S ⊆ T of weight(|S|) · Π over j outside S of z_j.
        var g = [Double](repeating: 0, count: 1 << k)
        for tMask in 0..<(1 << k) {
            var sum = 0.0
            var sMask = tMask
            while true {
                var product = 1.0
                for j in 0..<k where sMask & (1 << j) == 0 { product *= zero[j] }
                sum += weight[sMask.nonzeroBitCount] * product
                if sMask == 0 { break }
                sMask = (sMask - 1) & tMask
            }
            g[tMask] = sum
        }
        // Indexed by path pattern: a feature is in O when the row follows every split on it.
        let start = table.count
        for pattern in 0..<(1 << path.count) {
            var tMask = 0
            for j in 0..<k where Int(bits[j]) & pattern == Int(bits[j]) { tMask |= 1 << j }
            table.append(Float(g[tMask]))
        }
        leaves.append(Leaf(node: Int32(node), value: value, table: Int32(start), slots: Int32(slots.count), count: Int32(k)))
        for j in 0..<k {
            slots.append(Slot(feature: features[j], bits: bits[j], coefficient: Float(Double(value) * (1 - zero[j]) / zero[j])))
        }
    }

    func factorial(_ n: Int) -> Double { n <= 1 ? 1 : (2...n).reduce(1.0) { $0 * Double($1) } }

    func attributions(_ x: UnsafePointer<Float>, features: Int) -> [Float] {
        var phi = [Float](repeating: 0, count: features)
        var patterns = [UInt16](repeating: 0, count: largestTree)
        splits.withUnsafeBufferPointer { splits in
            leaves.withUnsafeBufferPointer { leaves in
                slots.withUnsafeBufferPointer { slots in
                    table.withUnsafeBufferPointer { table in
                        phi.withUnsafeMutableBufferPointer { phi in
                            patterns.withUnsafeMutableBufferPointer { m in
                                for t in 0..<(splitStart.count - 1) {
                                    // Each node's pattern: which of its path's splits the row follows.
                                    m[0] = 0
                                    for s in splits[splitStart[t]..<splitStart[t + 1]] {
                                        let v = x[Int(s.feature)]
                                        let left = v.isNaN ? s.missingLeft : v <= s.threshold
                                        let here = m[Int(s.node)]
                                        m[Int(s.left)] = left ? here | s.bit : here
                                        m[Int(s.right)] = left ? here : here | s.bit
                                    }
                                    for leaf in leaves[leafStart[t]..<leafStart[t + 1]] {
                                        let pattern = m[Int(leaf.node)]
                                        let g = table.baseAddress! + Int(leaf.table)
                                        let missed = -leaf.value * g[Int(pattern)]
                                        for slot in slots[Int(leaf.slots)..<Int(leaf.slots + leaf.count)] {
                                            if pattern & slot.bits == slot.bits {
                                                phi[Int(slot.feature)] += slot.coefficient * g[Int(pattern & ~slot.bits)]
                                            } else {
                                                phi[Int(slot.feature)] += missed
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return phi
    }
}
