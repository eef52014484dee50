import Math
import Recommenders

/// Embarrassingly shallow autoencoders (Steck, 2019): the item-item weights in closed form,
/// B = I − P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹ and a zero diagonal, over the items at
/// least `min_users` users have (at most `max_items` of them, the most popular; the rest are
/// never recommended by it). Every weight is kept unless `keep` (> 0) says how many of the
/// largest (by magnitude) each item keeps, for serving and evaluation alike: the negative
/// weights carry as much as the positive ones, and cutting either costs quality.
enum EASE {
    static func train(_ p: TrainingParameters, _ data: Interactions, _ progress: TrainingProgress) throws -> RecommenderModel {
        let lambda = Double(p.float("lambda")), keep = p.int("keep")
        let popularity = Trainer.popularity(data)
        // The catalogue EASE covers: the max_items most popular items, as dense indices 0..<n.
        let covered = coveredItems(p, data, popularity)
        let n = covered.count
        var local = [Int32](repeating: -1, count: data.items)
        for (l, i) in covered.enumerated() { local[i] = Int32(l) }
        progress.report(0.05, "EASE Gram matrix of \(n) items")
        var g = try gram(data.matrix, local: local, n: n, progress)
        for i in 0..<n { g[i * n + i] += lambda }
        try progress.check()
        progress.report(0.3, "EASE inverse of \(n)x\(n)")
        try Solvers.invertSPD(&g, n)
        try progress.check()
        progress.report(0.8, "EASE weights")
        // Row j of the served table: B[j, i] = −P[j, i] / P[i, i], the weight from j to i.
        var rowStart = [0], indices: [Int32] = [], values: [Float] = []
        var localRow = [(Int32, Float)]()
        for j in 0..<data.items {
            let lj = Int(local[j])
            if lj >= 0 {
                localRow.removeAll(keepingCapacity: true)
                for li in 0..<n where li != lj { localRow.append((Int32(covered[li]), Float(-g[lj * n + li] / g[li * n + li]))) }
                // `covered` ascends, so the row does too; a cut one is sorted again.
                let kept =
                    keep == 0 || localRow.count <= keep
                    ? localRow
                    : localRow.sorted { abs($0.1) != abs($1.1) ? abs($0.1) > abs($1.1) : $0.0 < $1.0 }.prefix(keep).sorted { $0.0 < $1.0 }
                for (i, v) in kept {
                    indices.append(i)
                    values.append(v)
                }
            }
            rowStart.append(indices.count)
        }
        var model = Trainer.base(.ease, data)
        model.itemItem = SparseMatrix(rows: data.items, cols: data.items, rowStart: rowStart, indices: indices, values: values)
        return model
    }

    /// XᵀX over the covered items: summed user by user over the pairs of each user's items
    /// (Σ|Iᵤ|² steps) when that is less work than a dense product, else OpenBLAS's `dsyrk`
    /// on X made dense.
    static func gram(_ m: SparseMatrix, local: [Int32], n: Int, _ progress: TrainingProgress) throws -> [Double] {
        var rows: [[(Int, Double)]] = []
        var pairSteps = 0
        for u in 0..<m.rows {
            let row = (m.rowStart[u]..<m.rowStart[u + 1]).compactMap { j -> (Int, Double)? in
                let l = local[Int(m.indices[j])]
                return l >= 0 ? (Int(l), Double(m.values[j])) : nil
            }
            guard !row.isEmpty else { continue }
            pairSteps += row.count * row.count
            rows.append(row)
        }
        // A dense product runs about 20x faster per step than the scattered sums.
        if pairSteps > rows.count * n * n / 40 {
            var x = [Double](repeating: 0, count: rows.count * n)
            for (r, row) in rows.enumerated() {
                for (l, v) in row { x[r * n + l] = v }
            }
            return Kernels.gramDouble(x, rows: rows.count, cols: n)
        }
        var g = [Double](repeating: 0, count: n * n)
        for (r, row) in rows.enumerated() {
            if r % 1024 == 0 { try progress.check() }
            for (a, va) in row {
                for (b, vb) in row where b >= a { g[a * n + b] += va * vb }
            }
        }
        for a in 0..<n {
            for b in (a + 1)..<max(n, a + 1) { g[b * n + a] = g[a * n + b] }
        }
        return g
    }

    /// The items EASE covers: those at least `min_users` users have, the `max_items` most
    /// popular of them, as indices of `data`'s items in ascending order.
    static func coveredItems(_ p: TrainingParameters, _ data: Interactions, _ popularity: [Float]) -> [Int] {
        var users = [Int](repeating: 0, count: data.items)
        for i in data.matrix.indices { users[Int(i)] += 1 }
        let minUsers = p.int("min_users")
        let ranked = popularity.indices.filter { users[$0] >= minUsers }
            .sorted { popularity[$0] != popularity[$1] ? popularity[$0] > popularity[$1] : $0 < $1 }
        return ranked.prefix(p.int("max_items")).sorted()
    }
}
