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
///    the source that gave it the most ("because you viewed 1866283", "trending in 11").
/// 2. `rerank`: the filters that need the catalogue (price range, stock, categories), the
///    boosts (the user's category affinity and price band, business tags), then diversity
///    (at most M per category, maximal marginal relevance).
///
/// Ties go to the lower item id, so equal inputs give equal answers.
public struct Recommender: Sendable {
    /// The weight of each source in the blend, and the strength of each boost.
    public struct Weights: Sendable, Equatable {
        public var factors: Float = 1
        public var neighbours: Float = 1
        /// Content neighbours (TF-IDF over the catalogue) of the user's recent items; twice
        /// this for a user with one or two recent items, whom collaborative sources know least.
        public var content: Float = 0.3
        /// The sequence model's next items after the user's latest ones.
        public var sequence: Float = 1
        public var popularity: Float = 0.05
        /// Above popularity: what is active now outranks what was popular in training.
        public var trending: Float = 0.06
        /// An item's score is multiplied by 1 + this × the share of the user's activity in
        /// its category.
        public var categoryAffinity: Float = 0.1
        /// ... and by 1 + this × the share of the user's activity in its price band.
        public var priceBand: Float = 0.1

        public init() {}

        public static let names = [
            "factors", "neighbours", "content", "sequence", "popularity", "trending", "category_affinity", "price_band",
        ]

        /// `name=value` pairs separated by commas, e.g. `factors=1,neighbours=0.5`; names
        /// not given keep their default.
        public init(parsing text: String) throws {
            for pair in text.split(separator: ",") where !pair.trimmingCharacters(in: .whitespaces).isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, let v = Float(parts[1]), v.isFinite, v >= 0 else {
                    throw SettingError("weight '\(pair)' is not name=value with a value >= 0")
                }
                switch parts[0] {
                case "factors": factors = v
                case "neighbours": neighbours = v
                case "content": content = v
                case "sequence": sequence = v
                case "popularity": popularity = v
                case "trending": trending = v
                case "category_affinity": categoryAffinity = v
                case "price_band": priceBand = v
                default: throw SettingError("unknown weight '\(parts[0])'; known: \(Self.names.joined(separator: ", "))")
                }
            }
        }
    }

    /// A user's recent items, newest first, as the feature service holds them.
    public struct History: Sendable {
        public var views: [Int64] = []
        public var carts: [Int64] = []
        public var purchases: [Int64] = []
        /// When each purchase was made (ms; 0: unknown), same order as `purchases`.
        public var purchaseMs: [Int64] = []
        /// The latest items of any interaction, in the order they came (repeats kept).
        public var items: [Int64] = []

        public init(views: [Int64] = [], carts: [Int64] = [], purchases: [Int64] = [], purchaseMs: [Int64] = [], items: [Int64] = []) {
            self.views = views
            self.carts = carts
            self.purchases = purchases
            self.purchaseMs = purchaseMs
            self.items = items
        }

        public init(_ p: UserProfile) {
            self.init(
                views: p.recentViews, carts: p.recentCarts, purchases: p.recentPurchases, purchaseMs: p.recentPurchaseMs,
                items: p.recentItems)
        }

        /// Each kind of recent item with its weight (as in training: a purchase counts most)
        /// and the verb a reason uses for it.
        var actions: [(ids: [Int64], weight: Float, verb: String)] {
            [(views, 1, "viewed"), (carts, 3, "carted"), (purchases, 5, "bought")]
        }

        var touched: Set<Int64> { Set(views + carts + purchases) }

        /// The recent items, each with what the user did with it (a later verb wins).
        var withVerbs: [(id: Int64, verb: String)] {
            var verbs: [Int64: String] = [:]
            for (ids, _, verb) in actions {
                for id in ids { verbs[id] = verb }
            }
            return verbs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }

    /// How long after a purchase an item is not recommended again, per category.
    public struct RepurchaseWindows: Sendable, Equatable {
        /// nil: never again.
        public var standard: Int64? = nil
        public var perCategory: [Int64: Int64?] = [:]

        public init() {}

        /// `default=never,4145813=7d,12=12h`: `never`, or a number with `d`, `h` or `m`.
        public init(parsing text: String) throws {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { throw SettingError("repurchase window '\(pair)' is not CATEGORY=DURATION") }
                let ms: Int64?
                if parts[1] == "never" {
                    ms = nil
                } else if let unit = parts[1].last, let n = Int64(parts[1].dropLast()), n >= 0,
                    let scale = ["d": 86_400_000, "h": 3_600_000, "m": 60_000][unit]
                {
                    ms = n * Int64(scale)
                } else {
                    throw SettingError("repurchase window '\(parts[1])' is not 'never' or a number with d, h or m")
                }
                if parts[0] == "default" {
                    standard = ms
                } else if let c = Int64(parts[0]), c > 0 {
                    perCategory[c] = .some(ms)
                } else {
                    throw SettingError("repurchase window category '\(parts[0])' is not 'default' or a positive id")
                }
            }
        }

        /// Whether an item of `category` bought at `boughtMs` (0: unknown) is still within
        /// its window at `nowMs`.
        func blocks(category: Int64, boughtMs: Int64, nowMs: Int64) -> Bool {
            guard let window = perCategory[category] ?? standard else { return true }
            return boughtMs == 0 || nowMs - boughtMs < window
        }
    }

    /// One term of an item's score: a source's points or a boost's factor.
    public struct Contribution: Sendable, Equatable {
        public var name: String
        public var value: Float
        public var detail: String
        public var kind: ContributionKind = .source
    }

    public struct Candidate: Sendable, Equatable {
        public var itemID: Int64
        public var score: Float
        public var reason: String
        public var source: String
        /// The item's category (catalogue, else the models; 0: unknown).
        public var category: Int64 = 0
        public var contributions: [Contribution] = []
    }

    /// A ranked list from the feature service: `name` is the source (`trending`), the items
    /// with their category and count.
    public struct LiveList: Sendable {
        public var name: String
        public var category: Int64
        public var items: [(id: Int64, category: Int64, score: Float)]

        public init(name: String, category: Int64, items: [(id: Int64, category: Int64, score: Float)]) {
            self.name = name
            self.category = category
            self.items = items
        }
    }

    /// What a request asks beyond the user and n.
    public struct Context: Sendable {
        public var excluding: Set<Int64> = []
        /// Only these categories (empty: all).
        public var categories: Set<Int64> = []
        public var minPrice: Double = 0
        /// 0: no upper bound.
        public var maxPrice: Double = 0
        public var inStockOnly = false
        public var maxPerCategory = 0
        /// 0 (off) ... 1.
        public var diversity: Float = 0
        public var nowMs: Int64 = 0
        public init() {}
    }

    public var factors: PublishedModels.Loaded?
    public var neighbours: PublishedModels.Loaded?
    /// The content model (catalogue similarity), a source of its own.
    public var content: PublishedModels.Loaded?
    /// Items upserted since the content model was trained, with their nearest of its items.
    public var fresh: FreshItems.Table?
    /// The sequence model (SASRec), a source of its own.
    public var sequence: PublishedModels.Loaded?
    public var popularity: PublishedModels.Loaded?
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
        if let k = neighbours { out.append(NeighbourSource(loaded: k, weight: weights.neighbours) { "because you \($0) \($1)" }) }
        if let c = content {
            // Twice the weight for a user with one or two recent items, whom collaborative
            // sources know least.
            let few = history.touched.count <= 2
            out.append(NeighbourSource(loaded: c, weight: weights.content * (few ? 2 : 1), fresh: fresh) { "like \($1) you \($0)" })
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
    public func candidates(userID: Int64, history: History, live: [LiveList] = [], pool: Int, context: Context = .init()) -> [Candidate] {
        let query = CandidateQuery(
            userID: userID, history: history, context: context, pool: pool, bought: boughtRecently(history, nowMs: context.nowMs))
        var blend = CandidateBlend()
        for source in sources(history: history, live: live) { source.offer(query, into: &blend) }
        return blend.ranked
    }

    /// How many candidates each source offers for a list of `n`, and how many of the blend
    /// the catalogue's filters and the re-ranking consider.
    public static func poolSize(_ n: Int) -> Int { min(maxPool, max(50, 3 * n)) }
    /// The most candidates a source offers (a list is at most 500 items).
    public static let maxPool = 500
    public static func consideredSize(_ n: Int) -> Int { max(2 * n, n + 20) }

    /// The whole pipeline, the one the service runs: candidates from every source over a pool
    /// of the usual size, the catalogue entries of the best of them (`catalogue`: what the
    /// feature service lists of those items; an item it does not list passes the catalogue's
    /// filters), then `rerank`.
    public func recommend(
        userID: Int64, history: History, n: Int, context: Context = .init(), live: [LiveList] = [], profile: UserProfile? = nil,
        catalogue: ([Int64]) async -> [Int64: ItemProfile]
    ) async -> [Candidate] {
        let pool = candidates(userID: userID, history: history, live: live, pool: Self.poolSize(n), context: context)
        let considered = Array(pool.prefix(Self.consideredSize(n)))
        let items = await catalogue(considered.map(\.itemID))
        return rerank(considered, n: n, catalogue: items, profile: profile, context: context)
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

    /// The `n` best of `candidates` after the catalogue's filters, the boosts and diversity.
    /// `catalogue` holds what the feature service knows of the candidates (an item it does
    /// not list passes the price and stock filters: nothing says it fails them); `profile`
    /// gives the user's category and price-band shares.
    public func rerank(_ candidates: [Candidate], n: Int, catalogue: [Int64: ItemProfile], profile: UserProfile?, context: Context)
        -> [Candidate]
    {
        let affinity = profile.map(Self.categoryShares) ?? [:]
        let bands = profile.map(Self.priceBandShares) ?? []
        var kept: [Candidate] = []
        kept.reserveCapacity(candidates.count)
        for var c in candidates {
            if let item = catalogue[c.itemID], item.inCatalog {
                if item.categoryId != 0 { c.category = item.categoryId }
                if context.inStockOnly && item.stock <= 0 { continue }
                if item.price > 0 && (item.price < context.minPrice || (context.maxPrice > 0 && item.price > context.maxPrice)) { continue }
                if !context.categories.isEmpty && !context.categories.contains(c.category) { continue }
                if weights.priceBand > 0, item.price > 0, !bands.isEmpty {
                    let share = bands[PriceBands.band(item.price)]
                    if share > 0 {
                        boost(&c, "price_band", 1 + weights.priceBand * share, "\(percent(share)) of your activity is in this price band")
                    }
                }
                for tag in item.tags {
                    if let f = tagFactors[tag] { boost(&c, "tag:\(tag)", f, f >= 1 ? "promoted (\(tag))" : "buried (\(tag))") }
                }
            }
            if weights.categoryAffinity > 0, let share = affinity[c.category], share > 0 {
                boost(
                    &c, "category_affinity", 1 + weights.categoryAffinity * share,
                    "category \(c.category) is \(percent(share)) of your activity")
            }
            kept.append(c)
        }
        kept.sort(by: Self.ranked)
        return diversify(kept, n: n, context: context)
    }

    func boost(_ c: inout Candidate, _ name: String, _ factor: Float, _ detail: String) {
        c.score *= factor
        c.contributions.append(Contribution(name: name, value: factor, detail: detail, kind: .boost))
    }

    func percent(_ share: Float) -> String { "\(Int((share * 100).rounded()))%" }

    /// The user's category affinities as shares of their total.
    static func categoryShares(_ p: UserProfile) -> [Int64: Float] {
        let total = p.categories.reduce(0) { $0 + max(0, $1.score) }
        guard total > 0 else { return [:] }
        return Dictionary(p.categories.map { ($0.id, Float(max(0, $0.score) / total)) }, uniquingKeysWith: max)
    }

    static func priceBandShares(_ p: UserProfile) -> [Float] {
        p.priceBands.count == PriceBands.count ? p.priceBands.map(Float.init) : []
    }

    /// At most `maxPerCategory` per category, then maximal marginal relevance when
    /// `diversity` > 0: each next item maximises (1 − λ)·score/best − λ·(its largest
    /// similarity to an item already chosen), similarity being the cosine of the factor
    /// model's item vectors, else 1 for the same category and 0 otherwise.
    func diversify(_ ranked: [Candidate], n: Int, context: Context) -> [Candidate] {
        var pool: [Candidate] = []
        var perCategory: [Int64: Int] = [:]
        let cap = context.diversity > 0 ? max(n * 3, n + 20) : n
        for c in ranked where pool.count < cap {
            if context.maxPerCategory > 0 && c.category != 0 {
                guard perCategory[c.category, default: 0] < context.maxPerCategory else { continue }
                perCategory[c.category, default: 0] += 1
            }
            pool.append(c)
        }
        let lambda = min(1, max(0, context.diversity))
        guard lambda > 0, pool.count > 1 else { return Array(pool.prefix(n)) }
        if context.maxPerCategory > 0 {
            // The cap above counted the whole pool; MMR picks from it under the same cap.
            perCategory = [:]
        }
        let vectors = pool.map { c in factors.flatMap { f in f.model.itemIndex[c.itemID].map { f.model.items!.row(Int($0)) } } }
        let norms = vectors.map { v in v.map { Vec.dot($0, $0).squareRoot() } ?? 0 }
        func similarity(_ a: Int, _ b: Int) -> Float {
            if let va = vectors[a], let vb = vectors[b], norms[a] > 0, norms[b] > 0 {
                return va.withUnsafeBufferPointer { pa in
                    vb.withUnsafeBufferPointer { pb in Vec.dot(pa.baseAddress!, pb.baseAddress!, va.count) }
                } / (norms[a] * norms[b])
            }
            return pool[a].category != 0 && pool[a].category == pool[b].category ? 1 : 0
        }
        let best = max(pool[0].score, .leastNonzeroMagnitude)
        var chosen: [Int] = []
        var closest = [Float](repeating: -.infinity, count: pool.count)
        var left = Array(pool.indices)
        while chosen.count < n, !left.isEmpty {
            var pick = 0
            var pickValue = -Float.infinity
            for (slot, i) in left.enumerated() {
                let c = pool[i]
                if context.maxPerCategory > 0 && c.category != 0 && perCategory[c.category, default: 0] >= context.maxPerCategory {
                    continue
                }
                let penalty = chosen.isEmpty ? 0 : closest[i]
                let value = (1 - lambda) * c.score / best - lambda * penalty
                if value > pickValue { (pick, pickValue) = (slot, value) }
            }
            guard pickValue > -.infinity else { break }
            let i = left.remove(at: pick)
            if context.maxPerCategory > 0 && pool[i].category != 0 { perCategory[pool[i].category, default: 0] += 1 }
            chosen.append(i)
            for j in left { closest[j] = max(closest[j], similarity(i, j)) }
        }
        return chosen.enumerated().map { rank, i in
            var c = pool[i]
            if rank > 0 && closest[i] > 0 {
                c.contributions.append(
                    Contribution(name: "diversity", value: closest[i], detail: "similarity to a higher item", kind: .diversity))
            }
            return c
        }
    }

    /// An item's category in the first model that knows it (0 when none does).
    func categoryOf(_ itemID: Int64) -> Int64 {
        for m in models {
            if let i = m.itemIndex[itemID] { return m.itemCategories[Int(i)] }
        }
        return 0
    }

    /// The `n` items most like `itemID`: its collaborative neighbours (item-kNN or EASE, else
    /// the factor model's nearest items), topped up from the content model's neighbours when
    /// those are fewer than `n` (a new or rarely met item), or the content ones alone.
    public func similar(to itemID: Int64, n: Int) -> (items: [Candidate], model: PublishedModels.Loaded?) {
        // An item upserted since the content model was trained: its nearest described items.
        if let c = content, let entry = fresh?.items[itemID] {
            let m = c.model
            let row = entry.neighbours.map { e in
                Candidate(
                    itemID: m.itemIDs[Int(e.index)], score: e.similarity, reason: "described like \(itemID)", source: "content",
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
                        itemID: c.model.itemIDs[i], score: w.values[e], reason: "described like \(itemID)", source: "content",
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
                        itemID: m.itemIDs[i], score: w.values[e], reason: "bought or viewed together with \(itemID)",
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
                        itemID: f.model.itemIDs[i], score: e.score, reason: "liked by the same shoppers as \(itemID)",
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
