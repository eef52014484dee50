/// Exact per-prediction attributions of a tree ensemble: the path-dependent TreeSHAP
/// algorithm of Lundberg, Erion and Lee (2018, Algorithm 2), polynomial in the depth. For one
/// row, `attributions` gives each feature's Shapley value in margin units, and
/// `expected + Σ attributions` equals the model's margin for that row. A node's weight for
/// the expectation is the hessian that reached it in training (its cover).
public struct TreeSHAP: Sendable {
    public let model: BoostedTrees
    /// The margin's expectation over the training rows (base plus each tree's cover-weighted
    /// mean leaf).
    public let expected: Float
    let maxDepth: Int

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
    }

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
        _ t: BoostedTrees.Tree, _ x: UnsafePointer<Float>, _ phi: inout [Double], _ parentPath: UnsafeMutablePointer<PathElement>, node: Int, depth: Int,
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
