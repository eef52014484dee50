import Foundation
import Math
import Profiles
public import Recommenders
public import Wire

/// Blends the published recommenders and the feature service's live lists into one ranked
/// list for a user, in two steps:
///
/// 1. `candidates`: the factor model (the user's own vector, or one folded in from their
///    recent items), item-kNN neighbours of their recent views, carts and purchases, items
///    trending in their categories and the shop, and popularity. Each source's scores are
///    scaled to [0, 1] by its best candidate and weighted (`Weights`); an item's reason names
///    the source that gave it the most (`because you viewed "RED MUG"`, "trending in 11").
/// 2. `rerank`: the filters that need the catalogue (price range, stock, categories), the
///    boosts (the user's category affinity and price band, business tags), then diversity
///    (at most M per category, maximal marginal relevance).
///
/// Ties go to the lower item id, so equal inputs give equal answers.
public struct Recommender: Sendable {
    public var factors: PublishedModels.Loaded?
    public var neighbours: PublishedModels.Loaded?
    /// The content model (catalogue similarity), a source of its own.
    public var content: PublishedModels.Loaded?
    /// Items upserted since the content model was trained, with their nearest of its items.
    public var fresh: FreshItems.Table?
    /// The sequence model (SASRec), a source of its own.
    public var sequence: PublishedModels.Loaded?
    public var popularity: PublishedModels.Loaded?
    /// The learned second stage (`Ranking`): when published, it orders the candidates in
    /// place of the weighted sum (the weights still say which sources take part).
    public var ranker: PublishedModels.Loaded?
    public var weights = Weights()
    public var repurchase = RepurchaseWindows()
    /// Business boosts (> 1) and burials (< 1) by catalogue tag: the score is multiplied by
    /// the factor of each tag an item has.
    public var tagFactors: [String: Float] = [:]

    public init(
        factors: PublishedModels.Loaded?, neighbours: PublishedModels.Loaded?, popularity: PublishedModels.Loaded?,
        content: PublishedModels.Loaded? = nil,
        sequence: PublishedModels.Loaded? = nil
    ) {
        self.factors = factors
        self.neighbours = neighbours
        self.popularity = popularity
        self.content = content
        self.sequence = sequence
    }

    /// The model whose name and version an answer reports: the first source that took part.
    public var primary: PublishedModels.Loaded? { factors ?? neighbours ?? sequence ?? content ?? popularity }

    var models: [RecommenderModel] { [factors, neighbours, sequence, content, popularity].compactMap { $0?.model } }

    /// Whether any model has items of `category`.
    public func knows(category: Int64) -> Bool { models.contains { $0.categories.contains(category) } }

    /// The user's purchases still within their repurchase window at `nowMs`.
    func boughtRecently(_ history: History, nowMs: Int64) -> Set<Int64> {
        var out = Set<Int64>()
        for (i, id) in history.purchases.enumerated() {
            let at = i < history.purchaseMs.count ? history.purchaseMs[i] : 0
            if repurchase.blocks(category: categoryOf(id), boughtMs: at, nowMs: nowMs) { out.insert(id) }
        }
        return out
    }

    /// The sources this recommender blends, in the order they are added: the factor model,
    /// item-item neighbours, content neighbours, the sequence model, the live lists, popularity.
    func sources(history: History, live: [LiveList]) -> [any CandidateSource] {
        var out: [any CandidateSource] = []
        if let f = factors, weights.factors > 0 { out.append(FactorSource(loaded: f, weight: weights.factors)) }
        if let k = neighbours {
            out.append(
                NeighbourSource(loaded: k, role: .neighbours, weight: weights.neighbours) { "because you \($0) \(ItemNames.mark($1))" })
        }
        if let c = content {
            // Twice the weight for a user with one or two recent items, whom collaborative
            // sources know least.
            let few = history.touched.count <= 2
            out.append(
                NeighbourSource(loaded: c, role: .content, weight: weights.content * (few ? 2 : 1), fresh: fresh) {
                    "like \(ItemNames.mark($1)) you \($0)"
                }
            )
        }
        if let q = sequence, weights.sequence > 0 { out.append(SequenceSource(loaded: q, weight: weights.sequence)) }
        if weights.trending > 0, !live.isEmpty { out.append(LiveSource(lists: live, weight: weights.trending)) }
        if let p = popularity?.model ?? primary?.model, weights.popularity > 0 {
            out.append(PopularitySource(model: p, weight: weights.popularity))
        }
        return out
    }

    /// Up to `pool` candidates per source for `userID` with `history`, blended, best first;
    /// never an item in `context.excluding`, one bought within its repurchase window, or one
    /// outside `context.categories` (by the models' categories, or the live list's).
    /// With `limit`, only the best `limit` of the blend.
    public func candidates(
        userID: Int64, history: History, live: [LiveList] = [], pool: Int, context: Context = .init(), limit: Int? = nil
    ) -> [Candidate] {
        let query = CandidateQuery(
            userID: userID, history: history, context: context, pool: pool, bought: boughtRecently(history, nowMs: context.nowMs))
        var blend = CandidateBlend()
        for source in sources(history: history, live: live) { source.offer(query, into: &blend) }
        guard let trees = ranker?.model.ranker, ranker?.model.rankerFeatures == Ranking.featureNames else {
            return blend.ranked(limit: limit)
        }
        // The ranker's row of each candidate, as `RankerRun` built them in training.
        let touched = history.touched
        var perCategory: [Int64: Int] = [:]
        for id in touched { perCategory[categoryOf(id), default: 0] += 1 }
        let counts = popularity?.model ?? primary?.model
        return blend.ranked(limit: limit) { id, e in
            // An item only the live lists offered is nothing the ranker learned from: after the rest.
            guard e.offers.count > 0 else { return 0 }
            let share = Float(perCategory[e.category] ?? 0) / Float(max(1, touched.count))
            let popular = counts.flatMap { m in m.itemIndex[id].map { m.popularity[Int($0)] } } ?? 0
            return Ranking.score(trees, Ranking.row(e.offers, popularity: popular, history: touched.count, categoryShare: share))
        }
    }

    /// How many candidates each source offers for a list of `n`, and how many of the blend
    /// the catalogue's filters and the re-ranking consider.
    public static func poolSize(_ n: Int) -> Int { min(maxPool, max(50, 3 * n)) }
    /// The most candidates a source offers (a list is at most 500 items).
    public static let maxPool = 500
    public static func consideredSize(_ n: Int) -> Int { max(2 * n, n + 20) }

    /// The whole pipeline, the one the service runs: candidates from every source over a pool
    /// of the usual size, the catalogue entries of the best of them and of the items their
    /// reasons name (`catalogue`: what the feature service lists of those items; an item it
    /// does not list passes the catalogue's filters), then `rerank`, the reasons naming items
    /// by their titles.
    public func recommend(
        userID: Int64, history: History, n: Int, context: Context = .init(), live: [LiveList] = [], profile: UserProfile? = nil,
        catalogue: ([Int64]) async -> [Int64: ItemProfile]
    ) async -> [Candidate] {
        var considered = candidates(
            userID: userID, history: history, live: live, pool: Self.poolSize(n), context: context, limit: Self.consideredSize(n))
        // A campaign's chosen items are candidates too, at the middle score of the others,
        // before its boost.
        let middle = considered.isEmpty ? 1 : considered.map(\.score).sorted()[considered.count / 2]
        let present = Set(considered.map(\.itemID))
        for boost in context.campaignBoosts {
            for item in boost.items.sorted() where !present.contains(item) && !context.excluding.contains(item) {
                considered.append(
                    Candidate(itemID: item, score: middle, reason: "on offer (campaign \(boost.campaign))", source: "campaign"))
            }
        }
        // One read: the candidates' entries, and those of the items their reasons name.
        let named = ItemNames.items(in: considered).subtracting(considered.map(\.itemID))
        let items = await catalogue(considered.map(\.itemID) + named.sorted())
        let titles = items.mapValues(\.title)
        return rerank(considered, n: n, catalogue: items, profile: profile, context: context).map { ItemNames.resolve($0, titles: titles) }
    }

    /// The pipeline with a catalogue at hand.
    public func recommend(
        userID: Int64, history: History, n: Int, context: Context = .init(), live: [LiveList] = [], catalogue: [Int64: ItemProfile] = [:],
        profile: UserProfile? = nil
    ) async -> [Candidate] {
        await recommend(userID: userID, history: history, n: n, context: context, live: live, profile: profile) { _ in catalogue }
    }

    /// Best first; equal scores go to the lower item id.
    static func ranked(_ a: Candidate, _ b: Candidate) -> Bool { a.score != b.score ? a.score > b.score : a.itemID < b.itemID }

    /// An item's category in the first model that knows it (0 when none does).
    func categoryOf(_ itemID: Int64) -> Int64 {
        for m in models {
            if let i = m.itemIndex[itemID] { return m.itemCategories[Int(i)] }
        }
        return 0
    }

}
