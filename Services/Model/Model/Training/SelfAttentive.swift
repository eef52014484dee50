import Foundation
import Math
import Recommenders

/// The sequence kind: SASRec (Shared/Math) on each user's steps in log order
/// (`Interactions.sequences`). Each user with two or more steps is one training sequence
/// (its latest `max_length` + 1: every position's next item is its target, with one
/// negative drawn per epoch from the items the user never met). The latest step of each
/// user with three or more is held out for early stopping: every `evaluationSteps` Adam
/// steps or so (every epoch when an epoch has that many batches, else every few), NDCG@10
/// of those items over the whole catalogue (items met before included); training stops
/// after `patience` evaluations without a better one, or a quarter of the evaluations so far
/// when that is more, and keeps the best weights. With `patience` at
/// least `epochs` there is nothing to stop: no step is held out and every epoch trains.
/// Mini-batches of `batch` sequences, shuffled each epoch; every draw from `seed`.
enum SelfAttentive {
    /// At most this many held-out users score the catalogue after each epoch.
    static let validationUsers = 5000
    /// About how many Adam steps lie between two validations (a small shop's epoch is a few).
    static let evaluationSteps = 100

    static func train(_ p: TrainingParameters, _ data: Interactions, _ progress: TrainingProgress) throws -> RecommenderModel {
        let length = p.int("max_length"), n = data.items
        let shape = SASRec.Shape(items: n, dim: p.int("dim"), maxLength: length, blocks: p.int("blocks"))
        var rng = SplitMix(seed: UInt64(p.int("seed")))
        var network = SASRec(shape: shape, seed: rng.next())
        var adam = SASRecOptimizer(for: network, learningRate: p.float("learning_rate"), dropout: p.float("dropout"), seed: rng.next())

        // Training sequences and the held-out next items.
        let batch = p.int("batch"), epochs = p.int("epochs"), patience = p.int("patience")
        let validating = patience < epochs
        var sequences: [[Int32]] = [], met: [Set<Int32>] = []
        var validation: [(input: [Int32], next: Int32)] = []
        for s in data.sequences where s.count >= 2 {
            let held = validating && s.count >= 3
            let train = held ? Array(s.dropLast()) : s
            if held { validation.append((Array(train.suffix(length)), s.last!)) }
            sequences.append(Array(train.suffix(length + 1)))
            met.append(Set(s))
        }
        guard !sequences.isEmpty else {
            throw TrainingRun.NoData(description: "no user has two or more items: a sequence model needs sequences")
        }
        if validation.count > validationUsers {
            validation.shuffle(using: &rng)
            validation.removeLast(validation.count - validationUsers)
        }

        var order = Array(sequences.indices)
        var best: (ndcg: Double, weights: [Float])? = nil
        var stale = 0
        let batches = (order.count + batch - 1) / batch
        let every = max(1, (evaluationSteps + batches - 1) / batches)
        for epoch in 1...epochs {
            try progress.check()
            order.shuffle(using: &rng)
            var loss = 0.0, steps = 0
            for start in stride(from: 0, to: order.count, by: batch) {
                let examples = order[start..<min(order.count, start + batch)].map { u in
                    let s = sequences[u]
                    return SASRec.Example(
                        input: Array(s.dropLast()), targets: Array(s.dropFirst()),
                        negatives: s.dropFirst().map { _ in negative(n, excluding: met[u], &rng) })
                }
                loss += Double(adam.step(&network, examples))
                steps += 1
            }
            progress.loss(loss / Double(steps))
            guard !validation.isEmpty, epoch % every == 0 || epoch == epochs else {
                progress.report(Double(epoch) / Double(epochs), "epoch \(epoch): loss \(String(format: "%.4f", loss / Double(steps)))")
                continue
            }
            let ndcg = validationNDCG(network, validation)
            progress.report(
                Double(epoch) / Double(epochs),
                "epoch \(epoch): loss \(String(format: "%.4f", loss / Double(steps))), validation ndcg@10 \(String(format: "%.4f", ndcg))")
            if best == nil || ndcg > best!.ndcg {
                best = (ndcg, network.weights)
                stale = 0
            } else {
                stale += 1
                // A model still learning improves in bursts between noisy evaluations: the
                // patience grows with the run (a quarter of the evaluations so far), so a long
                // climb is not cut at its first plateau.
                if stale >= max(patience, epoch / every / 4) { break }
            }
        }
        if let best { network.weights = best.weights }
        var model = Trainer.base(.sequence, data)
        model.sequence = network
        model.items = network.itemTable
        return model
    }

    /// An item the user never met (any item when they met them all).
    static func negative(_ n: Int, excluding met: Set<Int32>, _ rng: inout SplitMix) -> Int32 {
        guard met.count < n else { return Int32(rng.below(n)) }
        while true {
            let i = Int32(rng.below(n))
            if !met.contains(i) { return i }
        }
    }

    /// Mean NDCG@10 of each held-out next item in the ranking of every item.
    static func validationNDCG(_ network: SASRec, _ held: [(input: [Int32], next: Int32)]) -> Double {
        let table = network.itemTable
        var scores: [Float] = []
        var sum = 0.0
        for (input, next) in held {
            Kernels.score(table, network.encode(input), into: &scores)
            let target = scores[Int(next)]
            let rank = scores.reduce(0) { $0 + ($1 > target ? 1 : 0) }
            if rank < 10 { sum += 1 / log2(Double(rank) + 2) }
        }
        return sum / Double(held.count)
    }
}
