import Foundation
import Math
public import Recommenders
import Wire

/// Blends the published recommenders into one ranked list for a user: the factor model
/// (the user's own vector, or one folded in from their recent items), item-kNN neighbours
/// of their recent views, carts and purchases, and popularity for cold start. Each source's
/// scores are scaled to [0, 1] by its best candidate and weighted; an item's reason names the
/// source that gave it the most ("because you viewed 1866283", "popular"). Ties go to the
/// lower item id, so answers are deterministic.
public struct Recommender: Sendable {
    /// The weight of each source in the blend.
    public struct Weights: Sendable {
        public var factors: Float = 1
        public var neighbours: Float = 1
        public var popularity: Float = 0.05
        public init() {}
    }

    /// A user's recent items, newest first, as the feature service holds them.
    public struct History: Sendable {
        public var views: [Int64] = []
        public var carts: [Int64] = []
        public var purchases: [Int64] = []
        public init(views: [Int64] = [], carts: [Int64] = [], purchases: [Int64] = []) {
            self.views = views
            self.carts = carts
            self.purchases = purchases
        }
        /// Each kind of recent item with its weight (as in training: a purchase counts most)
        /// and the verb a reason uses for it.
        var actions: [(ids: [Int64], weight: Float, verb: String)] {
            [(views, 1, "viewed"), (carts, 3, "carted"), (purchases, 5, "bought")]
        }
    }

    public struct Candidate: Sendable, Equatable {
        public var itemID: Int64
        public var score: Float
        public var reason: String
        public var source: String
    }

    public var factors: PublishedModels.Loaded?
    public var neighbours: PublishedModels.Loaded?
    public var popularity: PublishedModels.Loaded?
    public var weights = Weights()

    public init(factors: PublishedModels.Loaded?, neighbours: PublishedModels.Loaded?, popularity: PublishedModels.Loaded?) {
        self.factors = factors
        self.neighbours = neighbours
        self.popularity = popularity
    }

    /// The model whose name and version an answer reports: the first source that took part.
    public var primary: PublishedModels.Loaded? { factors ?? neighbours ?? popularity }

    /// The `n` best items for `userID` with `history`, never an excluded item or one the
    /// user bought, only items of `category` when it is not 0.
    /// `maxPerCategory` (> 0) keeps at most that many items of one category (the item's
    /// category in the models), taking the next best instead.
    public func recommend(userID: Int64, history: History, n: Int, excluding: Set<Int64> = [], category: Int64 = 0, maxPerCategory: Int = 0) -> [Candidate] {
        var blended: [Int64: (score: Float, best: Float, reason: String, source: String)] = [:]
        func add(_ itemID: Int64, _ score: Float, _ reason: String, _ source: String) {
            guard score > 0 else { return }
            var entry = blended[itemID] ?? (0, 0, reason, source)
            entry.score += score
            if score > entry.best { (entry.best, entry.reason, entry.source) = (score, reason, source) }
            blended[itemID] = entry
        }
        let bought = Set(history.purchases)
        let seen = Set(history.views + history.carts + history.purchases)
        func allowed(_ m: RecommenderModel, _ i: Int) -> Bool {
            let id = m.itemIDs[i]
            return !bought.contains(id) && !excluding.contains(id) && (category == 0 || m.itemCategories[i] == category)
        }
        let pool = max(50, 4 * n)
        // Recent items as (dense index, value): purchases count most, as in training.
        func weighted(_ m: RecommenderModel) -> [(item: Int32, value: Float)] {
            var values: [Int32: Float] = [:]
            for (ids, w, _) in history.actions {
                for id in ids { if let i = m.itemIndex[id] { values[i, default: 0] += w } }
            }
            return values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        if let f = factors {
            let m = f.model
            let user = m.userIndex[userID]
            let recent = weighted(m)
            if user != nil || !recent.isEmpty {
                var scores: [Float] = []
                m.score(user: user, history: recent, into: &scores)
                let top = TopK.select(scores, k: pool) { !allowed(m, $0) || seen.contains(m.itemIDs[$0]) }
                let best = top.first?.score ?? 0
                // The reason: the recent item whose vector has the largest inner product with the candidate's.
                let items = m.items!
                let anchors = recentWithVerbs(history).compactMap { a in m.itemIndex[a.id].map { (index: Int($0), id: a.id, verb: a.verb) } }
                for e in top where best > 0 {
                    var reason = "matches your taste"
                    var closest: Float = 0
                    for a in anchors {
                        let s = items.values.withUnsafeBufferPointer { v in
                            Vec.dot(v.baseAddress! + Int(e.index) * items.cols, v.baseAddress! + a.index * items.cols, items.cols)
                        }
                        if s > closest {
                            closest = s
                            reason = "because you \(a.verb) \(a.id)"
                        }
                    }
                    add(m.itemIDs[Int(e.index)], weights.factors * e.score / best, reason, m.kind.rawValue)
                }
            }
        }
        if let k = neighbours, let w = k.model.itemItem {
            let m = k.model
            var contributions: [Int32: (score: Float, bestFrom: Int64, bestScore: Float, verb: String)] = [:]
            for (ids, weight, verb) in history.actions {
                for id in ids {
                    guard let j = m.itemIndex[id] else { continue }
                    for e in w.rowStart[Int(j)]..<w.rowStart[Int(j) + 1] {
                        let i = w.indices[e], s = weight * w.values[e]
                        var c = contributions[i] ?? (0, id, 0, verb)
                        c.score += s
                        if s > c.bestScore { (c.bestFrom, c.bestScore, c.verb) = (id, s, verb) }
                        contributions[i] = c
                    }
                }
            }
            var ranked: [(id: Int64, score: Float, reason: String)] = []
            for (i, c) in contributions where allowed(m, Int(i)) && !seen.contains(m.itemIDs[Int(i)]) {
                ranked.append((m.itemIDs[Int(i)], c.score, "because you \(c.verb) \(c.bestFrom)"))
            }
            ranked.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
            let best = ranked.first?.score ?? 0
            for r in ranked.prefix(pool) where best > 0 {
                add(r.id, weights.neighbours * r.score / best, r.reason, m.kind.rawValue)
            }
        }
        if let p = popularity?.model ?? primary?.model {
            let top = p.popular(category: category, n: pool + seen.count + excluding.count)
            let best = top.first?.score ?? 0
            for e in top where best > 0 && allowed(p, Int(e.index)) {
                let id = p.itemIDs[Int(e.index)]
                add(id, weights.popularity * e.score / best, category == 0 ? "popular" : "popular in \(category)", "popularity")
            }
        }
        let ranked = blended.map { Candidate(itemID: $0.key, score: $0.value.score, reason: $0.value.reason, source: $0.value.source) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.itemID < $1.itemID }
        guard maxPerCategory > 0 else { return Array(ranked.prefix(n)) }
        var perCategory: [Int64: Int] = [:]
        var out: [Candidate] = []
        for c in ranked where out.count < n {
            let cat = categoryOf(c.itemID)
            guard cat == 0 || perCategory[cat, default: 0] < maxPerCategory else { continue }
            perCategory[cat, default: 0] += 1
            out.append(c)
        }
        return out
    }

    /// An item's category in the first model that knows it (0 when none does).
    func categoryOf(_ itemID: Int64) -> Int64 {
        for m in [factors, neighbours, popularity].compactMap({ $0?.model }) {
            if let i = m.itemIndex[itemID] { return m.itemCategories[Int(i)] }
        }
        return 0
    }

    /// The user's recent items, each with what they did with it (a later verb wins).
    func recentWithVerbs(_ h: History) -> [(id: Int64, verb: String)] {
        var verbs: [Int64: String] = [:]
        for (ids, _, verb) in h.actions {
            for id in ids { verbs[id] = verb }
        }
        return verbs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Items like `itemID`: its item-kNN neighbours, else the nearest item vectors (cosine)
    /// of the factor model.
    public func similar(to itemID: Int64, n: Int) -> (items: [Candidate], model: PublishedModels.Loaded?) {
        if let k = neighbours, let w = k.model.itemItem, let j = k.model.itemIndex[itemID], w.rowStart[Int(j) + 1] > w.rowStart[Int(j)] {
            let m = k.model
            var row: [Candidate] = []
            for e in w.rowStart[Int(j)]..<w.rowStart[Int(j) + 1] {
                row.append(Candidate(itemID: m.itemIDs[Int(w.indices[e])], score: w.values[e], reason: "bought or viewed together with \(itemID)", source: m.kind.rawValue))
            }
            row.sort { $0.score != $1.score ? $0.score > $1.score : $0.itemID < $1.itemID }
            return (Array(row.prefix(n)), k)
        }
        if let f = factors, let items = f.model.items, let j = f.model.itemIndex[itemID] {
            var scores: [Float] = []
            Kernels.score(items, items.row(Int(j)), rowNorms: Kernels.norms(items), into: &scores)
            let top = TopK.select(scores, k: n) { $0 == Int(j) }
            return (top.map { Candidate(itemID: f.model.itemIDs[Int($0.index)], score: $0.score, reason: "liked by the same shoppers as \(itemID)", source: f.model.kind.rawValue) }, f)
        }
        return ([], nil)
    }
}
