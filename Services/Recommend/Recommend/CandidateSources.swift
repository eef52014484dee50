import Math
import Recommenders

/// One source of candidates for a user: it offers up to `pool` items, each scored in [0, 1]
/// by its own best and weighted, with the reason that names what gave it.
protocol CandidateSource {
    func offer(_ query: CandidateQuery, into blend: inout CandidateBlend)
}

/// What every source reads for one request: the user, their recent items, the request's
/// filters, and what the personal sources leave out.
struct CandidateQuery {
    let userID: Int64
    let history: Recommender.History
    let context: Recommender.Context
    let pool: Int
    /// Purchases still within their repurchase window.
    let bought: Set<Int64>
    /// Recent views and carts, and purchases within their repurchase window.
    private let recent: Set<Int64>
    /// Recent purchases whose repurchase window has passed: offered again.
    private let rebuyable: Set<Int64>

    init(userID: Int64, history: Recommender.History, context: Recommender.Context, pool: Int, bought: Set<Int64>) {
        self.userID = userID
        self.history = history
        self.context = context
        self.pool = pool
        self.bought = bought
        recent = Set(history.views + history.carts).union(bought)
        rebuyable = Set(history.purchases).subtracting(bought)
    }

    /// Whether the user met the item (recently, or ever when the profile sent its table of
    /// every item met): the list is for discovery, so no source offers it, unless it is a
    /// purchase whose repurchase window has passed. Constant time, however long the history.
    func seen(_ id: Int64) -> Bool {
        recent.contains(id) || (history.met?.contains(id) ?? false) && !rebuyable.contains(id)
    }

    /// Whether any source may offer the item: not met, not excluded, in the asked categories.
    func allowed(_ id: Int64, category: Int64) -> Bool {
        !seen(id) && !context.excluding.contains(id) && (context.categories.isEmpty || context.categories.contains(category))
    }

    func allowed(_ m: RecommenderModel, _ i: Int) -> Bool { allowed(m.itemIDs[i], category: m.itemCategories[i]) }

    /// Recent items as (dense index, value): purchases count most, as in training.
    func weighted(_ m: RecommenderModel) -> [(item: Int32, value: Float)] {
        var values: [Int32: Float] = [:]
        for (ids, w, _) in history.actions {
            for id in ids { if let i = m.itemIndex[id] { values[i, default: 0] += w } }
        }
        return values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// The candidates of every source per item: their weighted scores summed (the fixed blend),
/// and what each role offered (a ranker's features); an item's reason and source are those
/// of the source that gave it the most.
struct CandidateBlend {
    struct Entry {
        var score: Float = 0
        var best: Float = 0
        var reason: String
        var source: String
        var category: Int64
        var parts: [Recommender.Contribution] = []
        var offers = Ranking.Offers()
    }

    private var entries: [Int64: Entry] = [:]

    /// `scaled` is the source's own score scaled to [0, 1], `rank` the item's place in its
    /// list; `role` nil for a source a ranker does not know (the live lists).
    mutating func add(
        _ itemID: Int64, role: Ranking.Role?, scaled: Float, rank: Int, weight: Float, _ reason: String, _ source: String, category: Int64
    ) {
        let score = weight * scaled
        guard score > 0 else { return }
        var entry = entries[itemID] ?? Entry(reason: reason, source: source, category: category)
        entry.score += score
        entry.parts.append(Recommender.Contribution(name: source, value: score, detail: reason))
        if score > entry.best { (entry.best, entry.reason, entry.source) = (score, reason, source) }
        if entry.category == 0 { entry.category = category }
        if let role { entry.offers.add(role, score: scaled, rank: rank) }
        entries[itemID] = entry
    }

    /// Best first by the fixed blend, or by `score` of each item's entry when given (a
    /// ranker); equal scores go to the lower item id. With `limit`, only the best `limit`:
    /// the entries are ordered by their scores alone and only those kept become candidates.
    func ranked(limit: Int? = nil, by score: ((Int64, Entry) -> Float)? = nil) -> [Recommender.Candidate] {
        var keys: [(score: Float, id: Int64)] = []
        keys.reserveCapacity(entries.count)
        for (id, e) in entries { keys.append((score?(id, e) ?? e.score, id)) }
        let better = { (a: (score: Float, id: Int64), b: (score: Float, id: Int64)) in a.score != b.score ? a.score > b.score : a.id < b.id
        }
        if let limit, limit < keys.count {
            keys = Array(keys.sorted(by: better).prefix(max(0, limit)))
        } else {
            keys.sort(by: better)
        }
        return keys.map { key in
            let e = entries[key.id]!
            return Recommender.Candidate(
                itemID: key.id, score: key.score, reason: e.reason, source: e.source, category: e.category, contributions: e.parts)
        }
    }
}

/// The factor model (ALS or BPR): the user's own vector, or one folded in from their recent
/// items; the reason is the recent item whose vector is closest to the candidate's.
struct FactorSource: CandidateSource {
    let loaded: PublishedModels.Loaded
    let weight: Float

    func offer(_ q: CandidateQuery, into blend: inout CandidateBlend) {
        let m = loaded.model
        let user = m.userIndex[q.userID]
        let recent = q.weighted(m)
        guard user != nil || !recent.isEmpty else { return }
        let top = loaded.top(user: user, history: recent, k: q.pool) { !q.allowed(m, $0) }
        guard let scaled = Ranking.byBest(top.map(\.score)) else { return }
        let items = m.items!
        let anchors = q.history.withVerbs.compactMap { a in m.itemIndex[a.id].map { (index: Int($0), id: a.id, verb: a.verb) } }
        for (rank, e) in top.enumerated() {
            var closest: Float = 0
            var anchor: Int?
            for (k, a) in anchors.enumerated() {
                let s = items.values.withUnsafeBufferPointer { v in
                    Vec.dot(v.baseAddress! + Int(e.index) * items.cols, v.baseAddress! + a.index * items.cols, items.cols)
                }
                if s > closest { (closest, anchor) = (s, k) }
            }
            let reason = anchor.map { "because you \(anchors[$0].verb) \(ItemNames.mark(anchors[$0].id))" } ?? "matches your taste"
            let i = Int(e.index)
            blend.add(
                m.itemIDs[i], role: .factors, scaled: scaled[rank], rank: rank, weight: weight, reason, m.kind.rawValue,
                category: m.itemCategories[i])
        }
    }
}

/// An item-item table (item-kNN, EASE, or the content model's neighbours): the items next to
/// the user's recent ones (and, for content, the items upserted since it was trained that are
/// next to them), each credited to the recent item that gave it the most.
struct NeighbourSource: CandidateSource {
    let loaded: PublishedModels.Loaded
    let role: Ranking.Role
    let weight: Float
    var fresh: FreshItems.Table? = nil
    /// The reason from the verb and the recent item ("because you viewed 85123").
    let reason: (String, Int64) -> String

    func offer(_ q: CandidateQuery, into blend: inout CandidateBlend) {
        guard let w = loaded.model.itemItem, weight > 0 else { return }
        let m = loaded.model
        var contributions: [Int64: (score: Float, bestFrom: Int64, bestScore: Float, verb: String, category: Int64)] = [:]
        func credit(_ id: Int64, _ category: Int64, _ s: Float, from: Int64, _ verb: String) {
            var c = contributions[id] ?? (0, from, 0, verb, category)
            c.score += s
            if s > c.bestScore { (c.bestFrom, c.bestScore, c.verb) = (from, s, verb) }
            contributions[id] = c
        }
        for (ids, actionWeight, verb) in q.history.actions {
            for id in ids {
                guard let j = m.itemIndex[id] else { continue }
                for e in w.rowStart[Int(j)]..<w.rowStart[Int(j) + 1] {
                    let i = Int(w.indices[e])
                    credit(m.itemIDs[i], m.itemCategories[i], actionWeight * w.values[e], from: id, verb)
                }
                for near in fresh?.near[j] ?? [] {
                    credit(near.id, fresh?.items[near.id]?.category ?? 0, actionWeight * near.similarity, from: id, verb)
                }
            }
        }
        var ranked: [(id: Int64, category: Int64, score: Float, reason: String)] = []
        for (id, c) in contributions where q.allowed(id, category: c.category) {
            ranked.append((id, c.category, c.score, reason(c.verb, c.bestFrom)))
        }
        ranked.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
        let top = ranked.prefix(q.pool)
        guard let scaled = Ranking.byBest(top.map(\.score)) else { return }
        for (rank, r) in top.enumerated() {
            blend.add(r.id, role: role, scaled: scaled[rank], rank: rank, weight: weight, r.reason, m.kind.rawValue, category: r.category)
        }
    }
}

/// The sequence model (SASRec): the next items after the user's latest ones.
struct SequenceSource: CandidateSource {
    let loaded: PublishedModels.Loaded
    let weight: Float

    func offer(_ q: CandidateQuery, into blend: inout CandidateBlend) {
        // The user's latest items oldest first, consecutive events on one item as one step
        // (as the model was trained).
        let m = loaded.model
        var order: [Int32] = []
        for id in q.history.items.reversed() {
            if let i = m.itemIndex[id], order.last != i { order.append(i) }
        }
        guard !order.isEmpty else { return }
        let top = loaded.top(user: nil, history: order.map { (item: $0, value: 1) }, k: q.pool) { !q.allowed(m, $0) }
        let reason = "next after " + order.suffix(2).map { ItemNames.mark(m.itemIDs[Int($0)]) }.joined(separator: ", ")
        // Inner products may be negative: scaled to (0, 1] over the pool, the last still counting a little.
        guard let scaled = Ranking.byRange(top.map(\.score)) else { return }
        for (rank, e) in top.enumerated() {
            let i = Int(e.index)
            blend.add(
                m.itemIDs[i], role: .sequence, scaled: scaled[rank], rank: rank, weight: weight, reason, m.kind.rawValue,
                category: m.itemCategories[i])
        }
    }
}

/// The feature service's live lists (trending in the shop and in categories).
struct LiveSource: CandidateSource {
    let lists: [Recommender.LiveList]
    let weight: Float

    func offer(_ q: CandidateQuery, into blend: inout CandidateBlend) {
        for list in lists {
            let best = list.items.first?.score ?? 0
            let reason = list.category == 0 ? "trending now" : "trending in \(list.category)"
            for (rank, e) in list.items.prefix(q.pool).enumerated() where best > 0 && q.allowed(e.id, category: e.category) {
                blend.add(e.id, role: nil, scaled: e.score / best, rank: rank, weight: weight, reason, list.name, category: e.category)
            }
        }
    }
}

/// The published popularity: one list per asked category (or the shop's), each scaled by its
/// own best.
struct PopularitySource: CandidateSource {
    let model: RecommenderModel
    let weight: Float

    func offer(_ q: CandidateQuery, into blend: inout CandidateBlend) {
        for category in q.context.categories.isEmpty ? [0] : q.context.categories.sorted() {
            let top = model.popular(category: category, n: q.pool + q.bought.count + q.context.excluding.count)
            let allowed = top.filter { q.allowed(model, Int($0.index)) }.prefix(q.pool)
            guard let scaled = Ranking.byBest(allowed.map(\.score)) else { continue }
            for (rank, e) in allowed.enumerated() {
                let i = Int(e.index)
                let reason = category == 0 ? "popular" : "popular in \(category)"
                blend.add(
                    model.itemIDs[i], role: .popularity, scaled: scaled[rank], rank: rank, weight: weight, reason, "popularity",
                    category: model.itemCategories[i])
            }
        }
    }
}
