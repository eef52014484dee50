import Math
import Recommenders

/// Implicit-feedback alternating least squares (Hu, Koren and Volinsky, 2008), each row
/// solved by a few conjugate-gradient steps from its previous value instead of a Cholesky
/// factorisation (Takács, Pilászy and Tikk, 2011), as `implicit` does. The confidence of a
/// pair is 1 + alpha·value/typical, where typical is the median pair's value
/// (`confidence=relative`, the default), or 1 + alpha·value (`confidence=linear`); the loss
/// per iteration is implicit's.
enum ALS {
    static func train(_ p: TrainingParameters, _ data: Interactions, _ progress: TrainingProgress) throws -> RecommenderModel {
        let k = p.int("factors"), iterations = p.int("iterations"), steps = p.int("cg_steps")
        let reg = p.float("regularization")
        var rng = SplitMix(seed: UInt64(p.int("seed")))
        // Small positive starting factors, as implicit's.
        var x = Matrix.random(rows: data.users, cols: k, scale: 0.005, &rng)
        var y = Matrix.random(rows: data.items, cols: k, scale: 0.005, &rng)
        for i in x.values.indices { x.values[i] += 0.005 }
        for i in y.values.indices { y.values[i] += 0.005 }
        let ui = data.matrix
        let iu = ui.transposed
        let alpha = p.confidenceScale(ui.values)
        let cUI = ui.values.map { alpha * $0 }, cIU = iu.values.map { alpha * $0 }
        var scratch = [Float](repeating: 0, count: 4 * k)
        // YᵀY after the item half-step serves the loss and the next user half-step alike.
        var yty = Kernels.gram(y)
        for it in 0..<iterations {
            try progress.check()
            solve(&x, fixed: y, gram: yty, rows: ui, confidences: cUI, reg: reg, steps: steps, &scratch)
            try progress.check()
            solve(&y, fixed: x, gram: Kernels.gram(x), rows: iu, confidences: cIU, reg: reg, steps: steps, &scratch)
            yty = Kernels.gram(y)
            progress.loss(Double(loss(x, y, yty, ui, cUI, reg)))
            progress.report(Double(it + 1) / Double(iterations), "ALS iteration \(it + 1) of \(iterations)")
        }
        var model = Trainer.base(.als, data)
        model.userIDs = data.userIDs
        model.users = x
        model.items = y
        model.foldInRegularization = reg
        model.foldInAlpha = alpha
        return model
    }

    /// One half-step: every row of `solving` against the `fixed` factors (`gram` is their YᵀY).
    static func solve(
        _ solving: inout Matrix, fixed: Matrix, gram: Matrix, rows: SparseMatrix, confidences: [Float], reg: Float, steps: Int,
        _ scratch: inout [Float]
    ) {
        let k = fixed.cols
        fixed.values.withBase { yp in
            gram.values.withBase { gp in
                rows.indices.withUnsafeBufferPointer { idx in
                    confidences.withUnsafeBufferPointer { conf in
                        solving.values.withMutableBase { xp in
                            scratch.withMutableBase { sp in
                                for r in 0..<rows.rows {
                                    let range = rows.rowStart[r]..<rows.rowStart[r + 1]
                                    Solvers.implicitRowCG(
                                        x: xp + r * k, k: k, y: yp, yty: gp, regularization: reg,
                                        indices: UnsafeBufferPointer(rebasing: idx[range]),
                                        confidences: UnsafeBufferPointer(rebasing: conf[range]),
                                        steps: steps, scratch: sp)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// implicit's training loss: Σ c(p − x·y)² over every cell plus λ(‖X‖² + ‖Y‖²), over
    /// the total confidence of every cell; unobserved cells through YᵀY.
    static func loss(_ x: Matrix, _ y: Matrix, _ gram: Matrix, _ ui: SparseMatrix, _ conf: [Float], _ reg: Float) -> Float {
        let k = x.cols
        var loss: Double = 0, totalConfidence: Double = 0, userNorm: Double = 0
        var r = [Float](repeating: 0, count: k)
        x.values.withBase { xp in
            y.values.withBase { yp in
                gram.values.withBase { gp in
                    r.withMutableBase { rp in
                        for u in 0..<x.rows {
                            let xu = xp + u * k
                            Kernels.gemv(gp, rows: k, cols: k, xu, rp)
                            loss += Double(Vec.dot(rp, xu, k))
                            for j in ui.rowStart[u]..<ui.rowStart[u + 1] {
                                let c = 1 + conf[j]
                                let s = Vec.dot(yp + Int(ui.indices[j]) * k, xu, k)
                                loss += Double(c * (1 - s) * (1 - s) - s * s)
                                totalConfidence += Double(c)
                            }
                            userNorm += Double(Vec.dot(xu, xu, k))
                        }
                    }
                }
            }
        }
        let itemNorm = y.values.withBase { Double(Vec.dot($0, $0, y.values.count)) }
        loss += Double(reg) * (itemNorm + userNorm)
        let cells = Double(x.rows) * Double(y.rows)
        return Float(loss / (totalConfidence + cells - Double(ui.nonZeros)))
    }
}
