import Foundation
import Math
public import Recommenders
import Wire

/// SimilarItems: an item's collaborative neighbours, topped up from its content neighbours.
extension Recommender {
    /// The `n` items most like `itemID`: its collaborative neighbours (item-kNN or EASE, else
    /// the factor model's nearest items), topped up from the content model's neighbours when
    /// those are fewer than `n` (a new or rarely met item), or the content ones alone.
    /// The items like `itemID`, their reasons naming it by `title` when one is given.
    public func similar(to itemID: Int64, n: Int, title: String = "") -> (items: [Candidate], model: PublishedModels.Loaded?) {
        let (items, model) = similarItems(to: itemID, n: n)
        return (items.map { ItemNames.resolve($0, titles: [itemID: title]) }, model)
    }

    func similarItems(to itemID: Int64, n: Int) -> (items: [Candidate], model: PublishedModels.Loaded?) {
        // An item upserted since the content model was trained: its nearest described items.
        if let c = content, let entry = fresh?.items[itemID] {
            let m = c.model
            let row = entry.neighbours.map { e in
                Candidate(
                    itemID: m.itemIDs[Int(e.index)], score: e.similarity, reason: "described like \(ItemNames.mark(itemID))",
                    source: "content",
                    category: m.itemCategories[Int(e.index)])
            }
            return (Array(row.sorted(by: Self.ranked).prefix(n)), c)
        }
        var (items, model) = collaborativelySimilar(to: itemID, n: n)
        if items.count < n, let c = content, let w = c.model.itemItem, let j = c.model.itemIndex[itemID] {
            let have = Set(items.map(\.itemID)).union([itemID])
            var row: [Candidate] = []
            for e in w.rowStart[Int(j)]..<w.rowStart[Int(j) + 1] where !have.contains(c.model.itemIDs[Int(w.indices[e])]) {
                let i = Int(w.indices[e])
                row.append(
                    Candidate(
                        itemID: c.model.itemIDs[i], score: w.values[e], reason: "described like \(ItemNames.mark(itemID))",
                        source: "content",
                        category: c.model.itemCategories[i]))
            }
            row.sort(by: Self.ranked)
            items += row.prefix(n - items.count)
            if model == nil, !row.isEmpty { model = c }
        }
        return (items, model)
    }

    func collaborativelySimilar(to itemID: Int64, n: Int) -> (items: [Candidate], model: PublishedModels.Loaded?) {
        if let k = neighbours, let w = k.model.itemItem, let j = k.model.itemIndex[itemID], w.rowStart[Int(j) + 1] > w.rowStart[Int(j)] {
            let m = k.model
            var row: [Candidate] = []
            for e in w.rowStart[Int(j)]..<w.rowStart[Int(j) + 1] {
                let i = Int(w.indices[e])
                row.append(
                    Candidate(
                        itemID: m.itemIDs[i], score: w.values[e], reason: "bought or viewed together with \(ItemNames.mark(itemID))",
                        source: m.kind.rawValue, category: m.itemCategories[i]))
            }
            row.sort(by: Self.ranked)
            return (Array(row.prefix(n)), k)
        }
        if let f = factors, let items = f.model.items, let j = f.model.itemIndex[itemID] {
            var scores: [Float] = []
            Kernels.score(items, items.row(Int(j)), rowNorms: Kernels.norms(items), into: &scores)
            let top = TopK.select(scores, k: n) { $0 == Int(j) }
            return (
                top.map { e in
                    let i = Int(e.index)
                    return Candidate(
                        itemID: f.model.itemIDs[i], score: e.score, reason: "liked by the same shoppers as \(ItemNames.mark(itemID))",
                        source: f.model.kind.rawValue, category: f.model.itemCategories[i])
                }, f
            )
        }
        return ([], nil)
    }
}

/// A setting that does not parse; the message says what was expected.
public struct SettingError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
