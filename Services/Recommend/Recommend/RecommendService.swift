public import ArgumentParser
import Foundation
import Logging
public import RPC
import Recommenders
public import ServiceKit
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
    public static let name = "recommend"
    public static let defaultPort = 7105
    public static let defaultMetricsPort = 9105

    let context: ServiceContext
    let models: PublishedModels
    let client: RPCClient
    let feature: RPCClient
    let ingest: RPCClient
    let impressions: ImpressionLog
    let fatigue: ImpressionCounts

    public init(context: ServiceContext, settings: RecommendSettings) async throws {
        self.context = context
        var config = RPCClient.Config.defaults(host: settings.modelHost, port: settings.modelPort)
        config.defaultTimeout = .seconds(30)
        client = RPCClient(config: config)
        var featureConfig = RPCClient.Config.defaults(host: settings.featureHost, port: settings.featurePort)
        featureConfig.defaultTimeout = .milliseconds(200)
        feature = RPCClient(config: featureConfig)
        ingest = RPCClient(host: settings.ingestHost, port: settings.ingestPort)
        fatigue = ImpressionCounts(limit: settings.impressionFatigue)
        let metrics = context.metrics
        impressions = ImpressionLog(ingest: ingest, logger: context.logger) { n in
            metrics.counter("persona_recommend_impressions_dropped_total", labels: [], help: "Impressions dropped while ingest was away too long").increment(by: Int64(n))
        }
        models = PublishedModels(client: client, logger: context.logger) { loaded in
            metrics.gauge("persona_recommend_model_version", labels: [("model", loaded.info.name)], help: "Version of each model held").set(Int64(loaded.info.version))
        }
    }

    public func register(in router: inout Router) {
        router.register(RecommendAPI.recommend) { try await recommend($0) }
        router.register(RecommendAPI.similarItems) { request in
            guard request.itemId > 0 else { throw RPCError(.invalidArgument, "item id must be positive") }
            let (items, model) = recommender.similar(to: request.itemId, n: Self.count(request.n))
            var response = SimilarItemsResponse()
            response.items = items.map(Self.scored)
            if model == nil { context.logger.debug("no neighbours for item \(request.itemId)") }
            return response
        }
        router.register(RecommendAPI.popular) { try await popular($0) }
    }

    /// The blend over what is published now.
    var recommender: Recommender {
        Recommender(factors: models["als"] ?? models["bpr"], neighbours: models["item_knn"] ?? models["ease"], popularity: models["popularity"])
    }

    /// The most items one call returns.
    static let maxItems = 500

    /// SimilarItems and Popular: 0 means 10.
    static func count(_ n: UInt32) -> Int { n == 0 ? 10 : min(Int(n), maxItems) }

    static func scored(_ c: Recommender.Candidate) -> ScoredItem {
        var s = ScoredItem()
        s.itemId = c.itemID
        s.score = c.score
        s.reason = c.reason
        s.source = c.source
        return s
    }

    func recommend(_ request: RecommendRequest) async throws -> RecommendResponse {
        guard request.userId > 0 else {
            badRequest("invalid_user")
            throw RPCError(.invalidArgument, "user id must be positive, got \(request.userId)")
        }
        guard (1...Self.maxItems).contains(Int(request.n)) else {
            badRequest("invalid_n")
            throw RPCError(.invalidArgument, "n must be 1...\(Self.maxItems), got \(request.n)")
        }
        let blend = recommender
        var history = Recommender.History()
        var fallback = false
        do {
            var lookup = GetProfileRequest()
            lookup.userId = request.userId
            let answer = try await feature.call(FeatureAPI.getProfile, lookup)
            if let p = answer.profile, answer.found {
                history = Recommender.History(views: p.recentViews, carts: p.recentCarts, purchases: p.recentPurchases)
            }
        } catch let error as RPCError {
            // Answer without the live profile: the stored factors and popularity still can.
            fallback = true
            context.metrics.counter("persona_recommend_profile_failures_total", labels: [("code", error.code.name ?? "")], help: "Recommend calls answered without the live profile").increment()
        }
        let tired = fatigue.tired(user: request.userId, touched: Set(history.views + history.carts + history.purchases))
        let items = blend.recommend(
            userID: request.userId, history: history, n: Self.count(request.n), excluding: Set(request.excludeItemIds).union(tired),
            category: request.categoryId, maxPerCategory: Int(request.maxPerCategory))
        fatigue.shown(user: request.userId, items: items.map(\.itemID))
        var response = RecommendResponse()
        response.items = items.map(Self.scored)
        response.requestId = request.requestId.isEmpty ? UUID().uuidString.lowercased() : request.requestId
        if let primary = blend.primary {
            response.modelName = primary.info.name
            response.modelVersion = primary.info.version
        }
        response.fallback = fallback || blend.primary == nil || items.allSatisfy { $0.source == "popularity" }
        impressions.record(
            userID: request.userId, requestID: response.requestId, items: items.map(\.itemID), surface: request.surface, model: response.modelName,
            version: response.modelVersion, atMs: Int64(Date().timeIntervalSince1970 * 1000))
        context.metrics.counter("persona_recommend_answers_total", labels: [("fallback", response.fallback ? "true" : "false")], help: "Recommend answers, by whether a fallback answered").increment()
        return response
    }

    /// The category's (or the shop's) most viewed items over a window, live from the
    /// feature service; the published popularity when it cannot answer or no window is asked.
    func popular(_ request: PopularRequest) async throws -> PopularResponse {
        let n = Self.count(request.n)
        var response = PopularResponse()
        if !request.window.isEmpty && request.window != "model" {
            do {
                // Most viewed; a shop that sends no views (orders only) ranks by purchases.
                for by in ["views", "purchases"] {
                    var top = TopItemsRequest()
                    top.categoryId = request.categoryId
                    top.window = request.window
                    top.by = by
                    top.limit = UInt32(n)
                    let answer = try await feature.call(FeatureAPI.topItems, top)
                    guard !answer.items.isEmpty else { continue }
                    response.items = answer.items.map { item in
                        var s = ScoredItem()
                        s.itemId = item.itemId
                        let counts = by == "views" ? item.views : item.purchases
                        s.score = Float(counts.map { Self.count($0, request.window) } ?? 0)
                        s.reason = "most \(by == "views" ? "viewed" : "bought")\(request.categoryId == 0 ? "" : " in \(request.categoryId)") over \(request.window)"
                        s.source = "feature"
                        return s
                    }
                    return response
                }
            } catch let error as RPCError where error.code == .invalidArgument {
                throw error
            } catch {
                context.logger.info("popular: feature did not answer (\(error)); using the published popularity")
            }
        }
        guard let model = (models["popularity"] ?? recommender.primary)?.model else { return response }
        response.items = model.popular(category: request.categoryId, n: n).map { e in
            Self.scored(.init(
                itemID: model.itemIDs[Int(e.index)], score: e.score, reason: request.categoryId == 0 ? "popular" : "popular in \(request.categoryId)",
                source: "popularity"))
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

    func badRequest(_ reason: String) {
        context.metrics.counter("persona_recommend_bad_requests_total", labels: [("reason", reason)], help: "Calls refused as invalid, by reason").increment()
    }

    public func runBackground() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await models.follow() }
            group.addTask { try await impressions.run() }
            try await group.next()
            group.cancelAll()
        }
    }

    public func close() async throws {
        // What was served is in the log before the service stops, when ingest is there.
        await impressions.flush()
        await client.shutdown()
        await feature.shutdown()
        await ingest.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        [("models", models.versions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))]
    }
}

/// Settings of the recommend service beyond the common flags.
public struct RecommendOptions: ParsableArguments, Sendable {
    @Option(help: "Model service address host:port (env PERSONA_MODEL_ADDR, default 127.0.0.1:7103).")
    public var model: String?

    @Option(help: "Feature service address host:port (env PERSONA_FEATURE_ADDR, default 127.0.0.1:7102).")
    public var feature: String?

    @Option(help: "Ingest address host:port, where impressions go (env PERSONA_INGEST_ADDR, default 127.0.0.1:7101).")
    public var ingest: String?

    @Option(help: "Leave out an item shown to a user this many times without a view, cart or purchase; 0 turns it off (env PERSONA_IMPRESSION_FATIGUE, default 3).")
    public var impressionFatigue: Int?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> RecommendSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = RecommendSettings()
        if let (host, port) = try peerAddress(flag: model, variable: "PERSONA_MODEL_ADDR", environment: env, service: "model") {
            s.modelHost = host
            s.modelPort = port
        }
        if let (host, port) = try peerAddress(flag: feature, variable: "PERSONA_FEATURE_ADDR", environment: env, service: "feature") {
            s.featureHost = host
            s.featurePort = port
        }
        if let (host, port) = try peerAddress(flag: ingest, variable: "PERSONA_INGEST_ADDR", environment: env, service: "ingest") {
            s.ingestHost = host
            s.ingestPort = port
        }
        if let text = impressionFatigue.map(String.init) ?? env["PERSONA_IMPRESSION_FATIGUE"] {
            guard let n = Int(text), (0...1000).contains(n) else { throw ValidationError("impression fatigue '\(text)' is not 0...1000") }
            s.impressionFatigue = n
        }
        return s
    }
}

public struct RecommendSettings: Sendable {
    public var modelHost = "127.0.0.1"
    public var modelPort = 7103
    public var featureHost = "127.0.0.1"
    public var featurePort = 7102
    public var ingestHost = "127.0.0.1"
    public var ingestPort = 7101
    /// Impressions without a touch after which an item is left out for that user (0: off).
    public var impressionFatigue = 3
    public init() {}
}
