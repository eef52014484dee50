import Foundation
import Math
import Recommenders

/// Item-based nearest neighbours over co-occurrence, as `implicit`'s CosineRecommender and
/// BM25Recommender: the item×user matrix is L2-normalised per item (cosine) or BM25-weighted
/// (K1, B; users as terms), item-item similarities are the dot products of its rows, and
/// each item keeps its `neighbors` most similar others. A user's score for item i is
/// Σⱼ value(u, j)·sim(j, i) over their items j.
enum ItemKNN {
    static func train(_ p: TrainingParameters, _ data: Interactions, _ progress: TrainingProgress) throws -> RecommenderModel {
        var iu = data.matrix.transposed
        if p.string("similarity") == "bm25" {
            bm25(&iu, k1: p.float("bm25_k1"), b: p.float("bm25_b"))
        } else {
            for i in 0..<iu.rows {
                let range = iu.rowStart[i]..<iu.rowStart[i + 1]
                let norm = range.reduce(Float(0)) { $0 + iu.values[$1] * iu.values[$1] }.squareRoot()
                if norm > 0 { for j in range { iu.values[j] /= norm } }
            }
        }
        let ui = iu.transposed
        let neighbors = p.int("neighbors")
        var acc = [Float](repeating: 0, count: data.items)
        var seen = [Bool](repeating: false, count: data.items)
        var touched = [Int32](repeating: 0, count: data.items)
        var rowStart = [0], indices: [Int32] = [], values: [Float] = []
        var best: [TopK.Entry] = []
        for i in 0..<iu.rows {
            if i % 256 == 0 {
                try progress.check()
                progress.report(Double(i) / Double(max(1, iu.rows)), "item-kNN item \(i) of \(iu.rows)")
            }
            // Dot products of item i's column with every item sharing a user, over those users.
            var count = 0
            iu.indices.withUnsafeBufferPointer { iuIdx in
                iu.values.withUnsafeBufferPointer { iuVal in
                    ui.indices.withUnsafeBufferPointer { uiIdx in
                        ui.values.withUnsafeBufferPointer { uiVal in
                            acc.withUnsafeMutableBufferPointer { a in
                                seen.withUnsafeMutableBufferPointer { s in
                                    touched.withUnsafeMutableBufferPointer { t in
                                        for e in iu.rowStart[i]..<iu.rowStart[i + 1] {
                                            let u = Int(iuIdx[e]), w = iuVal[e]
                                            for f in ui.rowStart[u]..<ui.rowStart[u + 1] {
                                                let j = Int(uiIdx[f])
                                                if !s[j] {
                                                    s[j] = true
                                                    t[count] = Int32(j)
                                                    count += 1
                                                }
                                                a[j] += w * uiVal[f]
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            acc[i] = 0
            best.removeAll(keepingCapacity: true)
            for n in 0..<count {
                let j = touched[n]
                if acc[Int(j)] > 0 { best.append(TopK.Entry(index: j, score: acc[Int(j)])) }
                acc[Int(j)] = 0
                seen[Int(j)] = false
            }
            for e in TopK.best(best, k: neighbors).sorted(by: { $0.index < $1.index }) {
                indices.append(e.index)
                values.append(e.score)
            }
            rowStart.append(indices.count)
        }
        var model = Trainer.base(.itemKNN, data)
        model.itemItem = SparseMatrix(rows: data.items, cols: data.items, rowStart: rowStart, indices: indices, values: values)
        return model
    }

    /// implicit's `bm25_weight` on an item×user matrix: idf per user (column), length
    /// normalisation per item (row).
    static func bm25(_ m: inout SparseMatrix, k1: Float, b: Float) {
        let n = Float(m.rows)
        var df = [Float](repeating: 0, count: m.cols)
        for c in m.indices { df[Int(c)] += 1 }
        let idf = df.map { log(n) - log1p($0) }
        var lengths = [Float](repeating: 0, count: m.rows)
        for r in 0..<m.rows { lengths[r] = m.values[m.rowStart[r]..<m.rowStart[r + 1]].reduce(0, +) }
        let average = lengths.reduce(0, +) / max(1, n)
        for r in 0..<m.rows {
            let norm = (1 - b) + b * lengths[r] / max(average, 1e-12)
            for j in m.rowStart[r]..<m.rowStart[r + 1] {
                let v = m.values[j]
                m.values[j] = v * (k1 + 1) / (k1 * norm + v) * idf[Int(m.indices[j])]
            }
        }
    }
}
