import Foundation
import Math
import Recommenders

/// Bayesian personalised ranking (Rendle et al., 2009) by stochastic gradient descent, as
/// `implicit` runs it: each iteration draws as many (user, liked item) pairs as there are
/// entries, a disliked item drawn from the entries too (so by popularity), skips the draw
/// when the user likes it as well, and moves both items' factors and biases. The loss per
/// iteration is the mean −log σ(x_ui − x_uj) of its draws.
enum BPR {
    static func train(_ p: TrainingParameters, _ data: Interactions, _ progress: TrainingProgress) throws -> RecommenderModel {
        let k = p.int("factors"), iterations = p.int("iterations")
        let lr = p.float("learning_rate"), reg = p.float("regularization")
        var rng = SplitMix(seed: UInt64(p.int("seed")))
        let m = data.matrix
        var x = Matrix.random(rows: data.users, cols: k, scale: 0.5 / Float(k), &rng)
        var y = Matrix.random(rows: data.items, cols: k, scale: 0.5 / Float(k), &rng)
        var bias = [Float](repeating: 0, count: data.items)
        var userOf = [Int32](repeating: 0, count: m.nonZeros)
        for u in 0..<m.rows {
            for j in m.rowStart[u]..<m.rowStart[u + 1] { userOf[j] = Int32(u) }
        }
        let nnz = m.nonZeros
        let decay = 1 - lr * reg
        for it in 0..<iterations {
            try progress.check()
            var loss: Double = 0
            var drawn = 0
            x.values.withMutableBase { xp in
                y.values.withMutableBase { yp in
                    bias.withUnsafeMutableBufferPointer { bias in
                        for _ in 0..<nnz {
                            let e = rng.below(nnz)
                            let u = Int(userOf[e]), liked = Int(m.indices[e])
                            let disliked = Int(m.indices[rng.below(nnz)])
                            if likes(m, u, Int32(disliked)) { continue }
                            let xu = xp + u * k, yi = yp + liked * k, yj = yp + disliked * k
                            let diff = Vec.dotDifference(xu, yi, yj, k) + bias[liked] - bias[disliked]
                            let z = 1 / (1 + expf(diff))
                            loss -= Double(logf(max(1e-12, 1 - z)))
                            drawn += 1
                            Vec.pairwiseStep(xu, yi, yj, k, decay: decay, step: lr * z)
                            bias[liked] += lr * (z - reg * bias[liked])
                            bias[disliked] += lr * (-z - reg * bias[disliked])
                        }
                    }
                }
            }
            progress.loss(drawn == 0 ? 0 : loss / Double(drawn))
            progress.report(Double(it + 1) / Double(iterations), "BPR iteration \(it + 1) of \(iterations)")
        }
        var model = Trainer.base(.bpr, data)
        model.userIDs = data.userIDs
        model.users = x
        model.items = y
        model.itemBias = bias
        model.foldInRegularization = max(reg, 0.01) * 10
        return model
    }

    /// Whether user u has item i (their row is sorted by item).
    @inline(__always)
    static func likes(_ m: SparseMatrix, _ u: Int, _ i: Int32) -> Bool {
        var lo = m.rowStart[u], hi = m.rowStart[u + 1]
        while lo < hi {
            let mid = (lo + hi) / 2
            let v = m.indices[mid]
            if v == i { return true }
            if v < i { lo = mid + 1 } else { hi = mid }
        }
        return false
    }
}
