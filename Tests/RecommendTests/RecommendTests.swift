import DataStructures
import Feature
import Foundation
import Ingest
import Math
import Model
import RPC
import Recommenders
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Recommend

/// 2024-03-04 00:00:00 UTC.
let baseMs: Int64 = 1_709_510_400_000

/// Three tastes: users of group g view items 100g+1 ... 100g+8 (category 10+g), in time order.
func shop(users: Int = 60) -> [Event] {
    var rng = SplitMix(seed: 4)
    var events: [Event] = []
    for u in 1...users {
        let g = Int64(u % 3)
        var seen = Set<Int64>()
        for n in 0..<6 {
            let item = 100 * g + 1 + Int64(rng.below(8))
            guard seen.insert(item).inserted else { continue }
            events.append(view(Int64(u), item, at: baseMs + Int64(n) * 60_000 + Int64(u), category: 10 + g))
        }
    }
    return events.sorted { $0.timestampMs < $1.timestampMs }
}

func trained(_ kind: RecommenderModel.Kind, _ events: [Event], _ params: [(String, String)] = []) throws -> PublishedModels.Loaded {
    let store = InteractionTable()
    store.fold(events)
    let p = try TrainingParameters(kind: kind, params)
    let model = try Trainer.train(p, store.interactions(weights: p.weights).data)
    var info = ModelInfo()
    info.name = kind.rawValue
    info.version = 1
    return PublishedModels.Loaded(info: info, model: model)
}

@Suite("Recommend blend")
struct BlendTests {
    @Test("a user gets items of their taste they have not met, each with a reason naming a real item; bought and excluded items never")
    func blend() async throws {
        let events = shop()
        let blend = Recommender(
            factors: try trained(.als, events, [("factors", "8"), ("iterations", "6"), ("regularization", "1")]),
            neighbours: try trained(.itemKNN, events),
            popularity: try trained(.popularity, events))
        let history = Recommender.History(views: [101, 102], carts: [103], purchases: [104])
        // Taste 1 has three items this user has not met and not excluded: 106, 107, 108.
        var excluding = Recommender.Context()
        excluding.excluding = [105]
        let items = await blend.recommend(userID: 999_999, history: history, n: 3, context: excluding)
        #expect(items.count == 3)
        for item in items {
            #expect(![101, 102, 103, 104, 105].contains(item.itemID), "\(item)")
            #expect((101...108).contains(item.itemID), "item \(item.itemID) is not of the user's taste")
        }
        #expect(
            items.contains {
                $0.reason.hasPrefix("because you") && ["101", "102", "103", "104"].contains(String($0.reason.split(separator: " ").last!))
            })
        #expect(await items == blend.recommend(userID: 999_999, history: history, n: 3, context: excluding))
        // A category filter keeps only that category's items (taste 2 is category 12).
        var only12 = Recommender.Context()
        only12.categories = [12]
        let other = await blend.recommend(userID: 999_999, history: history, n: 5, context: only12)
        #expect(other.count == 5 && other.allSatisfy { (201...208).contains($0.itemID) })
        let longer = await blend.recommend(userID: 999_999, history: history, n: 8)
        #expect(!longer.contains { [101, 102, 103, 104].contains($0.itemID) })
        // Diversity: at most two of one category, the next best instead.
        var capped = Recommender.Context()
        capped.maxPerCategory = 2
        let diverse = await blend.recommend(userID: 999_999, history: history, n: 6, context: capped)
        let perCategory = Dictionary(grouping: diverse) { $0.itemID / 100 }.mapValues(\.count)
        #expect(diverse.count == 6 && perCategory.values.allSatisfy { $0 <= 2 }, "\(perCategory)")
        // A user with no history and unknown to the factors gets the popular items.
        let cold = await blend.recommend(userID: 424_242, history: .init(), n: 3)
        #expect(cold.count == 3 && cold.allSatisfy { $0.source == "popularity" && $0.reason == "popular" })
    }

    @Test("a published ranker orders the candidates by its trees over the sources' offers; without one the fixed blend does")
    func rankerOrders() throws {
        let events = shop()
        var blend = Recommender(
            factors: try trained(.als, events, [("factors", "8"), ("iterations", "6"), ("regularization", "1")]),
            neighbours: try trained(.itemKNN, events), popularity: try trained(.popularity, events))
        let history = Recommender.History(views: [101, 102])
        let fixed = blend.candidates(userID: 999_999, history: history, pool: 50)
        // One tree: the popularity source's scaled score above 0.5 is worth +1, the rest −1.
        let feature = Int32(Ranking.featureNames.firstIndex(of: "popularity_score")!)
        let tree = BoostedTrees.Tree(nodes: [
            .init(feature: feature, threshold: 0.5, missingLeft: true, left: 1, right: 2, value: 0, cover: 1, gain: 1),
            .init(feature: -1, threshold: 0, missingLeft: false, left: -1, right: -1, value: -1, cover: 1, gain: 0),
            .init(feature: -1, threshold: 0, missingLeft: false, left: -1, right: -1, value: 1, cover: 1, gain: 0),
        ])
        var model = RecommenderModel(kind: .ranker, itemIDs: [], itemCategories: [], popularity: [])
        model.ranker = BoostedTrees(features: Ranking.featureNames.count, base: 0, trees: [tree])
        model.rankerFeatures = Ranking.featureNames
        model.index()
        blend.ranker = PublishedModels.Loaded(info: ModelInfo(), model: model)
        let ranked = blend.candidates(userID: 999_999, history: history, pool: 50)
        #expect(Set(ranked.map(\.itemID)) == Set(fixed.map(\.itemID)))
        func popular(_ c: Recommender.Candidate) -> Bool {
            (c.contributions.first { $0.name == "popularity" }?.value ?? 0) > 0.5 * blend.weights.popularity
        }
        let split = ranked.firstIndex { !popular($0) } ?? ranked.count
        #expect(split > 0 && ranked[split...].allSatisfy { !popular($0) }, "\(ranked.map { ($0.itemID, $0.score) })")
        #expect(abs(ranked[0].score - sigmoid(1)) < 1e-6 && ranked.last!.score < 0.5)
        #expect(!popular(fixed[0]) || fixed.prefix(split) != ranked.prefix(split))
        // A ranker over other features (an older schema) is not used: the fixed blend answers.
        model.rankerFeatures = Ranking.featureNames.reversed()
        blend.ranker = PublishedModels.Loaded(info: ModelInfo(), model: model)
        #expect(blend.candidates(userID: 999_999, history: history, pool: 50) == fixed)
    }

    @Test("similar items come from item-kNN, else from the factor vectors")
    func similar() throws {
        let events = shop()
        let knn = Recommender(factors: nil, neighbours: try trained(.itemKNN, events), popularity: nil)
        let (items, model) = knn.similar(to: 201, n: 3)
        #expect(model?.model.kind == .itemKNN && items.count == 3 && items.allSatisfy { (201...208).contains($0.itemID) })
        let als = Recommender(
            factors: try trained(.als, events, [("factors", "8"), ("iterations", "6"), ("regularization", "1")]), neighbours: nil,
            popularity: nil)
        let (near, _) = als.similar(to: 201, n: 3)
        #expect(near.count == 3 && !near.contains { $0.itemID == 201 })
        #expect(knn.similar(to: 77_777, n: 3).items.isEmpty)
    }
}

@Suite("Recommend service", .serialized, .timeLimit(.minutes(3)))
struct RecommendServiceTests {
    @Test("with ingest, feature and model running, a user's recommendations follow their live views and the published models")
    func endToEnd() async throws {
        try await withRecommendSuite { ingest, feature, model, recommend in
            try await append(ingest.client, shop())
            try await waitConsumed(ingest: ingest.client, consumer: model.client)
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            try await publishItemKNNAndPopularity(model: model.client, recommend: recommend.client)

            // A new user views two items of taste 2: the next answer is of taste 2.
            try await append(
                ingest.client,
                [view(5000, 201, at: baseMs + 86_400_000, category: 12), view(5000, 202, at: baseMs + 86_400_001, category: 12)])
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            var request = RecommendRequest()
            request.userId = 5000
            request.n = 4
            let answer = try await recommend.client.call(RecommendAPI.recommend, request)
            #expect(answer.modelName == "item_knn" && answer.modelVersion == 1 && !answer.fallback && !answer.requestId.isEmpty)
            #expect(answer.items.count == 4 && answer.items.allSatisfy { (203...208).contains($0.itemId) }, "\(answer.items.map(\.itemId))")
            #expect(answer.items.first?.reason.hasPrefix("because you viewed 20") == true)

            // Impression fatigue: shown three times without a touch, an item is left out
            // (this was the first showing; two more, then the fourth answer avoids them).
            _ = try await recommend.client.call(RecommendAPI.recommend, request)
            let third = try await recommend.client.call(RecommendAPI.recommend, request)
            #expect(third.items.map(\.itemId) == answer.items.map(\.itemId))
            let fourth = try await recommend.client.call(RecommendAPI.recommend, request)
            #expect(Set(fourth.items.map(\.itemId)).isDisjoint(with: answer.items.map(\.itemId)), "\(fourth.items.map(\.itemId))")

            // The answer comes back through the log as an impression event.
            let served = try await impressions(ingest.client, requestID: answer.requestId)
            #expect(
                served?.userId == 5000 && served?.impression?.itemIds == answer.items.map(\.itemId)
                    && served?.impression?.modelName == "item_knn")

            var similar = SimilarItemsRequest()
            similar.itemId = 101
            similar.n = 3
            #expect(
                try await recommend.client.call(RecommendAPI.similarItems, similar).items.allSatisfy { (101...108).contains($0.itemId) })
            var popular = PopularRequest()
            popular.categoryId = 11
            popular.n = 3
            let top = try await recommend.client.call(RecommendAPI.popular, popular).items
            #expect(top.count == 3 && top.allSatisfy { (101...108).contains($0.itemId) && $0.reason == "popular in 11" })
            popular.window = "lifetime"
            #expect(try await recommend.client.call(RecommendAPI.popular, popular).items.allSatisfy { $0.source == "feature" })
            var bad = RecommendRequest()
            bad.userId = -1
            await #expect { try await recommend.client.call(RecommendAPI.recommend, bad) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument
            }
            var none = RecommendRequest()
            none.userId = 5000
            await #expect { try await recommend.client.call(RecommendAPI.recommend, none) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument
            }
            // An unknown user is cold start, not an error.
            var cold = RecommendRequest()
            cold.userId = 987_654
            cold.n = 3
            let coldAnswer = try await recommend.client.call(RecommendAPI.recommend, cold)
            #expect(coldAnswer.items.count == 3 && coldAnswer.fallback && coldAnswer.fallbackReason == "unknown user: popular items")

            // Refused with a message: an unknown category, a price range upside down, diversity past 1.
            for change in [
                { (r: inout RecommendRequest) in r.categoryIds = [99_999] },
                {
                    $0.minPrice = 50; $0.maxPrice = 10
                }, { $0.diversity = 2 },
            ] {
                var wrong = request
                change(&wrong)
                await #expect { try await recommend.client.call(RecommendAPI.recommend, wrong) } throws: {
                    ($0 as? RPCError)?.code == .invalidArgument
                }
            }

            // A new item, listed by an item_upsert and viewed since, is recommended by the live
            // trending list before any model knows it; explained on request. (The impressions
            // served so far are stamped with the wall clock; the shop's clock stays in 2024.)
            let nowMs = baseMs + 86_400_100
            var listing = view(1, 0, at: nowMs, kind: .itemUpsert)
            var upsert = ItemUpsert()
            upsert.itemId = 900
            upsert.categoryId = 11
            upsert.price = 9
            upsert.stock = 4
            listing.item = upsert
            try await append(ingest.client, [listing] + (0..<5).map { view(Int64(7000 + $0), 900, at: nowMs + Int64($0), category: 11) })
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            var fresh = RecommendRequest()
            fresh.userId = 6000
            fresh.n = 3
            fresh.categoryIds = [11]
            fresh.explain = true
            let withNew = try await recommend.client.call(RecommendAPI.recommend, fresh)
            let new = try #require(withNew.items.first { $0.itemId == 900 }, "\(withNew.items.map(\.itemId))")
            #expect(
                new.reason == "trending in 11" && new.categoryId == 11
                    && new.contributions.contains { $0.name == "trending" && $0.value > 0 })
            #expect(withNew.items.allSatisfy { $0.categoryId == 11 })
            fresh.maxPrice = 5
            #expect(try await recommend.client.call(RecommendAPI.recommend, fresh).items.allSatisfy { $0.itemId != 900 })

            // Hot swap under load: a new item_knn version is published while callers keep
            // asking; no call fails, and the answers move to the new version. The callers
            // stop once asked and once they have seen it (within 30 s), however slow the
            // machine: a version is published only after they have seen the first.
            let stop = StopFlag(), sawFirst = StopFlag()
            let load = Task {
                var failures = 0, versions = Set<UInt32>()
                let deadline = ContinuousClock.now + .seconds(30)
                while !(stop.isSet && versions.contains(2)) && ContinuousClock.now < deadline {
                    await withTaskGroup(of: (Bool, UInt32).self) { group in
                        for u in 0..<8 {
                            group.addTask {
                                var r = RecommendRequest()
                                r.userId = Int64(1 + u)
                                r.n = 5
                                guard let a = try? await recommend.client.call(RecommendAPI.recommend, r, timeout: .seconds(2)) else {
                                    return (false, 0)
                                }
                                return (true, a.modelVersion)
                            }
                        }
                        for await (ok, v) in group {
                            if ok { versions.insert(v) } else { failures += 1 }
                        }
                    }
                    if versions.contains(1) { sawFirst.set() }
                }
                return (failures, versions)
            }
            let firstBy = ContinuousClock.now + .seconds(30)
            while !sawFirst.isSet && ContinuousClock.now < firstBy { try await Task.sleep(for: .milliseconds(20)) }
            var again = TrainRequest()
            again.kind = .itemKnn
            again.publish = true
            _ = try await model.client.call(ModelAPI.train, again)
            try await waitHealth(recommend.client, "models", "item_knn=2,popularity=1")
            stop.set()
            let (failures, versions) = await load.value
            #expect(failures == 0 && versions == [1, 2], "\(failures) failed calls; versions seen \(versions)")
        }
    }
}

@Suite("Recommend without the feature service", .serialized, .timeLimit(.minutes(3)))
struct RecommendFeatureDownTests {
    @Test("the feature process SIGKILLed mid-load: every call still answers within its deadline, from the models, with fallback set")
    func featureKilled() async throws {
        try await withHostedService(IngestService.self, settings: IngestSettings()) { ingest in
            var consumer = ConsumerSettings()
            consumer.ingestPort = ingest.rpcPort
            consumer.readWait = .milliseconds(200)
            let featurePort = freePort()
            let featureProcess = try ChildProcess(
                "persona-feature",
                [
                    "--port", "\(featurePort)", "--metrics-port", "0", "--data-dir", temporaryDirectory(), "--ingest",
                    "127.0.0.1:\(ingest.rpcPort)", "--model", "127.0.0.1:\(freePort())",
                ])
            defer { featureProcess.kill() }
            let featureClient = RPCClient(host: "127.0.0.1", port: featurePort)
            defer { Task { await featureClient.shutdown() } }
            try await waitHealthy(featureClient)
            try await withHostedService(ModelService.self, settings: ModelSettings(consumer)) { model in
                var settings = RecommendSettings()
                settings.modelPort = model.rpcPort
                settings.featurePort = featurePort
                settings.ingestPort = ingest.rpcPort
                settings.featureTimeout = .milliseconds(50)
                // The same six users ask again and again: fatigue would empty their lists.
                settings.impressionFatigue = 0
                try await withHostedService(RecommendService.self, settings: settings) { recommend in
                    try await append(ingest.client, shop())
                    try await waitConsumed(ingest: ingest.client, consumer: model.client)
                    try await waitConsumed(ingest: ingest.client, consumer: featureClient)
                    try await publishItemKNNAndPopularity(model: model.client, recommend: recommend.client)
                    // Well above the feature budget (50 ms): the calls must not wait on the dead
                    // process, and the other suites running beside this one must not fail it.
                    let deadline = Duration.seconds(2)
                    let stop = StopFlag()
                    let load = Task {
                        var failures: [String] = [], slowest = Duration.zero, fallbacks = 0, full = 0, calls = 0
                        while !stop.isSet {
                            for u in 1...6 {
                                var r = RecommendRequest()
                                r.userId = Int64(u)
                                r.n = 4
                                let started = ContinuousClock.now
                                do {
                                    let a = try await recommend.client.call(RecommendAPI.recommend, r, timeout: deadline)
                                    calls += 1
                                    if a.fallback && a.fallbackReason.contains("feature unavailable") { fallbacks += 1 }
                                    if a.items.count == 4 { full += 1 }
                                } catch {
                                    failures.append("\(error)")
                                }
                                slowest = max(slowest, ContinuousClock.now - started)
                            }
                        }
                        return (failures, slowest, fallbacks, full, calls)
                    }
                    try await Task.sleep(for: .milliseconds(500))
                    featureProcess.kill()
                    _ = await featureProcess.waitForExit()
                    try await Task.sleep(for: .seconds(1))
                    stop.set()
                    let (failures, slowest, fallbacks, full, calls) = await load.value
                    #expect(failures.isEmpty, "\(failures.count) of \(calls + failures.count) calls failed: \(failures.prefix(3))")
                    #expect(slowest < deadline, "slowest call \(slowest)")
                    #expect(fallbacks > 0 && full == calls, "\(fallbacks) fallbacks, \(full) full answers of \(calls)")
                }
            }
        }
    }
}

/// Trains and publishes `item_knn` and `popularity`, then waits until recommend holds both.
/// Ingest, feature and model (`withCoreSuite`) with a recommend service following them.
func withRecommendSuite<R>(
    _ body: (
        _ ingest: HostedService<IngestService>, _ feature: HostedService<FeatureService>, _ model: HostedService<ModelService>,
        _ recommend: HostedService<RecommendService>
    ) async throws -> R
) async throws -> R {
    try await withCoreSuite { ingest, feature, model in
        var settings = RecommendSettings()
        settings.modelPort = model.rpcPort
        settings.featurePort = feature.rpcPort
        settings.ingestPort = ingest.rpcPort
        // The suite runs beside the others on two cores: no feature read may time out here.
        settings.featureTimeout = .seconds(5)
        return try await withHostedService(RecommendService.self, settings: settings) { recommend in
            try await body(ingest, feature, model, recommend)
        }
    }
}

func publishItemKNNAndPopularity(model: RPCClient, recommend: RPCClient) async throws {
    for kind in [ModelKind.itemKnn, .popularity] {
        var train = TrainRequest()
        train.kind = kind
        train.publish = true
        _ = try await model.call(ModelAPI.train, train)
    }
    try await waitHealth(recommend, "models", "item_knn=1,popularity=1")
}

/// The impression event of `requestID` in the log, waiting up to `timeout` for it.
func impressions(_ ingest: RPCClient, requestID: String, timeout: Duration = .seconds(10)) async throws -> Event? {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest())
        for p in info.partitions {
            var read = ReadRequest()
            read.partition = p.partition
            read.maxEvents = 10_000
            for stored in try await ingest.call(IngestAPI.read, read).events {
                if let e = stored.event, e.kind == .impression, e.impression?.requestId == requestID { return e }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    return nil
}

@Suite("Recommend filters and re-ranking")
struct RerankTests {
    let events = shop()

    func blend() throws -> Recommender {
        Recommender(
            factors: try trained(.als, events, [("factors", "8"), ("iterations", "6"), ("regularization", "1")]),
            neighbours: try trained(.itemKNN, events),
            popularity: try trained(.popularity, events))
    }

    func item(_ id: Int64, price: Double = 20, stock: Int64 = 5, tags: [String] = []) -> ItemProfile {
        var p = ItemProfile()
        p.itemId = id
        p.categoryId = 10 + id / 100
        p.price = price
        p.stock = stock
        p.tags = tags
        p.inCatalog = true
        return p
    }

    /// Every item of the shop in the catalogue: taste-1 items 105...108 cost 5 × their last digit.
    func catalogue(_ change: (inout [Int64: ItemProfile]) -> Void = { _ in }) -> [Int64: ItemProfile] {
        var c: [Int64: ItemProfile] = [:]
        for g in 0..<3 { for i in 1...8 { let id = Int64(100 * g + i); c[id] = item(id, price: 5 * Double(i)) } }
        change(&c)
        return c
    }

    let history = Recommender.History(views: [101, 102], carts: [103])

    @Test("price range, stock and excluded items are left out; unknown items pass the catalogue's filters")
    func catalogueFilters() async throws {
        let b = try blend()
        var ctx = Recommender.Context()
        ctx.minPrice = 26
        ctx.maxPrice = 36
        ctx.inStockOnly = true
        ctx.excluding = [107]
        let stocked = catalogue { $0[106]!.stock = 0 }
        let items = await b.recommend(userID: 999_999, history: history, n: 10, context: ctx, catalogue: stocked)
        // In range 26...36: x06 (30) and x07 (35) of every taste; 106 has no stock, 107 is excluded.
        #expect(Set(items.map(\.itemID)) == [206, 207, 6, 7], "\(items.map(\.itemID))")
        // Nothing in the catalogue says an item fails: it passes.
        let bare = await b.recommend(userID: 999_999, history: history, n: 3, context: ctx, catalogue: [:])
        #expect(bare.count == 3 && !bare.contains { $0.itemID == 107 })
    }

    @Test("a purchase is not recommended again within its repurchase window (per category), and is after it")
    func repurchase() async throws {
        var b = try blend()
        let now: Int64 = 1_000 * 86_400_000
        var ctx = Recommender.Context()
        ctx.nowMs = now
        ctx.categories = [11]
        let bought = Recommender.History(views: [101], purchases: [105, 106], purchaseMs: [now - 3 * 86_400_000, now - 40 * 86_400_000])
        // Default: never again.
        let recent = await b.recommend(userID: 999_999, history: bought, n: 8, context: ctx)
        #expect(!recent.contains { [105, 106].contains($0.itemID) })
        b.repurchase = try Recommender.RepurchaseWindows(parsing: "default=never,11=30d")
        let after = await b.recommend(userID: 999_999, history: bought, n: 8, context: ctx).map(\.itemID)
        #expect(after.contains(106) && !after.contains(105), "\(after)")
        #expect(throws: SettingError.self) { try Recommender.RepurchaseWindows(parsing: "11=soon") }
    }

    @Test("every item the user ever met is left out (the profile's table), but a purchase past its repurchase window comes back")
    func metItemsLeftOut() async throws {
        var b = try blend()
        let now: Int64 = 1_000 * 86_400_000
        var ctx = Recommender.Context()
        ctx.nowMs = now
        ctx.categories = [11]
        // 107 and 108 were met long ago: in no recent list, only in the table of every item met.
        var met = HashSet32()
        for id: Int64 in [101, 106, 107, 108] { met.insert(id, limit: 4096) }
        var history = Recommender.History(views: [101], purchases: [106], purchaseMs: [now - 40 * 86_400_000])
        let recentOnly = await b.recommend(userID: 999_999, history: history, n: 8, context: ctx).map(\.itemID)
        #expect(recentOnly.contains(107) || recentOnly.contains(108), "\(recentOnly)")
        // As the profile sends it: the table itself.
        history.met = HashSet32(table: met.table)
        #expect(history.met?.count == 4)
        let everything = await b.recommend(userID: 999_999, history: history, n: 8, context: ctx).map(\.itemID)
        #expect(!everything.contains { [101, 106, 107, 108].contains($0) }, "\(everything)")
        #expect(!everything.isEmpty)
        b.repurchase = try Recommender.RepurchaseWindows(parsing: "default=never,11=30d")
        let again = await b.recommend(userID: 999_999, history: history, n: 8, context: ctx).map(\.itemID)
        #expect(again.contains(106) && !again.contains { [101, 107, 108].contains($0) }, "\(again)")
        // A table that is not one (no power of two, or no free slot) is refused.
        #expect(HashSet32(table: [1, 2, 3]) == nil)
        #expect(HashSet32(table: [1, 2]) == nil)
    }

    @Test("a campaign's boost lifts its items and categories for its treated users, adds its chosen items, and is explained")
    func campaignBoosts() async throws {
        let b = try blend()
        let plain = await b.recommend(userID: 999_999, history: history, n: 5, catalogue: catalogue())
        let last = try #require(plain.last)
        // An item no model and no list knows: only the campaign brings it.
        let unseen: Int64 = 9_999
        var ctx = Recommender.Context()
        ctx.campaignBoosts = [Recommender.CampaignBoost(campaign: "spring", items: [last.itemID, unseen], categories: [], factor: 50)]
        let boosted = await b.recommend(userID: 999_999, history: history, n: 5, context: ctx, catalogue: catalogue())
        #expect(Set(boosted.prefix(2).map(\.itemID)) == [last.itemID, unseen], "\(boosted.map(\.itemID))")
        #expect(boosted.first?.contributions.contains { $0.name == "campaign:spring" && $0.value == 50 && $0.kind == .boost } == true)
        #expect(boosted.first { $0.itemID == unseen }?.source == "campaign")
        ctx.excluding = [unseen]
        #expect(
            !(await b.recommend(userID: 999_999, history: history, n: 5, context: ctx, catalogue: catalogue())).contains {
                $0.itemID == unseen
            })
    }

    @Test("tags boost and bury, the user's categories and price band lift their items, and each boost is explained")
    func boosts() async throws {
        var b = try blend()
        let plain = await b.recommend(userID: 999_999, history: history, n: 5, catalogue: catalogue())
        let last = try #require(plain.last)
        b.tagFactors = ["sale": 100, "clearance": 0.001]
        let tagged = await b.recommend(
            userID: 999_999, history: history, n: 5,
            catalogue: catalogue {
                $0[last.itemID]!.tags = ["sale"]
                $0[plain[0].itemID]!.tags = ["clearance"]
            })
        #expect(
            tagged.first?.itemID == last.itemID && tagged.first?.contributions.contains { $0.name == "tag:sale" && $0.value == 100 } == true
        )
        #expect(!tagged.prefix(4).contains { $0.itemID == plain[0].itemID })

        // A user whose activity is all in category 12 and the 20–50 band sees those items lifted.
        var profile = UserProfile()
        var a = Affinity()
        a.id = 12
        a.score = 4
        profile.categories = [a]
        profile.priceBands = [0, 1, 0, 0, 0]
        b.tagFactors = [:]
        b.weights.categoryAffinity = 5
        let before = await b.recommend(userID: 999_999, history: history, n: 20, catalogue: catalogue())
        let lifted = await b.recommend(userID: 999_999, history: history, n: 20, catalogue: catalogue(), profile: profile)
        // Past the user's own taste, every category-12 item now comes before any of category 10.
        func taste2First(_ l: [Recommender.Candidate]) -> Bool {
            let others = l.filter { $0.itemID < 100 || $0.itemID > 200 }
            return others.prefix { $0.itemID > 200 }.count == others.filter { $0.itemID > 200 }.count
        }
        #expect(!taste2First(before) && taste2First(lifted), "\(before.map(\.itemID)) then \(lifted.map(\.itemID))")
        let now = try #require(lifted.firstIndex { $0.itemID > 200 })
        #expect(
            lifted[now].contributions.contains { $0.name == "category_affinity" && $0.detail == "category 12 is 100% of your activity" })
        let inBand = lifted.filter { (10..<50).contains(catalogue()[$0.itemID]!.price) }
        #expect(!inBand.isEmpty && inBand.allSatisfy { $0.contributions.contains { $0.name == "price_band" } })
    }

    @Test("maximal marginal relevance spreads the list over the tastes; equal inputs, equal answers")
    func diversity() async throws {
        let b = try blend()
        var ctx = Recommender.Context()
        ctx.diversity = 0.9
        let diverse = await b.recommend(userID: 999_999, history: history, n: 6, context: ctx)
        let plain = await b.recommend(userID: 999_999, history: history, n: 6)
        func tastes(_ l: [Recommender.Candidate]) -> Int { Set(l.map { $0.itemID / 100 }).count }
        #expect(diverse.count == 6 && tastes(diverse) > tastes(plain), "\(diverse.map(\.itemID)) against \(plain.map(\.itemID))")
        #expect(await diverse == b.recommend(userID: 999_999, history: history, n: 6, context: ctx))
    }

    @Test("live trending lists recommend an item no model knows, with its reason; weights parse or are refused")
    func trending() async throws {
        let b = try blend()
        let live = [Recommender.LiveList(name: "trending", category: 11, items: [(id: 199, category: 11, score: 40)])]
        let cold = await b.recommend(userID: 424_242, history: .init(), n: 3, live: live)
        #expect(cold.contains { $0.itemID == 199 && $0.reason == "trending in 11" && $0.source == "trending" }, "\(cold)")
        #expect(try Recommender.Weights(parsing: "factors=2, trending=0.5").factors == 2)
        #expect(throws: SettingError.self) { try Recommender.Weights(parsing: "magic=1") }
        #expect(throws: SettingError.self) { try Recommender.Weights(parsing: "factors=-1") }
    }
}

@Suite("Reasons name items")
struct ItemNamesTests {
    @Test("a marked item is named by its title in quotes, else by its id; text without marks is as it was")
    func resolve() {
        let text = "next after \(ItemNames.mark(12)), \(ItemNames.mark(345))"
        #expect(ItemNames.items(in: text) == [12, 345])
        #expect(ItemNames.resolve(text, titles: [12: "RED MUG"]) == #"next after "RED MUG", 345"#)
        #expect(ItemNames.resolve(text, titles: [12: ""]) == "next after 12, 345")
        #expect(ItemNames.resolve("trending now", titles: [1: "x"]) == "trending now")
        #expect(ItemNames.items(in: "popular in 12").isEmpty)
        // Other characters beside the marks, a mark never closed, and titles with any characters.
        let mixed = "comme \(ItemNames.mark(7)) — café\(ItemNames.mark(8))!"
        #expect(ItemNames.items(in: mixed) == [7, 8])
        #expect(ItemNames.resolve(mixed, titles: [7: "THÉ VERT", 8: "杯"]) == #"comme "THÉ VERT" — café"杯"!"#)
        #expect(ItemNames.items(in: "open \(ItemNames.open)9 never closed").isEmpty)
    }
}

@Suite("Live items from the feature service", .serialized, .timeLimit(.minutes(2)))
struct LiveItemsTests {
    @Test("calls read kept lists and entries; the background reads again what calls found old; with feature down they serve five ttls")
    func keptAndRefreshed() async throws {
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        func listing(_ item: Int64, stock: Int64, at ms: Int64) -> Event {
            var e = view(1, item, at: ms, category: 3, kind: .itemUpsert)
            var upsert = ItemUpsert()
            (upsert.itemId, upsert.categoryId, upsert.price, upsert.stock) = (item, 3, 10, stock)
            e.item = upsert
            return e
        }
        let live = try await withHostedService(IngestService.self, settings: IngestSettings()) { ingest in
            var consumer = ConsumerSettings()
            consumer.ingestPort = ingest.rpcPort
            return try await withHostedService(FeatureService.self, settings: FeatureSettings(consumer)) { feature in
                let live = LiveItems(
                    feature: FeatureReplicas([("127.0.0.1", feature.rpcPort)], defaultTimeout: .seconds(5)), ttl: .seconds(1))
                try await append(
                    ingest.client,
                    [listing(1, stock: 5, at: nowMs), listing(2, stock: 5, at: nowMs), view(7, 1, at: nowMs + 1, category: 3)])
                try await waitConsumed(ingest: ingest.client, consumer: feature.client)
                #expect(try await live.items([1], timeout: .seconds(5))[1]?.stock == 5)
                #expect(try await live.top(category: 3, window: "24h", limit: 10, timeout: .seconds(5)).items.map(\.itemId) == [1])

                // Item 1 sells out and item 2 is viewed more: a call answers from what was kept, and
                // once what it kept is older than the ttl, asks for it to be read again ...
                try await append(
                    ingest.client,
                    [listing(1, stock: 0, at: nowMs + 2)] + (0..<3).map { view(8 + Int64($0), 2, at: nowMs + 3, category: 3) })
                try await waitConsumed(ingest: ingest.client, consumer: feature.client)
                await live.refresh()  // nothing is old yet: nothing is read
                #expect(try await live.items([1], timeout: .seconds(5))[1]?.stock == 5)
                try await Task.sleep(for: .milliseconds(1_100))
                #expect(try await live.items([1], timeout: .seconds(5))[1]?.stock == 5)
                #expect(try await live.top(category: 3, window: "24h", limit: 10, timeout: .seconds(5)).items.first?.itemId == 1)
                // ... which the background does; an item never asked for is read on the call.
                await live.refresh()
                #expect(try await live.items([1, 2], timeout: .seconds(5)).mapValues(\.stock) == [1: 0, 2: 5])
                #expect(try await live.top(category: 3, window: "24h", limit: 10, timeout: .seconds(5)).items.first?.itemId == 2)
                return live
            }
        }
        // The feature service is gone: a refresh fails and keeps what it had, served for five ttls.
        try await Task.sleep(for: .milliseconds(1_100))
        #expect(try await live.items([1], timeout: .milliseconds(500))[1]?.stock == 0)
        await live.refresh()
        #expect(try await live.items([1], timeout: .milliseconds(500))[1]?.stock == 0)
        try await Task.sleep(for: .milliseconds(4_100))
        await #expect(throws: RPCError.self) { try await live.items([1], timeout: .milliseconds(500)) }
    }
}
