import COpenBLAS
import Foundation

/// A self-attentive sequential recommender (SASRec: Kang and McAuley, 2018): the items a
/// user met, oldest first, become item embeddings (scaled by √d) plus learned positions
/// (the latest item always at the last position), pass through `blocks` causal
/// self-attention blocks (layer norm, one attention head, a residual from the normed input;
/// layer norm, a point-wise two-layer ReLU feed-forward and its residual) and a final layer
/// norm; the output at each position scores the next item by its inner product with that
/// item's embedding (the input table, shared). Dropout after the embeddings, on the
/// attention weights and inside the feed-forward layer. Trained with one sampled negative
/// per position and the binary cross-entropy of both, by Adam; the forward and backward
/// passes are written out here, the products on OpenBLAS (one thread).
///
/// Sequences are not padded: a batch is its sequences' tokens one after the other (a
/// T×d table for every position-wise step), attention runs per sequence over its own
/// earlier positions only.
public struct SASRec: Sendable, Equatable {
    public struct Shape: Sendable, Equatable {
        public var items: Int
        public var dim: Int
        public var maxLength: Int
        public var blocks: Int

        public init(items: Int, dim: Int = 64, maxLength: Int = 50, blocks: Int = 2) {
            self.items = items
            self.dim = dim
            self.maxLength = maxLength
            self.blocks = blocks
        }
    }

    /// One training sequence: `input[i]`'s next item is `targets[i]`, `negatives[i]` one the
    /// user never met (all item indices in 0..<items).
    public struct Example: Sendable {
        public var input: [Int32]
        public var targets: [Int32]
        public var negatives: [Int32]

        public init(input: [Int32], targets: [Int32], negatives: [Int32]) {
            precondition(input.count == targets.count && input.count == negatives.count && !input.isEmpty)
            self.input = input
            self.targets = targets
            self.negatives = negatives
        }
    }

    public let shape: Shape
    /// Every parameter, in `Layout`'s order: the item table first (items×d), then positions
    /// (maxLength×d), each block's, the final norm's.
    public var weights: [Float]

    /// Where each parameter lies in `weights`.
    struct Layout {
        struct Block {
            var ln1g = 0, ln1b = 0, wq = 0, bq = 0, wk = 0, bk = 0, wv = 0, bv = 0, wo = 0, bo = 0
            var ln2g = 0, ln2b = 0, w1 = 0, b1 = 0, w2 = 0, b2 = 0
        }
        let embedding = 0
        var position = 0
        var blocks: [Block] = []
        var finalGamma = 0, finalBeta = 0
        var count = 0

        init(_ s: Shape) {
            let d = s.dim
            var at = s.items * d
            func take(_ n: Int) -> Int {
                defer { at += n }
                return at
            }
            position = take(s.maxLength * d)
            for _ in 0..<s.blocks {
                var b = Block()
                (b.ln1g, b.ln1b) = (take(d), take(d))
                (b.wq, b.bq, b.wk, b.bk, b.wv, b.bv, b.wo, b.bo) = (
                    take(d * d), take(d), take(d * d), take(d), take(d * d), take(d), take(d * d), take(d)
                )
                (b.ln2g, b.ln2b) = (take(d), take(d))
                (b.w1, b.b1, b.w2, b.b2) = (take(d * d), take(d), take(d * d), take(d))
                blocks.append(b)
            }
            (finalGamma, finalBeta) = (take(d), take(d))
            count = at
        }
    }

    var layout: Layout { Layout(shape) }

    public static func parameterCount(_ shape: Shape) -> Int { Layout(shape).count }

    /// Xavier-normal tables and weights, unit norm gains, zero biases, from `seed`.
    public init(shape: Shape, seed: UInt64) {
        precondition(shape.items > 0 && shape.dim > 0 && shape.maxLength > 0 && shape.blocks >= 0)
        self.shape = shape
        let l = Layout(shape), d = shape.dim
        var w = [Float](repeating: 0, count: l.count)
        var rng = SplitMix(seed: seed)
        func normal(_ at: Int, _ rows: Int, _ cols: Int) {
            let std = (2 / Float(rows + cols)).squareRoot()
            for i in 0..<(rows * cols) { w[at + i] = rng.gaussian() * std }
        }
        func ones(_ at: Int) { for i in 0..<d { w[at + i] = 1 } }
        normal(l.embedding, shape.items, d)
        normal(l.position, shape.maxLength, d)
        for b in l.blocks {
            ones(b.ln1g)
            ones(b.ln2g)
            for at in [b.wq, b.wk, b.wv, b.wo, b.w1, b.w2] { normal(at, d, d) }
        }
        ones(l.finalGamma)
        weights = w
    }

    public init(shape: Shape, weights: [Float]) {
        precondition(weights.count == Self.parameterCount(shape), "\(weights.count) weights for a SASRec of \(Self.parameterCount(shape))")
        self.shape = shape
        self.weights = weights
    }

    /// The item table (items×d): what the output at a position is scored against.
    public var itemTable: Matrix {
        Matrix(rows: shape.items, cols: shape.dim, values: Array(weights[0..<(shape.items * shape.dim)]))
    }

    /// The output at the last position of `sequence` (oldest first; only the latest
    /// `maxLength` count): the vector whose inner product with an item's embedding scores
    /// that item as the next one. Zeros for an empty sequence.
    public func encode(_ sequence: [Int32]) -> [Float] {
        let input = Array(sequence.suffix(shape.maxLength))
        guard !input.isEmpty else { return [Float](repeating: 0, count: shape.dim) }
        let pass = Pass(self, [input], dropout: 0, rng: nil)
        return Array(pass.output[((input.count - 1) * shape.dim)..<(input.count * shape.dim)])
    }

    /// The mean loss of `batch` and its gradient with respect to every weight. Dropout
    /// masks come from `seed` (the same seed, the same masks: finite differences can check
    /// this function with dropout on).
    public func lossAndGradient(_ batch: [Example], dropout: Float, seed: UInt64) -> (loss: Float, gradient: [Float]) {
        var rng = SplitMix(seed: seed)
        let pass = Pass(self, batch.map(\.input), dropout: dropout, rng: &rng)
        var gradient = [Float](repeating: 0, count: weights.count)
        let loss = pass.backward(batch, into: &gradient)
        return (loss, gradient)
    }
}

/// Adam (Kingma and Ba) over a SASRec's weights: the moments and the step count.
public struct SASRecOptimizer: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.98
    public var epsilon: Float = 1e-8
    /// Dropout rate while training.
    public var dropout: Float
    private var m: [Float]
    private var v: [Float]
    private var steps = 0
    private var rng: SplitMix

    public init(for model: SASRec, learningRate: Float = 0.001, dropout: Float = 0.2, seed: UInt64) {
        self.learningRate = learningRate
        self.dropout = dropout
        m = [Float](repeating: 0, count: model.weights.count)
        v = m
        rng = SplitMix(seed: seed ^ 0x5A5_2EC0)
    }

    /// One Adam step on `batch`; returns the batch's mean loss before the step.
    public mutating func step(_ model: inout SASRec, _ batch: [SASRec.Example]) -> Float {
        let (loss, g) = model.lossAndGradient(batch, dropout: dropout, seed: rng.next())
        steps += 1
        let c1 = 1 / (1 - pow(beta1, Float(steps))), c2 = 1 / (1 - pow(beta2, Float(steps)))
        let (b1, b2, lr, eps) = (beta1, beta2, learningRate, epsilon)
        model.weights.withUnsafeMutableBufferPointer { w in
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    g.withUnsafeBufferPointer { g in
                        for i in 0..<w.count {
                            let gi = g[i]
                            m[i] = b1 * m[i] + (1 - b1) * gi
                            v[i] = b2 * v[i] + (1 - b2) * gi * gi
                            w[i] -= lr * (m[i] * c1) / ((v[i] * c2).squareRoot() + eps)
                        }
                    }
                }
            }
        }
        return loss
    }
}

extension SplitMix {
    /// Standard normal (Box-Muller).
    mutating func gaussian() -> Float {
        let u1 = max(unit(), 1e-7), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

// MARK: - The passes

/// One forward pass over a batch of sequences, keeping what the backward pass needs.
private final class Pass {
    struct BlockCache {
        var x: [Float]  // the block's input
        var xhat1: [Float], rstd1: [Float], qIn: [Float]
        var q: [Float], k: [Float], v: [Float]
        var att: [Float], attMask: [Float]  // softmax weights per sequence (ℓ×ℓ, packed), dropout multipliers
        var o: [Float]
        var xhat2: [Float], rstd2: [Float], fIn: [Float]
        var a1: [Float], mask1: [Float]  // first layer's output after dropout (before ReLU), its multipliers
        var r: [Float], mask2: [Float]  // ReLU output; dropout multipliers of the second layer's output
    }

    let model: SASRec
    let l: SASRec.Layout
    let d: Int
    let tokens: Int
    /// Each sequence's first token row and its length; first entry of its ℓ×ℓ weights.
    let starts: [Int], lengths: [Int], attStarts: [Int]
    let items: [Int32], positions: [Int32]
    let mask0: [Float]
    var blocks: [BlockCache] = []
    var xhatF: [Float] = [], rstdF: [Float] = []
    /// The final norm's output, T×d.
    var output: [Float] = []

    init(_ model: SASRec, _ inputs: [[Int32]], dropout p: Float, rng: UnsafeMutablePointer<SplitMix>?) {
        self.model = model
        l = model.layout
        d = model.shape.dim
        let L = model.shape.maxLength
        var starts: [Int] = [], lengths: [Int] = [], attStarts: [Int] = [], items: [Int32] = [], positions: [Int32] = []
        var t = 0, a = 0
        for s in inputs {
            precondition(s.count <= L, "a sequence of \(s.count) items in a model of \(L) positions")
            starts.append(t)
            lengths.append(s.count)
            attStarts.append(a)
            items += s
            positions += (0..<s.count).map { Int32(L - s.count + $0) }
            t += s.count
            a += s.count * s.count
        }
        (self.starts, self.lengths, self.attStarts, self.items, self.positions, tokens) = (starts, lengths, attStarts, items, positions, t)
        let T = t, w = model.weights
        /// Dropout multipliers: 0 with probability p, else 1/(1-p) (all ones when off).
        func mask(_ n: Int) -> [Float] {
            guard p > 0, let rng else { return [Float](repeating: 1, count: n) }
            let keep = 1 / (1 - p)
            return (0..<n).map { _ in rng.pointee.unit() < p ? 0 : keep }
        }
        // Embeddings: E[item]·√d + P[position], dropped out.
        let scale = Float(d).squareRoot()
        mask0 = mask(T * d)
        var h = [Float](repeating: 0, count: T * d)
        for i in 0..<T {
            let e = l.embedding + Int(items[i]) * d, pos = l.position + Int(positions[i]) * d
            for c in 0..<d { h[i * d + c] = (w[e + c] * scale + w[pos + c]) * mask0[i * d + c] }
        }
        for b in l.blocks {
            let x = h
            let (xhat1, rstd1, qIn) = layerNorm(x, T, d, b.ln1g, b.ln1b)
            let q = linear(qIn, T, b.wq, b.bq), k = linear(x, T, b.wk, b.bk), v = linear(x, T, b.wv, b.bv)
            var att = [Float](repeating: 0, count: a), attMask = mask(a)
            var o = [Float](repeating: 0, count: T * d)
            let invSqrt = 1 / Float(d).squareRoot()
            var dropped: [Float] = []
            for s in starts.indices {
                let n = lengths[s], r0 = starts[s] * d, a0 = attStarts[s]
                att.withUnsafeMutableBufferPointer { A in
                    q.withUnsafeBufferPointer { Q in
                        k.withUnsafeBufferPointer { K in
                            gemm(false, true, n, n, d, invSqrt, Q.baseAddress! + r0, d, K.baseAddress! + r0, d, 0, A.baseAddress! + a0, n)
                        }
                    }
                    // Causal softmax: position i sees 0...i.
                    for i in 0..<n {
                        let row = A.baseAddress! + a0 + i * n
                        var top = -Float.infinity
                        for j in 0...i { top = max(top, row[j]) }
                        var sum: Float = 0
                        for j in 0...i {
                            row[j] = exp(row[j] - top)
                            sum += row[j]
                        }
                        for j in 0...i { row[j] /= sum }
                        for j in (i + 1)..<max(n, i + 1) { row[j] = 0 }
                    }
                }
                dropped = (0..<(n * n)).map { att[a0 + $0] * attMask[a0 + $0] }
                dropped.withUnsafeBufferPointer { A in
                    v.withUnsafeBufferPointer { V in
                        o.withUnsafeMutableBufferPointer { O in
                            gemm(false, false, n, d, n, 1, A.baseAddress!, n, V.baseAddress! + r0, d, 0, O.baseAddress! + r0, d)
                        }
                    }
                }
            }
            var h1 = linear(o, T, b.wo, b.bo)
            for i in 0..<(T * d) { h1[i] += qIn[i] }
            let (xhat2, rstd2, fIn) = layerNorm(h1, T, d, b.ln2g, b.ln2b)
            var a1 = linear(fIn, T, b.w1, b.b1)
            let mask1 = mask(T * d)
            var r = [Float](repeating: 0, count: T * d)
            for i in 0..<(T * d) {
                a1[i] *= mask1[i]
                r[i] = max(0, a1[i])
            }
            var z2 = linear(r, T, b.w2, b.b2)
            let mask2 = mask(T * d)
            for i in 0..<(T * d) { z2[i] = z2[i] * mask2[i] + fIn[i] }
            h = z2
            blocks.append(
                BlockCache(
                    x: x, xhat1: xhat1, rstd1: rstd1, qIn: qIn, q: q, k: k, v: v, att: att, attMask: attMask,
                    o: o, xhat2: xhat2, rstd2: rstd2, fIn: fIn, a1: a1, mask1: mask1, r: r, mask2: mask2))
        }
        (xhatF, rstdF, output) = layerNorm(h, T, d, l.finalGamma, l.finalBeta)
    }

    /// Y = X·W + b over T rows (W is d×d, input by output).
    func linear(_ x: [Float], _ T: Int, _ w: Int, _ bias: Int) -> [Float] {
        var y = [Float](repeating: 0, count: T * d)
        let d = self.d
        for i in 0..<T { for c in 0..<d { y[i * d + c] = model.weights[bias + c] } }
        model.weights.withUnsafeBufferPointer { W in
            x.withUnsafeBufferPointer { X in
                y.withUnsafeMutableBufferPointer { Y in
                    gemm(false, false, T, d, d, 1, X.baseAddress!, d, W.baseAddress! + w, d, 1, Y.baseAddress!, d)
                }
            }
        }
        return y
    }

    /// Layer norm of each row: x̂ = (x − mean)/√(var + 1e-8), y = γ·x̂ + β.
    func layerNorm(_ x: [Float], _ T: Int, _ d: Int, _ gamma: Int, _ beta: Int) -> (xhat: [Float], rstd: [Float], y: [Float]) {
        var xhat = [Float](repeating: 0, count: T * d), y = xhat, rstd = [Float](repeating: 0, count: T)
        let w = model.weights
        for i in 0..<T {
            var mean: Float = 0
            for c in 0..<d { mean += x[i * d + c] }
            mean /= Float(d)
            var variance: Float = 0
            for c in 0..<d {
                let z = x[i * d + c] - mean
                variance += z * z
            }
            let rs = 1 / (variance / Float(d) + 1e-8).squareRoot()
            rstd[i] = rs
            for c in 0..<d {
                let z = (x[i * d + c] - mean) * rs
                xhat[i * d + c] = z
                y[i * d + c] = w[gamma + c] * z + w[beta + c]
            }
        }
        return (xhat, rstd, y)
    }

    /// dX of a layer norm from dY; adds dγ and dβ into `grad`.
    func layerNormBackward(_ dy: [Float], _ xhat: [Float], _ rstd: [Float], _ gamma: Int, _ beta: Int, _ grad: inout [Float]) -> [Float] {
        var dx = [Float](repeating: 0, count: tokens * d)
        let w = model.weights
        var dxhat = [Float](repeating: 0, count: d)
        for i in 0..<tokens {
            var meanD: Float = 0, meanDX: Float = 0
            for c in 0..<d {
                let g = dy[i * d + c]
                grad[gamma + c] += g * xhat[i * d + c]
                grad[beta + c] += g
                dxhat[c] = g * w[gamma + c]
                meanD += dxhat[c]
                meanDX += dxhat[c] * xhat[i * d + c]
            }
            meanD /= Float(d)
            meanDX /= Float(d)
            for c in 0..<d { dx[i * d + c] = rstd[i] * (dxhat[c] - meanD - xhat[i * d + c] * meanDX) }
        }
        return dx
    }

    /// Backward through Y = X·W + b: adds dW and db into `grad`, returns dX.
    func linearBackward(_ dy: [Float], _ x: [Float], _ w: Int, _ bias: Int, _ grad: inout [Float]) -> [Float] {
        let T = tokens, d = self.d
        var dx = [Float](repeating: 0, count: T * d)
        for i in 0..<T { for c in 0..<d { grad[bias + c] += dy[i * d + c] } }
        grad.withUnsafeMutableBufferPointer { G in
            model.weights.withUnsafeBufferPointer { W in
                x.withUnsafeBufferPointer { X in
                    dy.withUnsafeBufferPointer { DY in
                        dx.withUnsafeMutableBufferPointer { DX in
                            gemm(true, false, d, d, T, 1, X.baseAddress!, d, DY.baseAddress!, d, 1, G.baseAddress! + w, d)
                            gemm(false, true, T, d, d, 1, DY.baseAddress!, d, W.baseAddress! + w, d, 0, DX.baseAddress!, d)
                        }
                    }
                }
            }
        }
        return dx
    }

    /// The batch's mean loss, −log σ(out·E[target]) − log(1 − σ(out·E[negative])) over every
    /// position, with its gradient added into `grad`.
    func backward(_ batch: [SASRec.Example], into grad: inout [Float]) -> Float {
        let T = tokens, d = self.d, w = model.weights
        let targets = batch.flatMap(\.targets), negatives = batch.flatMap(\.negatives)
        precondition(targets.count == T)
        var loss: Float = 0
        var dOut = [Float](repeating: 0, count: T * d)
        let inv = 1 / Float(T)
        for i in 0..<T {
            let pe = l.embedding + Int(targets[i]) * d, ne = l.embedding + Int(negatives[i]) * d
            var pos: Float = 0, neg: Float = 0
            for c in 0..<d {
                pos += output[i * d + c] * w[pe + c]
                neg += output[i * d + c] * w[ne + c]
            }
            loss += softplus(-pos) + softplus(neg)
            let gp = (sigmoid(pos) - 1) * inv, gn = sigmoid(neg) * inv
            for c in 0..<d {
                dOut[i * d + c] = gp * w[pe + c] + gn * w[ne + c]
                grad[pe + c] += gp * output[i * d + c]
                grad[ne + c] += gn * output[i * d + c]
            }
        }
        var dh = layerNormBackward(dOut, xhatF, rstdF, l.finalGamma, l.finalBeta, &grad)
        for (n, b) in l.blocks.enumerated().reversed() {
            let c = blocks[n]
            // Feed-forward: h = (r·W2 + b2)⊙mask2 + fIn, r = relu(a1), a1 = (fIn·W1 + b1)⊙mask1.
            let dz2 = (0..<(T * d)).map { dh[$0] * c.mask2[$0] }
            let dr = linearBackward(dz2, c.r, b.w2, b.b2, &grad)
            let dz1 = (0..<(T * d)).map { c.a1[$0] > 0 ? dr[$0] * c.mask1[$0] : 0 }
            var dfIn = linearBackward(dz1, c.fIn, b.w1, b.b1, &grad)
            for i in 0..<(T * d) { dfIn[i] += dh[i] }
            // h1 = o·Wo + bo + qIn.
            let dh1 = layerNormBackward(dfIn, c.xhat2, c.rstd2, b.ln2g, b.ln2b, &grad)
            let dO = linearBackward(dh1, c.o, b.wo, b.bo, &grad)
            var dq = [Float](repeating: 0, count: T * d), dk = dq, dv = dq
            let invSqrt = 1 / Float(d).squareRoot()
            for s in starts.indices {
                let len = lengths[s], r0 = starts[s] * d, a0 = attStarts[s]
                let att = Array(c.att[a0..<(a0 + len * len)]), mask = Array(c.attMask[a0..<(a0 + len * len)])
                let dropped = (0..<(len * len)).map { att[$0] * mask[$0] }
                var dA = [Float](repeating: 0, count: len * len)
                dO.withUnsafeBufferPointer { DO in
                    c.v.withUnsafeBufferPointer { V in
                        dA.withUnsafeMutableBufferPointer { DA in
                            dropped.withUnsafeBufferPointer { AD in
                                dv.withUnsafeMutableBufferPointer { DV in
                                    gemm(
                                        false, true, len, len, d, 1, DO.baseAddress! + r0, d, V.baseAddress! + r0, d, 0, DA.baseAddress!,
                                        len)
                                    gemm(
                                        true, false, len, d, len, 1, AD.baseAddress!, len, DO.baseAddress! + r0, d, 0, DV.baseAddress! + r0,
                                        d)
                                }
                            }
                        }
                    }
                }
                // Through the dropout and the softmax: dS = A⊙(dA − Σⱼ A·dA).
                for i in 0..<len {
                    var dot: Float = 0
                    for j in 0...i {
                        dA[i * len + j] *= mask[i * len + j]
                        dot += att[i * len + j] * dA[i * len + j]
                    }
                    for j in 0..<len { dA[i * len + j] = j <= i ? att[i * len + j] * (dA[i * len + j] - dot) : 0 }
                }
                dA.withUnsafeBufferPointer { DS in
                    c.k.withUnsafeBufferPointer { K in
                        c.q.withUnsafeBufferPointer { Q in
                            dq.withUnsafeMutableBufferPointer { DQ in
                                dk.withUnsafeMutableBufferPointer { DK in
                                    gemm(
                                        false, false, len, d, len, invSqrt, DS.baseAddress!, len, K.baseAddress! + r0, d, 0,
                                        DQ.baseAddress! + r0, d)
                                    gemm(
                                        true, false, len, d, len, invSqrt, DS.baseAddress!, len, Q.baseAddress! + r0, d, 0,
                                        DK.baseAddress! + r0, d)
                                }
                            }
                        }
                    }
                }
            }
            var dqIn = linearBackward(dq, c.qIn, b.wq, b.bq, &grad)
            for i in 0..<(T * d) { dqIn[i] += dh1[i] }
            var dx = linearBackward(dk, c.x, b.wk, b.bk, &grad)
            let dxv = linearBackward(dv, c.x, b.wv, b.bv, &grad)
            let dxq = layerNormBackward(dqIn, c.xhat1, c.rstd1, b.ln1g, b.ln1b, &grad)
            for i in 0..<(T * d) { dx[i] += dxv[i] + dxq[i] }
            dh = dx
        }
        // Embeddings.
        let scale = Float(d).squareRoot()
        for i in 0..<T {
            let e = l.embedding + Int(items[i]) * d, pos = l.position + Int(positions[i]) * d
            for c in 0..<d {
                let g = dh[i * d + c] * mask0[i * d + c]
                grad[e + c] += g * scale
                grad[pos + c] += g
            }
        }
        return loss * inv
    }
}

@inline(__always) private func softplus(_ x: Float) -> Float { x > 20 ? x : log1p(exp(x)) }

/// C = alpha·op(A)·op(B) + beta·C, row-major, on OpenBLAS (one thread).
@inline(__always)
private func gemm(
    _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>,
    _ ldb: Int,
    _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
) {
    _ = Kernels.singleThreaded
    cblas_sgemm(
        CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
        b, Int32(ldb),
        beta, c, Int32(ldc))
}
