import ArgumentParser
import Foundation
import Logging
import Math
public import RPC
import Recommenders
public import ServiceKit
import Uplift
import Wire

/// The recommend service: serves recommendations, similar and popular items.
///
/// It follows the model service's published recommenders (WatchModels, then GetModel in
/// chunks) and holds each one's current version in memory, swapped in whole without a
/// restart; Health names the versions it holds. A Recommend call reads the user's recent
/// items live from the feature service (within the call's deadline; without them the
/// user's own factor vector and popularity still answer) and blends the published `als`
/// (or `bpr`), `item_knn` (or `ease`) and `popularity` models (`Recommender`).
public struct RecommendService: PersonaService {
    public static let peer = Peer.recommend

    let context: ServiceContext
    let metrics: RecommendMetrics
    let settings: RecommendSettings
    let models: PublishedModels
    let live: LiveItems
    let modelClient: RPCClient
    let feature: FeatureReplicas
    let ingest: RPCClient
    let impressions: ImpressionLog
    let fatigue: ImpressionCounts
    /// Reads the log's erasure and item-upsert events (nothing else).
    let log: LogConsumer
    /// Items upserted since the content model was trained, vectorised on arrival.
    let fresh = FreshItems()
    let erased = ErasureProgress()
    /// The campaigns and the users they treat, for their boosts (docs/CAMPAIGNS.md).
    let campaigns = CampaignBook()

    public init(context: ServiceContext, settings: RecommendSettings) async throws {
        self.context = context
        self.settings = settings
        modelClient = RPCClient(host: settings.modelHost, port: settings.modelPort, defaultTimeout: .seconds(30))
        feature = FeatureReplicas(settings.featureReplicas, defaultTimeout: settings.featureTimeout)
        live = LiveItems(feature: feature, ttl: settings.liveTTL)
        ingest = RPCClient(host: settings.ingestHost, port: settings.ingestPort)
        fatigue = ImpressionCounts(limit: settings.impressionFatigue)
        log = LogConsumer(
            host: settings.ingestHost, port: settings.ingestPort, readEvents: 1000, readWait: .seconds(5), logger: context.logger)
        let metrics = RecommendMetrics(context.metrics)
        self.metrics = metrics
        impressions = ImpressionLog(ingest: ingest, logger: context.logger) { n in metrics.impressionsDropped(n) }
        models = PublishedModels(
            client: modelClient, logger: context.logger, accept: { RecommenderModel.Kind($0) != nil }, indexAbove: settings.indexAbove,
            indexParameters: settings.index
        ) { loaded in
            metrics.modelVersion(loaded.info)
        }
    }

    public func register(in router: inout Router) {
        router.register(RecommendAPI.recommend) { try await recommend($0) }
        router.register(RecommendAPI.similarItems) { request in
            guard request.itemId > 0 else { throw RPCError(.invalidArgument, "item id must be positive") }
            // Reasons name the item by its title when the feature service lists it in time.
            let title = (try? await live.items([request.itemId], timeout: featureBudget()))?[request.itemId]?.title ?? ""
            let (items, model) = recommender.similar(to: request.itemId, n: Self.count(request.n), title: title)
            var response = SimilarItemsResponse()
            response.items = items.map { Self.scored($0) }
            if model == nil { context.logger.debug("no neighbours for item \(request.itemId)") }
            return response
        }
        router.register(RecommendAPI.popular) { try await popular($0) }
    }

    /// The blend over what is published now.
    var recommender: Recommender {
        var r = Recommender(
            factors: models["als"] ?? models["bpr"], neighbours: models["item_knn"] ?? models["ease"], popularity: models["popularity"],
            content: models["content"],
            sequence: models["sequence"])
        r.ranker = models["ranker"]
        if let c = r.content {
            let table = fresh.current
            if table.version == c.info.version && !table.items.isEmpty { r.fresh = table }
        }
        r.weights = settings.weights
        r.repurchase = settings.repurchase
        r.tagFactors = settings.tagFactors
        return r
    }

    /// The most items one call returns.
    static let maxItems = 500

    /// SimilarItems and Popular: 0 means 10.
    static func count(_ n: UInt32) -> Int { n == 0 ? 10 : min(Int(n), maxItems) }

    static func scored(_ c: Recommender.Candidate, explain: Bool = false) -> ScoredItem {
        var s = ScoredItem()
        s.itemId = c.itemID
        s.score = c.score
        s.reason = c.reason
        s.source = c.source
        s.categoryId = c.category
        if explain {
            s.contributions = c.contributions.map { part in
                var p = Contribution()
                p.name = part.name
                p.value = part.value
                p.detail = part.detail
                p.kind = part.kind
                return p
            }
        }
        return s
    }

    /// The categories a request restricts to: `category_id` and `category_ids`.
    static func categories(_ r: RecommendRequest) -> Set<Int64> {
        var out = Set(r.categoryIds)
        if r.categoryId != 0 { out.insert(r.categoryId) }
        return out
    }

    /// Refuses a request that cannot be answered as asked, saying why (counted by reason).
    func validate(_ r: RecommendRequest) throws {
        func refuse(_ reason: String, _ message: String) throws -> Never {
            metrics.badRequest(reason)
            throw RPCError(.invalidArgument, message)
        }
        if r.userId <= 0 { try refuse("invalid_user", "user id must be positive, got \(r.userId)") }
        if !(1...Self.maxItems).contains(Int(r.n)) { try refuse("invalid_n", "n must be 1...\(Self.maxItems), got \(r.n)") }
        if let c = Self.categories(r).first(where: { $0 <= 0 }) {
            try refuse("invalid_category", "category ids must be positive, got \(c)")
        }
        if !r.minPrice.isFinite || !r.maxPrice.isFinite || r.minPrice < 0 || r.maxPrice < 0 {
            try refuse("invalid_price", "prices must be finite and >= 0, got \(r.minPrice)...\(r.maxPrice)")
        }
        if r.maxPrice > 0 && r.minPrice > r.maxPrice {
            try refuse("invalid_price", "price range is upside down: min \(r.minPrice) > max \(r.maxPrice)")
        }
        if !(0...1).contains(r.diversity) { try refuse("invalid_diversity", "diversity must be 0...1, got \(r.diversity)") }
        if r.excludeItemIds.count > 10_000 {
            try refuse("too_many_exclusions", "at most 10000 excluded items, got \(r.excludeItemIds.count)")
        }
    }

    /// How long one feature read may take: the configured timeout, and never more than half
    /// of what the caller still waits, so the answer comes in time even when feature does not.
    func featureBudget() -> Duration { RPCContext.budget(settings.featureTimeout) }

    func recommend(_ request: RecommendRequest) async throws -> RecommendResponse {
        try validate(request)
        let blend = recommender
        let categories = Self.categories(request)
        var ctx = Recommender.Context()
        ctx.categories = categories
        ctx.minPrice = request.minPrice
        ctx.maxPrice = request.maxPrice
        ctx.inStockOnly = request.inStockOnly
        ctx.maxPerCategory = Int(request.maxPerCategory)
        ctx.diversity = request.diversity
        ctx.nowMs = context.clock.nowMs
        ctx.campaignBoosts = campaigns.boosts(user: request.userId, surface: request.surface, nowMs: ctx.nowMs).map { name, offer in
            Recommender.CampaignBoost(
                campaign: name, items: Set(offer.boostItems), categories: Set(offer.boostCategories), factor: Float(offer.boostFactor))
        }

        // The live profile, and the shop's (or the asked categories') trending lists, at once.
        var fallbackReasons: [String] = []
        let budget = featureBudget()
        let listCategories = categories.isEmpty ? [Int64(0)] : categories.sorted()
        async let lookup: GetProfileResponse = {
            var r = GetProfileRequest()
            r.userId = request.userId
            r.withMetItems = true
            // The recent items, affinities and price bands alone: no whole profile built per call.
            r.recommendOnly = true
            return try await feature.call(FeatureAPI.getProfile, r, user: r.userId, timeout: budget)
        }()
        var lists = await trending(listCategories, budget: budget)
        var profile: UserProfile? = nil
        do {
            let answer = try await lookup
            if answer.found { profile = answer.profile }
        } catch {
            // Answer without the live profile: the stored factors and popularity still can.
            metrics.featureFailed("profile", error)
            fallbackReasons.append("feature unavailable: no live profile")
        }
        for c in categories where !blend.knows(category: c) {
            // Unknown to every model, and the feature service (when it answered) has no item in it.
            if let list = lists.first(where: { $0.category == c }), list.items.isEmpty {
                metrics.badRequest("unknown_category")
                throw RPCError(.invalidArgument, "category \(c) is unknown: no model or catalogue item has it")
            }
        }
        if categories.isEmpty, let p = profile {
            // Trending in the user's two strongest categories: the cold-start mix's first part.
            let interests = p.categories.sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }.prefix(2).map(\.id).filter {
                $0 > 0
            }
            if !interests.isEmpty { lists += await trending(interests, budget: featureBudget()) }
        }
        let history = profile.map(Recommender.History.init) ?? .init()
        ctx.excluding = Set(request.excludeItemIds).union(fatigue.tired(user: request.userId, touched: history.touched))
        let n = Int(request.n)
        let items = await blend.recommend(
            userID: request.userId, history: history, n: n, context: ctx, live: lists.filter { !$0.items.isEmpty }, profile: profile
        ) { ids in
            do {
                return try await live.items(ids, timeout: featureBudget())
            } catch {
                metrics.featureFailed("items", error)
                fallbackReasons.append("feature unavailable: catalogue filters not applied")
                return [:]
            }
        }
        fatigue.shown(user: request.userId, items: items.map(\.itemID))

        var response = RecommendResponse()
        response.items = items.map { Self.scored($0, explain: request.explain) }
        response.requestId = request.requestId.isEmpty ? UUID().uuidString.lowercased() : request.requestId
        if let primary = blend.primary {
            response.modelName = primary.info.name
            response.modelVersion = primary.info.version
        } else {
            fallbackReasons.append("no model published: live popularity only")
        }
        if !items.isEmpty && items.allSatisfy({ ["popularity", "trending"].contains($0.source) }) {
            fallbackReasons.append(profile == nil ? "unknown user: popular items" : "no personal candidates: popular items")
        }
        response.fallback = !fallbackReasons.isEmpty
        response.fallbackReason = fallbackReasons.joined(separator: "; ")
        impressions.record(
            userID: request.userId, requestID: response.requestId, items: items.map(\.itemID), surface: request.surface,
            model: response.modelName,
            version: response.modelVersion, atMs: ctx.nowMs)
        metrics.answered(fallback: response.fallback)
        return response
    }

    /// The trending list (most viewed over the last 24 hours, by purchases in a shop without
    /// views) of each category, read at once; a category whose read failed is left out.
    func trending(_ categories: [Int64], budget: Duration) async -> [Recommender.LiveList] {
        await withTaskGroup(of: Recommender.LiveList?.self) { group in
            for c in categories {
                group.addTask {
                    do {
                        let (items, _) = try await live.top(category: c, window: "24h", limit: 50, timeout: budget)
                        return Recommender.LiveList(
                            name: "trending", category: c,
                            items: items.map { ($0.itemId, $0.categoryId, Float(max($0.views?.last24h ?? 0, $0.purchases?.last24h ?? 0))) })
                    } catch {
                        metrics.featureFailed("trending", error)
                        return nil
                    }
                }
            }
            var out: [Recommender.LiveList] = []
            for await list in group { if let list { out.append(list) } }
            return out.sorted { $0.category < $1.category }
        }
    }

    /// The category's (or the shop's) most viewed items over a window, live from the
    /// feature service; the published popularity when it cannot answer or no window is asked.
    func popular(_ request: PopularRequest) async throws -> PopularResponse {
        let n = Self.count(request.n)
        var response = PopularResponse()
        guard request.categoryId >= 0 else {
            metrics.badRequest("invalid_category")
            throw RPCError(.invalidArgument, "category id must be positive, got \(request.categoryId)")
        }
        if !request.window.isEmpty && request.window != "model" {
            do {
                let (items, by) = try await live.top(
                    category: request.categoryId, window: request.window, limit: n, timeout: featureBudget())
                if !items.isEmpty {
                    response.items = items.map { item in
                        var s = ScoredItem()
                        s.itemId = item.itemId
                        s.categoryId = item.categoryId
                        let counts = by == "views" ? item.views : item.purchases
                        s.score = Float(counts.map { Self.count($0, request.window) } ?? 0)
                        s.reason =
                            """
                            most \
                            \(by == "views" ? "viewed" : "bought")\(request.categoryId == 0 ? "" : " in \(request.categoryId)") \
                            over \(request.window)
                            """
                        s.source = "feature"
                        return s
                    }
                    return response
                }
            } catch let error as RPCError where error.code == .invalidArgument {
                throw error
            } catch {
                metrics.featureFailed("popular", error)
                context.logger.info("popular: feature did not answer (\(error)); using the published popularity")
            }
        }
        guard let model = (models["popularity"] ?? recommender.primary)?.model else { return response }
        response.items = model.popular(category: request.categoryId, n: n).map { e in
            let i = Int(e.index)
            return Self.scored(
                .init(
                    itemID: model.itemIDs[i], score: e.score,
                    reason: request.categoryId == 0 ? "popular" : "popular in \(request.categoryId)",
                    source: "popularity", category: model.itemCategories[i]))
        }
        return response
    }

    /// A window's count from an item's counts (`1h`, `24h`, `7d`, `30d`, `lifetime`).
    static func count(_ c: WindowCounts, _ window: String) -> UInt64 {
        switch window {
        case "1h": UInt64(c.last1h)
        case "24h": UInt64(c.last24h)
        case "7d": UInt64(c.last7d)
        case "30d": UInt64(c.last30d)
        default: UInt64(c.lifetime)
        }
    }

    public func runBackground() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await models.follow() }
            group.addTask {
                try await impressions.run { depth in metrics.impressionsQueued(depth) }
            }
            group.addTask { try await fresh.follow(log) { models["content"] } }
            group.addTask { try await log.follow(campaigns, orders: false) { _ in } }
            group.addTask { try await live.run() }
            group.addTask {
                // Nothing recommend holds outlives a restart, so it follows erasures from
                // where the log ends when it starts.
                try await log.followErasures(from: log.endOffsets(), progress: erased) { users, _, _ in
                    let gone = Set(users)
                    models.forget(gone)
                    fatigue.forget(gone)
                    impressions.forget(gone)
                    metrics.erased(gone.count)
                    context.logger.info("forgot \(gone.count) erased user(s)")
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    public func close() async throws {
        // What was served is in the log before the service stops, when ingest is there.
        await impressions.flush()
        await modelClient.shutdown()
        await feature.shutdown()
        await ingest.shutdown()
        await log.ingest.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        [("models", models.versions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")), erased.check]
    }
}
