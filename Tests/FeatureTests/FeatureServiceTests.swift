import EventLog
import Foundation
import Ingest
import RPC
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Feature

@Suite("Feature service", .serialized, .timeLimit(.minutes(5)))
struct FeatureServiceTests {
    @Test(
        """
        profiles of the 43 Taobao users equal a plain recount of the file, on the embedded log, on a three-server JetStream \
        cluster, and there read through two feature replicas
        """,
        arguments: ["file", "jetstream", "jetstream, two feature replicas"])
    func taobaoRecount(log: String) async throws {
        try await NATSServers.exclusively {
            let rows = try TaobaoRow.load()
            let events = TaobaoRow.events(try TaobaoRow.lines(TaobaoRow.sample43))
            let users = Array(Set(rows.map(\.user))).sorted()
            var settings = IngestSettings()
            let nats = log.hasPrefix("jetstream") ? try NATSServers(count: 3) : nil
            defer { nats?.stop() }
            if let nats { settings.log = try LogChoice(parsing: nats.url) }
            let got = try await withIngest(settings: settings) { ingest, port in
                try await append(ingest, events)
                guard log.hasSuffix("replicas") else {
                    return try await withFeature(ingestPort: port) { feature, _ in
                        try await waitConsumed(ingest: ingest, consumer: feature)
                        return try await profiles(feature, users)
                    }
                }
                // Each replica holds the users of half of ingest's 4 partitions; calls are routed.
                return try await withFeature(ingestPort: port, partitions: [0, 1]) { low, _ in
                    try await withFeature(ingestPort: port, partitions: [2, 3]) { high, _ in
                        try await waitConsumed(ingest: ingest, consumer: low)
                        try await waitConsumed(ingest: ingest, consumer: high)
                        let router = FeatureReplicas([(low.config.host, low.config.port), (high.config.host, high.config.port)])
                        var out: [Int64: UserProfile] = [:]
                        for u in users {
                            var r = GetProfileRequest()
                            r.userId = u
                            let response = try await router.call(FeatureAPI.getProfile, r, user: u)
                            if response.found { out[u] = response.profile }
                        }
                        await router.shutdown()
                        return out
                    }
                }
            }
            #expect(got.count == 43)
            let now = rows.map { $0.seconds * 1000 }.max()!
            var utc = Calendar(identifier: .gregorian)
            utc.timeZone = TimeZone(identifier: "UTC")!
            for user in users {
                let mine = rows.filter { $0.user == user }.sorted { $0.seconds < $1.seconds }
                guard let p = got[user] else {
                    Issue.record("no profile for \(user)")
                    continue
                }
                let ctx = Comment(rawValue: "user \(user)")
                #expect(p.firstSeenMs == mine.first!.seconds * 1000, ctx)
                #expect(p.lastSeenMs == mine.last!.seconds * 1000, ctx)
                // Counts per kind and window, by the documented rule.
                for kind in [EventKind.view, .addToCart, .favorite, .purchase] {
                    let times = mine.filter { $0.kind == kind }.map { $0.seconds * 1000 }
                    let c = p.counts.first { $0.kind == kind }?.counts ?? WindowCounts()
                    #expect(c.lifetime == UInt64(times.count), ctx)
                    #expect(c.last1h == UInt32(times.filter { FeatureStateTests.inWindow($0, .hour1, now: now) }.count), ctx)
                    #expect(c.last24h == UInt32(times.filter { FeatureStateTests.inWindow($0, .hours24, now: now) }.count), ctx)
                    #expect(c.last7d == UInt32(times.filter { FeatureStateTests.inWindow($0, .days7, now: now) }.count), ctx)
                    #expect(c.last30d == UInt32(times.filter { FeatureStateTests.inWindow($0, .days30, now: now) }.count), ctx)
                }
                let views = mine.filter { $0.behavior == "pv" }
                // Every item met counts, viewed or carted, favourited or bought.
                #expect(p.distinctItems == UInt32(Set(mine.map(\.item)).count), ctx)
                #expect(p.distinctCategories == UInt32(Set(mine.map(\.category)).count), ctx)
                #expect(p.recentViews == Array(views.map(\.item).suffix(20).reversed()), ctx)
                #expect(p.recentCarts == Array(mine.filter { $0.behavior == "cart" }.map(\.item).suffix(20).reversed()), ctx)
                let buys = mine.filter { $0.behavior == "buy" }
                #expect(p.recentPurchases == Array(buys.map(\.item).suffix(20).reversed()), ctx)
                #expect(p.recentPurchaseMs == Array(buys.map { $0.seconds * 1000 }.suffix(20).reversed()), ctx)
                #expect(p.rfm?.frequency == UInt32(buys.count), ctx)
                if buys.count >= 2 {
                    let gaps = zip(buys.dropFirst(), buys).map { Double($0.seconds - $1.seconds) / 86_400 }
                    #expect(abs(p.purchaseIntervalMeanDays - gaps.reduce(0, +) / Double(gaps.count)) < 1e-9, ctx)
                }
                // Sessions: a gap of more than 30 minutes starts a new one.
                let sessions = 1 + zip(mine.dropFirst(), mine).filter { $0.seconds - $1.seconds > 1800 }.count
                #expect(p.sessions == UInt32(sessions), ctx)
                // Active hours and weekdays, UTC, Monday first.
                var hours = [UInt32](repeating: 0, count: 24)
                var weekdays = [UInt32](repeating: 0, count: 7)
                for r in mine {
                    let date = Date(timeIntervalSince1970: Double(r.seconds))
                    hours[utc.component(.hour, from: date)] += 1
                    weekdays[(utc.component(.weekday, from: date) + 5) % 7] += 1
                }
                #expect(p.activeHours == hours, ctx)
                #expect(p.weekdays == weekdays, ctx)
                // Category affinity: sum of weight x 2^(-age / 7 days), while no category was evicted.
                if Set(mine.map(\.category)).count <= UserState.affinityLimit {
                    var scores: [Int64: Double] = [:]
                    for r in mine {
                        scores[r.category, default: 0] +=
                            UserState.weight(r.kind) * pow(2, -Double(now - r.seconds * 1000) / (7 * 86_400_000))
                    }
                    let expected = scores.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(10)
                    #expect(p.categories.map(\.id) == expected.map(\.key), ctx)
                    for (a, e) in zip(p.categories, expected) { #expect(abs(a.score - e.value) <= 1e-9 * e.value, ctx) }
                }
            }
        }
    }

    @Test("restart from the snapshot and rebuild from the log give identical profiles; erasure sticks")
    func restartAndRebuild() async throws {
        let rows = try TaobaoRow.load()
        let events = TaobaoRow.events(try TaobaoRow.lines(TaobaoRow.sample43))
        let users = Array(Set(rows.map(\.user))).sorted()
        try await withIngest { ingest, port in
            let featureDir = temporaryDirectory()
            // First half, then stop (graceful: a snapshot), start again, second half.
            try await append(ingest, Array(events.prefix(2000)))
            try await withFeature(ingestPort: port, dataDir: featureDir) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
            }
            #expect(FileManager.default.fileExists(atPath: featureDir + "/state.snapshot"))
            try await append(ingest, Array(events.dropFirst(2000)))
            let (restarted, items) = try await withFeature(ingestPort: port, dataDir: featureDir) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                var r = GetItemsRequest()
                r.itemIds = rows.prefix(50).map(\.item)
                return (try await profiles(feature, users), try await feature.call(FeatureAPI.getItems, r))
            }
            // A fresh data directory: everything from the log.
            let rebuilt = try await withFeature(ingestPort: port) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                var r = GetItemsRequest()
                r.itemIds = rows.prefix(50).map(\.item)
                #expect(try await feature.call(FeatureAPI.getItems, r) == items)
                return try await profiles(feature, users)
            }
            #expect(restarted.count == 43)
            #expect(rebuilt == restarted)

            // Erase one user: gone now, after a restart, and after a rebuild with the erasure.
            let victim = users[5]
            try await withFeature(ingestPort: port, dataDir: featureDir) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                var d = DeleteUserRequest()
                d.userId = victim
                #expect(try await feature.call(FeatureAPI.deleteUser, d).deleted)
                #expect(try await profiles(feature, [victim]).isEmpty)
                #expect(try await feature.call(FeatureAPI.deleteUser, d).deleted == false)
            }
            try await withFeature(ingestPort: port, dataDir: featureDir) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                #expect(try await profiles(feature, [victim]).isEmpty)
                #expect(try await profiles(feature, [users[6]]) == [users[6]: restarted[users[6]]!])
            }
        }
    }

    @Test("GetFeatures: dense rows in the order asked, unknown names refused, unknown users marked")
    func getFeatures() async throws {
        try await withIngest { ingest, port in
            let t = Int64(Date().timeIntervalSince1970 * 1000) - hour
            try await append(
                ingest,
                [
                    purchase(user: 1, at: t, total: 30), purchase(user: 1, at: t + minute, total: 50),
                    event(.view, user: 2, at: t + 2 * minute, item: 4),
                ])
            try await withFeature(ingestPort: port) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                var r = GetFeaturesRequest()
                r.userIds = [1, 2, 77]
                r.names = ["purchase_lifetime", "orders_1h", "amount_1h", "view_lifetime", "monetary"]
                let response = try await feature.call(FeatureAPI.getFeatures, r)
                #expect(response.schemaVersion == FeatureCatalog.schemaVersion)
                #expect(response.names == r.names)
                #expect(response.rows.map(\.found) == [true, true, false])
                #expect(response.rows[0].values == [2, 2, 80, 0, 80])
                #expect(response.rows[1].values == [0, 0, 0, 1, 0])
                #expect(response.rows[2].values == [0, 0, 0, 0, 0])
                // Every name, when none are asked for.
                r.names = []
                #expect(try await feature.call(FeatureAPI.getFeatures, r).names == FeatureCatalog.names)
                r.names = ["orders_1h", "no_such_feature"]
                await #expect(throws: RPCError.self) { try await feature.call(FeatureAPI.getFeatures, r) }
                do {
                    _ = try await feature.call(FeatureAPI.getFeatures, r)
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument)
                    #expect(error.message.contains("no_such_feature"))
                }
            }
        }
    }

    @Test("items: catalog fields, counts, TopItems by views and conversion, segment members by tag")
    func itemsAndSegments() async throws {
        try await withIngest { ingest, port in
            let t = Int64(Date().timeIntervalSince1970 * 1000) - 2 * hour
            var events: [Event] = []
            for id in Int64(1)...3 {
                var e = event(.itemUpsert, user: 1, at: t)
                var u = ItemUpsert()
                u.itemId = id
                u.categoryId = 10
                u.brand = id == 3 ? "Beta" : "Acme"
                u.price = Double(id) * 20
                u.title = "item \(id)"
                e.item = u
                events.append(e)
            }
            // The catalog first, as a shop loads it before traffic: brands are attributed from
            // the catalog as of the fold.
            try await append(ingest, events)
            events = []
            // Item 1: 5 views, 1 purchase. Item 2: 2 views, 2 purchases. Item 3: 1 view.
            for (item, views, buys) in [(Int64(1), 5, 1), (2, 2, 2), (3, 1, 0)] {
                for v in 0..<views { events.append(event(.view, user: Int64(100 + v), at: t + Int64(v) * minute, item: item)) }
                for b in 0..<buys { events.append(purchase(user: Int64(200 + b), at: t + hour, total: Double(item) * 20, item: item)) }
            }
            try await withFeature(ingestPort: port) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                try await append(ingest, events)
                try await waitConsumed(ingest: ingest, consumer: feature)
                var g = GetItemsRequest()
                g.itemIds = [2, 999]
                let items = try await feature.call(FeatureAPI.getItems, g)
                #expect(items.missing == [999])
                let two = try #require(items.items.first)
                #expect(two.brand == "Acme" && two.price == 40 && two.title == "item 2" && two.categoryId == 10 && two.inCatalog)
                #expect(two.views?.lifetime == 2 && two.purchases?.lifetime == 2 && two.conversionRate == 1)

                var top = TopItemsRequest()
                top.categoryId = 10
                top.by = "views"
                top.window = "24h"
                #expect(try await feature.call(FeatureAPI.topItems, top).items.map(\.itemId) == [1, 2, 3])
                // The best of more than the limit, in the same order.
                top.limit = 2
                #expect(try await feature.call(FeatureAPI.topItems, top).items.map(\.itemId) == [1, 2])
                top.limit = 1
                top.by = "trending"
                #expect(try await feature.call(FeatureAPI.topItems, top).items.map(\.itemId) == [1])
                top.limit = 0
                top.by = "conversion"
                top.window = "lifetime"
                #expect(try await feature.call(FeatureAPI.topItems, top).items.map(\.itemId) == [2, 1])
                top.by = "price"
                await #expect(throws: RPCError.self) { try await feature.call(FeatureAPI.topItems, top) }

                // The brand of a viewed catalog item shows in the viewer's affinities.
                var p = GetProfileRequest()
                p.userId = 100
                let profile = try #require(try await feature.call(FeatureAPI.getProfile, p).profile)
                #expect(profile.brands.map(\.name).contains("Acme"))

                // Every buyer and viewer was active today (the catalog's sender has no profile): page through "active" two at a time.
                var members: [Int64] = []
                var s = SegmentMembersRequest()
                s.tag = "active"
                s.pageSize = 2
                repeat {
                    let page = try await feature.call(FeatureAPI.segmentMembers, s)
                    members += page.userIds
                    s.pageToken = page.nextPageToken
                } while !s.pageToken.isEmpty
                #expect(members == [100, 101, 102, 103, 104, 200, 201])
            }
        }
    }

    @Test("training export: each labelled order's features as they were at its time, never later")
    func pointInTimeExport() async throws {
        try await withIngest { ingest, port in
            let t = Int64(Date().timeIntervalSince1970 * 1000) - 30 * day
            var events: [Event] = []
            var reg = event(.register, user: 5, at: t)
            reg.register = Register()
            events.append(reg)
            // Three orders a day apart, each labelled later; views in between.
            for k in Int64(0)..<3 {
                events.append(event(.view, user: 5, at: t + k * day + hour, item: 9))
                events.append(purchase(user: 5, at: t + k * day + 2 * hour, total: Double(10 * (k + 1)), order: "ord-\(k)"))
                var label = event(.label, user: 5, at: t + 20 * day + k)
                var l = Label()
                l.orderId = "ord-\(k)"
                l.kind = k == 1 ? .chargeback : .legitimate
                label.label = l
                events.append(label)
            }
            // A late relabel of order 0, and activity after every order.
            var relabel = event(.label, user: 5, at: t + 25 * day)
            var l = Label()
            l.orderId = "ord-0"
            l.kind = .confirmedFraud
            relabel.label = l
            events.append(relabel)
            events.append(purchase(user: 5, at: t + 10 * day, total: 999, order: "unlabelled"))
            try await append(ingest, events)
            try await withFeature(ingestPort: port) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                var r = ExportTrainingRequest()
                r.names = ["purchase_lifetime", "view_lifetime", "monetary", "seconds_since_signup", "label_lifetime"]
                r.chunkRows = 2
                var rows: [TrainingRow] = []
                var chunks = 0
                while true {
                    let page = try await feature.call(FeatureAPI.exportTraining, r)
                    #expect(page.names == r.names)
                    rows += page.rows
                    chunks += 1
                    if page.done { break }
                    r.cursor = page.nextCursor
                }
                #expect(chunks == 2)
                #expect(rows.map(\.orderId) == ["ord-0", "ord-1", "ord-2"])
                #expect(rows.map(\.label) == [1, 1, 0])
                for (k, row) in rows.enumerated() {
                    let k = Float(k)
                    // Only what happened up to the order: k+1 purchases, k+1 views, no labels yet.
                    #expect(row.values == [k + 1, k + 1, 10 * (k + 1) * (k + 2) / 2, Float((k * 86_400 + 7200)), 0])
                    #expect(row.timestampMs == t + Int64(k) * day + 2 * hour)
                }
                r.cursor = "999:0"
                await #expect(throws: RPCError.self) { try await feature.call(FeatureAPI.exportTraining, r) }
            }
        }
    }

    @Test("user-level export: propensity and churn labels from the horizon after each cut-off, features from before it")
    func userLevelExport() async throws {
        try await withIngest { ingest, port in
            let t = Int64(Date().timeIntervalSince1970 * 1000) - 100 * day
            let events: [Event] = [
                // 1 buys before and inside the horizon (40, 70]: propensity 1, churn 0.
                event(.view, user: 1, at: t, item: 9), purchase(user: 1, at: t + 10 * day, total: 5, order: "a"),
                purchase(user: 1, at: t + 45 * day, total: 5, order: "b"),
                // 2 only views inside it: propensity 0, churn 0.
                event(.view, user: 2, at: t + 5 * day, item: 9), event(.view, user: 2, at: t + 50 * day, item: 9),
                // 3 does nothing after day 2: propensity 0, churn 1.
                purchase(user: 3, at: t + 2 * day, total: 5, order: "c"),
                // 4 first shows after the cut-off: no row.
                event(.view, user: 4, at: t + 60 * day, item: 9),
                // 5 buys only after the horizon: propensity 0, churn 1.
                event(.view, user: 5, at: t + day, item: 9), purchase(user: 5, at: t + 80 * day, total: 5, order: "d"),
            ]
            try await append(ingest, events)
            try await withFeature(ingestPort: port) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                func export(_ target: String, cutoffs: UInt32 = 1) async throws -> [TrainingRow] {
                    var r = ExportTrainingRequest()
                    r.names = ["purchase_lifetime", "view_lifetime"]
                    r.target = target
                    r.horizonDays = 30
                    r.cutoffMs = t + 40 * day
                    r.cutoffs = cutoffs
                    var rows: [TrainingRow] = []
                    while true {
                        let page = try await feature.call(FeatureAPI.exportTraining, r)
                        rows += page.rows
                        if page.done { return rows }
                        r.cursor = page.nextCursor
                    }
                }
                let propensity = try await export("propensity")
                #expect(propensity.map(\.userId) == [1, 2, 3, 5])
                #expect(propensity.map(\.label) == [1, 0, 0, 0])
                #expect(propensity.allSatisfy { $0.timestampMs == t + 40 * day && $0.orderId.isEmpty })
                // Features as of the cut-off: user 1's purchase on day 45 and user 2's view on day 50 are not in them.
                #expect(propensity.map(\.values) == [[1, 1], [0, 1], [1, 0], [0, 1]])
                let churn = try await export("churn")
                #expect(churn.map(\.label) == [0, 0, 1, 1])
                // Two cut-offs a horizon apart: day 10 (users 1, 2, 3, 5) then day 40; oldest first.
                let two = try await export("propensity", cutoffs: 2)
                #expect(two.map(\.timestampMs) == [Int64](repeating: t + 10 * day, count: 4) + [Int64](repeating: t + 40 * day, count: 4))
                #expect(two.prefix(4).map(\.label) == [0, 0, 0, 0])
                #expect(two.first?.values == [1, 1])
                var bad = ExportTrainingRequest()
                bad.target = "loyalty"
                await #expect { try await feature.call(FeatureAPI.exportTraining, bad) } throws: {
                    ($0 as? RPCError)?.code == .invalidArgument
                }
            }
        }
    }

    @Test("freshness: every acknowledged event shows in GetProfile while ingest is busy")
    func freshness() async throws {
        try await withIngest { ingest, port in
            try await withFeature(ingestPort: port) { feature, _ in
                // Background load: batches of 500 views for 1,000 users.
                let load = Task {
                    var n = 0
                    while !Task.isCancelled {
                        let now = Int64(Date().timeIntervalSince1970 * 1000)
                        let batch = (0..<500).map { i in
                            event(.view, user: Int64(1000 + (n + i) % 1000), at: now, item: Int64(i + 1), id: "load-\(n + i)")
                        }
                        try await append(ingest, batch)
                        n += 500
                    }
                }
                defer { load.cancel() }
                for probe in 0..<30 {
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    var e = event(.search, user: 7, at: now, id: "probe-\(probe)")
                    var search = Search()
                    search.query = "probe \(probe)"
                    e.search = search
                    try await append(ingest, [e])
                    let acked = ContinuousClock.now
                    var r = GetProfileRequest()
                    r.userId = 7
                    while true {
                        let p = try await feature.call(FeatureAPI.getProfile, r).profile
                        if p?.counts.first(where: { $0.kind == .search })?.counts?.lifetime == UInt64(probe + 1) { break }
                        // How soon is the feature benchmark's figure (make bench); here, that it shows.
                        guard acked.duration(to: .now) < .seconds(60) else {
                            Issue.record("probe \(probe) not in the profile 60 s after it was acknowledged")
                            return
                        }
                        try await Task.sleep(for: .milliseconds(2))
                    }
                }
            }
        }
    }
}
