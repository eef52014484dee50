import Foundation
import Math
public import Recommenders

/// Fits a recommender of the parameters' kind to interactions. Every kind fits on one
/// thread (the job's), and reports progress and checks for cancellation between steps.
public enum Trainer {
    /// `catalogue`: what the catalogue says of each item (the content kind's documents).
    public static func train(
        _ p: TrainingParameters, _ data: Interactions, catalogue: [Int64: ItemDocument] = [:],
        progress: TrainingProgress = TrainingProgress()
    ) throws -> RecommenderModel {
        var model: RecommenderModel
        switch p.kind {
        case .popularity:
            model = RecommenderModel(
                kind: .popularity, itemIDs: data.itemIDs, itemCategories: data.itemCategories, popularity: popularity(data))
        case .itemKNN: model = try ItemKNN.train(p, data, progress)
        case .als: model = try ALS.train(p, data, progress)
        case .bpr: model = try BPR.train(p, data, progress)
        case .ease: model = try EASE.train(p, data, progress)
        case .content: model = try Content.train(p, data, catalogue, progress)
        case .sequence: model = try SelfAttentive.train(p, data, progress)
        case .ranker:
            throw TrainingRun.NoData(description: "a ranker is learned over its sources' candidates (RankerRun), not fitted alone")
        }
        model.index()
        progress.report(1, "fitted")
        return model
    }

    /// Each item's summed interaction value over every user.
    public static func popularity(_ data: Interactions) -> [Float] {
        var p = [Float](repeating: 0, count: data.items)
        for (j, i) in data.matrix.indices.enumerated() { p[Int(i)] += data.matrix.values[j] }
        return p
    }

    /// The items an EASE of these parameters covers on `data` (indices of its items).
    public static func easeCoverage(_ p: TrainingParameters, _ data: Interactions) -> [Int] {
        EASE.coveredItems(p, data, popularity(data))
    }

    /// A base model carrying the catalogue and its popularity.
    static func base(_ kind: RecommenderModel.Kind, _ data: Interactions) -> RecommenderModel {
        RecommenderModel(kind: kind, itemIDs: data.itemIDs, itemCategories: data.itemCategories, popularity: popularity(data))
    }
}

extension Matrix {
    /// rows×cols uniform in [-scale, scale), from `rng`.
    static func random(rows: Int, cols: Int, scale: Float, _ rng: inout SplitMix) -> Matrix {
        Matrix(rows: rows, cols: cols, values: (0..<rows * cols).map { _ in (rng.unit() * 2 - 1) * scale })
    }
}
