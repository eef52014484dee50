import Foundation
import Math
import Recommenders

/// Content-based neighbours: every item's catalogue entry (title words, tags, category,
/// brand, price band; `ItemDocument.terms`) as a TF-IDF vector, and each item's `neighbors`
/// most similar others by cosine. The items are the interactions' (those without a
/// catalogue entry have their category alone) followed by the catalogue's items nobody has
/// interacted with yet: those are recommendable from their first upsert on. A user's score
/// for item i is Σⱼ value(u, j)·cos(j, i) over their items j, as item-kNN's.
enum Content {
    static func train(_ p: TrainingParameters, _ data: Interactions, _ catalogue: [Int64: ItemDocument], _ progress: TrainingProgress)
        throws -> RecommenderModel
    {
        let known = Set(data.itemIDs)
        let extra = catalogue.keys.filter { !known.contains($0) }.sorted()
        let ids = data.itemIDs + extra
        let documents =
            data.itemIDs.enumerated().map { i, id in catalogue[id] ?? ItemDocument(category: data.itemCategories[i]) }
            + extra.map { catalogue[$0]! }
        progress.report(0, "vectorising \(ids.count) items (\(extra.count) without interactions)")
        let vectors = ContentVectors.fit(documents, minDF: p.int("min_df"))
        try progress.check()
        let table = try vectors.neighbourTable(k: p.int("neighbors")) { i in
            try progress.check()
            progress.report(Double(i) / Double(max(1, ids.count)), "content neighbours of item \(i) of \(ids.count)")
        }
        var model = RecommenderModel(
            kind: .content, itemIDs: ids, itemCategories: documents.map(\.category),
            popularity: Trainer.popularity(data) + [Float](repeating: 0, count: extra.count))
        model.itemItem = table
        model.content = vectors
        return model
    }
}
