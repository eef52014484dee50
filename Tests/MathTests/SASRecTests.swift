import Foundation
import Math
import Testing

@Suite("SASRec")
struct SASRecTests {
    let shape = SASRec.Shape(items: 7, dim: 4, maxLength: 5, blocks: 2)

    /// A batch of three sequences of lengths 5, 3 and 1 over 7 items.
    var batch: [SASRec.Example] {
        [
            SASRec.Example(input: [0, 3, 1, 4, 2], targets: [3, 1, 4, 2, 6], negatives: [5, 5, 6, 0, 1]),
            SASRec.Example(input: [6, 2, 5], targets: [2, 5, 1], negatives: [0, 3, 4]),
            SASRec.Example(input: [4], targets: [0], negatives: [2]),
        ]
    }

    /// Each layer's parameter ranges in the weights (the layout's order).
    func layers() -> [(String, Range<Int>)] {
        let d = shape.dim
        var out: [(String, Range<Int>)] = [
            ("item embeddings", 0..<(shape.items * d)), ("positions", (shape.items * d)..<((shape.items + shape.maxLength) * d)),
        ]
        var at = (shape.items + shape.maxLength) * d
        for b in 0..<shape.blocks {
            for (name, size) in [
                ("norm 1", 2 * d), ("query", d * d + d), ("key", d * d + d), ("value", d * d + d), ("attention output", d * d + d),
                ("norm 2", 2 * d),
                ("feed-forward 1", d * d + d), ("feed-forward 2", d * d + d),
            ] {
                out.append(("block \(b) \(name)", at..<(at + size)))
                at += size
            }
        }
        out.append(("final norm", at..<(at + 2 * d)))
        #expect(at + 2 * d == SASRec.parameterCount(shape))
        return out
    }

    @Test("the gradient of every layer, dropout on, matches central finite differences")
    func gradientsMatchFiniteDifferences() {
        var model = SASRec(shape: shape, seed: 3)
        // Non-trivial norms and biases, so their gradients are checked away from 1 and 0.
        var rng = SplitMix(seed: 11)
        for (name, range) in layers() where !name.contains("embeddings") && !name.contains("positions") {
            for i in range { model.weights[i] += (rng.unit() - 0.5) * 0.4 }
        }
        let seed: UInt64 = 99
        let (_, gradient) = model.lossAndGradient(batch, dropout: 0.3, seed: seed)
        let eps: Float = 2e-3
        for (name, range) in layers() {
            var worst: Float = 0, norm: Float = 0
            for i in range {
                var plus = model, minus = model
                plus.weights[i] += eps
                minus.weights[i] -= eps
                let numeric =
                    (plus.lossAndGradient(batch, dropout: 0.3, seed: seed).loss
                        - minus.lossAndGradient(batch, dropout: 0.3, seed: seed).loss) / (2 * eps)
                worst = max(worst, abs(numeric - gradient[i]) / (1e-3 + 0.02 * abs(numeric)))
                norm += gradient[i] * gradient[i]
            }
            #expect(worst <= 1, "\(name): analytic and numeric gradients differ (worst \(worst) of the tolerance)")
            #expect(norm > 0, "\(name): a zero gradient")
        }
    }

    @Test("the same seed gives the same weights; another seed other weights")
    func sameSeedSameWeights() {
        func train(_ seed: UInt64) -> [Float] {
            var model = SASRec(shape: shape, seed: seed)
            var adam = SASRecOptimizer(for: model, learningRate: 0.01, dropout: 0.2, seed: seed)
            for _ in 0..<20 { _ = adam.step(&model, batch) }
            return model.weights
        }
        #expect(train(5) == train(5))
        #expect(train(5) != train(6))
    }

    @Test("a stream where A is always followed by B: after A, B scores highest")
    func aThenB() {
        // Ten items; in every sequence each 2 is followed by 7, other steps are random.
        var rng = SplitMix(seed: 1)
        let shape = SASRec.Shape(items: 10, dim: 16, maxLength: 8, blocks: 1)
        var model = SASRec(shape: shape, seed: 1)
        var adam = SASRecOptimizer(for: model, learningRate: 0.01, dropout: 0.1, seed: 1)
        func sequence() -> [Int32] {
            var s: [Int32] = []
            while s.count < 9 {
                let next = Int32(rng.below(10))
                s.append(s.last == 2 ? 7 : next)
            }
            return s
        }
        var losses: [Float] = []
        for _ in 0..<300 {
            let batch = (0..<16).map { _ in
                let s = sequence()
                return SASRec.Example(
                    input: Array(s.dropLast()), targets: Array(s.dropFirst()),
                    negatives: s.dropFirst().map { t in Int32((Int(t) + 1 + rng.below(9)) % 10) })
            }
            losses.append(adam.step(&model, batch))
        }
        #expect(losses.suffix(20).reduce(0, +) < losses.prefix(20).reduce(0, +))
        let table = model.itemTable
        for context: [Int32] in [[2], [5, 1, 2], [9, 2, 7, 3, 2]] {
            let query = model.encode(context)
            let scores = (0..<10).map { i in (0..<16).reduce(Float(0)) { $0 + table[i, $1] * query[$1] } }
            #expect(scores.indices.max { scores[$0] < scores[$1] } == 7, "after \(context): \(scores)")
        }
    }
}
