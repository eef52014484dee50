import DataStructures
import Foundation
import Math
import Store
import TestSupport
import Testing
import Wire

@testable import Feature

@Suite("Feature state")
struct FeatureStateTests {
    @Test("window edges: the last hour is 60 whole minutes, 24h whole hours, 7d and 30d whole days")
    func windowEdges() {
        let now = monday + 10 * hour + 30 * minute + 15_000  // Monday 10:30:15
        let state = FeatureState(partitions: 1)
        let times: [Int64] = [
            now,  // every window
            monday + 9 * hour + 31 * minute,  // 09:31:00: first minute of the last hour
            monday + 9 * hour + 30 * minute + 59_999,  // 09:30:59.999: just outside it
            monday - 13 * hour,  // Sunday 11:00: first hour of the last 24
            monday - 13 * hour - 1,  // Sunday 10:59:59.999: just outside
            monday - 6 * day,  // Tuesday a week ago, 00:00: first day of the last 7
            monday - 6 * day - 1,  // Monday a week ago, 23:59:59.999: outside 7d
            monday - 29 * day,  // first day of the last 30
            monday - 29 * day - 1,  // outside 30d, lifetime only
        ]
        state.foldAll(times.sorted().map { event(.view, user: 1, at: $0, item: 1) })
        let counts = state.view(1)!.counts[Int(EventKind.view.rawValue)]
        #expect(counts == [2, 4, 6, 8])
        #expect(state.users[1]!.lifetime[Int(EventKind.view.rawValue)] == 9)
    }

    @Test("distinct items and categories count every item met: bought ones too, each once")
    func distinctItemsCountEveryItemMet() {
        let state = FeatureState(partitions: 1)
        // A shopper who only buys (as Online Retail's customers do), then views one of the items.
        var events = [1, 2, 3, 2].enumerated().map { i, item in
            purchase(user: 5, at: monday + Int64(i) * hour, total: 10, item: Int64(item))
        }
        events.append(event(.view, user: 5, at: monday + 5 * hour, item: 3, category: 40))
        events.append(event(.addToCart, user: 5, at: monday + 6 * hour, item: 4, category: 41))
        state.foldAll(events)
        let user = state.users[5]!
        #expect(user.distinctItems.count == 4)
        #expect(user.distinctCategories.count == 2)
    }

    @Test("bucket merging never changes an answer: 20,000 random events against a plain recount")
    func windowsMatchRecount() {
        var rng = SplitMix(seed: 7)
        let state = FeatureState(partitions: 1)
        var times: [Int64] = []
        var t = monday
        for _ in 0..<20_000 {
            // Mostly forward in time with bursts and gaps, sometimes a few minutes back.
            t += Int64(rng.next() % 600_000) - (rng.next() % 10 == 0 ? 300_000 : 0)
            if rng.next() % 500 == 0 { t += 3 * day }
            times.append(t)
            _ = state.fold(event(.view, user: 1, at: t, item: 1), partition: 0, offset: UInt64(times.count))
            if times.count % 997 == 0 {
                let now = state.watermarkMs
                let expected = Window.allCases.map { w in
                    times.filter { Self.inWindow($0, w, now: now) }.count
                }
                let got = state.view(1)!.counts[Int(EventKind.view.rawValue)].map(Int.init)
                #expect(got == expected, "after \(times.count) events")
            }
        }
        // Bounded: compacted, at most 60 minute + 24 hour + 30 day buckets (of the one kind);
        // between compactions, growth is held to a small multiple of that.
        var windows = state.users[1]!.windows
        #expect(windows.buckets.count <= 3 * (60 + 24 + 30))
        windows.compact(nowMs: state.watermarkMs)
        #expect(windows.buckets.count <= 60 + 24 + 30)
    }

    @Test("compaction through its hash gives the buckets a scan of the kept ones gives, full counters included")
    func compactionMatchesScan() {
        // The plain rule: each bucket, coarsened, joins the latest kept bucket with its time,
        // kind and tier while that one has room, else is kept on its own.
        func scanned(_ buckets: [WindowedCounts.Bucket], now: UInt32) -> [WindowedCounts.Bucket] {
            var kept: [WindowedCounts.Bucket] = []
            for var b in buckets {
                guard let tier = WindowedCounts.tier(minute: b.minute, now: now) else { continue }
                if tier > b.tier {
                    b.tier = tier
                    b.minute = b.minute / WindowedCounts.minutes(ofTier: tier) * WindowedCounts.minutes(ofTier: tier)
                }
                if let j = kept.lastIndex(where: { $0.minute == b.minute && $0.kind == b.kind && $0.tier == b.tier }),
                    kept[j].count <= UInt32.max - b.count
                {
                    kept[j].count += b.count
                } else {
                    kept.append(b)
                }
            }
            return kept
        }
        var rng = SplitMix(seed: 5)
        // 00:30 on a Monday: the day's first minute is in the last hour.
        let now = minuteOf(monday) + 30
        for round in 0..<300 {
            let n = Int(rng.next() % 400)
            // Three kinds, buckets of every tier
            // (the same start minute at two tiers included), now and then a count near the
            // limit so that merges overflow.
            let buckets = (0..<n).map { _ in
                let tier = UInt8(rng.next() % 3)
                let width = WindowedCounts.minutes(ofTier: tier)
                // Few distinct starts (the last 90 minutes, 30 hours, 35 days), so that keys meet.
                let start: UInt32
                switch rng.next() % 3 {
                case 0: start = now + 3 - UInt32(rng.next() % 90)
                case 1: start = (now / 60 - UInt32(rng.next() % 30)) * 60
                default: start = (now / 1440 - UInt32(rng.next() % 35)) * 1440
                }
                let minute = start / width * width
                let count: UInt32 = rng.next() % 7 == 0 ? UInt32.max - UInt32(rng.next() % 3) : UInt32(1 + rng.next() % 5)
                return WindowedCounts.Bucket(minute: minute, count: count, kind: UInt8(rng.next() % 3), tier: tier)
            }
            var windows = WindowedCounts(buckets: buckets)
            windows.compact(nowMs: Int64(now) * 60_000)
            #expect(windows.buckets == scanned(buckets, now: now), "round \(round), \(n) buckets")
        }
    }

    @Test("affinities: interactions in any order add up to the plain decayed sum; the weakest gives way")
    func affinityLevels() {
        var rng = SplitMix(seed: 11)
        let halfLife = UserState.affinityHalfLifeMs
        // 20 ids, 600 interactions at random times over 60 days, in no particular order.
        let interactions = (0..<600).map { _ in
            (id: Int64(1 + rng.next() % 20), w: [1.0, 2, 3, 5][Int(rng.next() % 4)], t: monday + Int64(rng.next() % UInt64(60 * day)))
        }
        var list: [UserState.Affinity] = []
        for x in interactions { UserState.bump(&list, id: x.id, by: x.w, at: x.t) }
        #expect(list.count == 20)
        let now = monday + 61 * day
        for a in list {
            let expected = interactions.filter { $0.id == a.id }.reduce(0.0) { $0 + $1.w * pow(2, -Double(now - $1.t) / halfLife) }
            #expect(abs(a.decayed(to: now) - expected) <= 1e-9 * expected, "id \(a.id)")
        }

        // A full list: a new id takes the place of the lowest score (the same one at any time).
        var full: [UserState.Affinity] = []
        for id in 1...Int64(UserState.affinityLimit) {
            UserState.bump(&full, id: id, by: Double(1 + rng.next() % 5), at: monday + Int64(rng.next() % UInt64(30 * day)))
        }
        let weakest = full.min { $0.decayed(to: now) < $1.decayed(to: now) }!.id
        #expect(weakest == full.min { $0.decayed(to: monday) < $1.decayed(to: monday) }!.id)
        let before = Set(full.map(\.id))
        UserState.bump(&full, id: 1000, by: 1, at: now)
        #expect(full.count == UserState.affinityLimit)
        #expect(Set(full.map(\.id)) == before.subtracting([weakest]).union([1000]))
        // Of equal scores, the higher id gives way, wherever it sits in the list.
        var tied = (1...Int64(UserState.affinityLimit)).reversed().map { UserState.Affinity(id: $0, level: 1) }
        tied[5].level = 2
        UserState.bump(&tied, id: 1000, by: 1, at: now)
        #expect(Set(tied.map(\.id)) == Set(1...Int64(UserState.affinityLimit)).subtracting([Int64(UserState.affinityLimit)]).union([1000]))

        // A score as of a time (how version-1 snapshots kept it) reads back, and halves per half-life.
        let old = UserState.Affinity(id: 1, score: 3.5, atMs: monday)
        #expect(abs(old.decayed(to: monday) - 3.5) <= 1e-12)
        #expect(abs(old.decayed(to: monday + Int64(halfLife)) - 1.75) <= 1e-12)
    }

    @Test("the mixed sequence follows event time: a history folded in any order gives the same latest 20")
    func sequenceFollowsEventTime() throws {
        // 40 events of one user a minute apart (views, carts, one-line purchases), folded in
        // time order and shuffled: the profile's recent items are the same, newest first.
        let events: [Event] = (0..<40).map { n in
            let at = monday + Int64(n) * minute
            return n % 7 == 0
                ? purchase(user: 9, at: at, total: 5, item: Int64(100 + n))
                : event(n % 3 == 0 ? .addToCart : .view, user: 9, at: at, item: Int64(100 + n))
        }
        var rng = SystemRandomNumberGenerator()
        let a = FeatureState(partitions: 1), b = FeatureState(partitions: 1)
        a.foldAll(events)
        b.foldAll(events.shuffled(using: &rng))
        let pa = try #require(a.view(9)).profile, pb = try #require(b.view(9)).profile
        #expect(pa.recentItems == (120..<140).reversed().map { Int64($0) })
        #expect(pb.recentItems == pa.recentItems)
        // A late event older than the whole full list is left out; one inside it takes its place.
        var recent = TimedRecentItems(items: Array(1...20), seconds: (1...20).map { UInt32($0 * 10) })
        recent.insert(99, atMs: 5_000)
        #expect(recent.items == Array(1...20))
        recent.insert(98, atMs: 105_000)
        #expect(recent.items == Array(2...10) + [98] + Array(11...20))
    }

    @Test("recent items keep the latest 20, oldest first, through the ring's wrap and a round trip")
    func recentItemsRing() {
        var recent = RecentItems()
        var plain: [Int64] = []
        for item in Int64(1)...75 {
            recent.push(item)
            plain.append(item)
            #expect(recent.items == Array(plain.suffix(UserState.recentLimit)), "after \(item)")
        }
        // Restored from its items (as a snapshot does), it is equal and goes on the same way.
        var restored = RecentItems(recent.items)
        #expect(restored == recent)
        restored.push(76)
        recent.push(76)
        #expect(restored.items == Array(57...76))
        #expect(restored == recent)
        #expect(RecentItems(Array(1...30)).items == Array(11...30))
    }

    /// The documented rule, written plainly.
    static func inWindow(_ t: Int64, _ w: Window, now: Int64) -> Bool {
        let (size, length): (Int64, Int64) =
            switch w {
            case .hour1: (minute, 60)
            case .hours24: (hour, 24)
            case .days7: (day, 7)
            case .days30: (day, 30)
            }
        return t / size <= now / size && t / size > now / size - length
    }

    @Test("RFM quintiles and lifecycle tags on hand-made histories")
    func rfmAndTags() {
        let now = monday + 100 * day
        let state = FeatureState(partitions: 1)
        var events: [Event] = []
        // Users 1...10: user u bought u times, the last time u days ago, 10*u each.
        for u in Int64(1)...10 {
            for k in 0..<u { events.append(purchase(user: u, at: now - u * day - (u - 1 - k) * 20 * day, total: Double(10 * u))) }
        }
        // User 20 registered yesterday and only browses cheap things.
        var register = event(.register, user: 20, at: now - day)
        register.register = Register()
        events.append(register)
        // User 30: last seen 40 days ago.
        events.append(event(.view, user: 30, at: now - 40 * day, item: 9))
        events.append(event(.view, user: 99, at: now))  // moves the clock to `now`
        state.foldAll(events.sorted { $0.timestampMs < $1.timestampMs })
        #expect(state.watermarkMs == now)

        // Frequencies 1...10: cut points at ranks 2, 4, 6, 8 -> 3, 5, 7, 9.
        let cuts = state.rfmCuts(refresh: true)
        #expect(cuts.frequency == [3, 5, 7, 9])
        #expect(cuts.buyers == 10)
        let top = state.view(10)!.rfm
        #expect(top.frequency == 10)
        #expect(top.monetary == 1000)
        #expect(top.averageOrderValue == 100)
        #expect(top.recencyDays == 10)
        #expect((top.rScore, top.fScore, top.mScore) == (1, 5, 5))
        let bottom = state.view(1)!.rfm
        #expect((bottom.rScore, bottom.fScore, bottom.mScore) == (5, 1, 1))
        #expect(state.view(5)!.rfm.fScore == 3)

        // Tags by the documented rules.
        let tags = { (u: Int64) in state.view(u)!.tags(state.view(u)!.rfm) }
        #expect(tags(20).contains("new") && tags(20).contains("active"))
        #expect(tags(30) == ["dormant"])
        #expect(tags(10).contains("high-value"))
        // User 10: bought every 20 days, last 10 days ago: not churn risk. User 9 too.
        #expect(!tags(10).contains("churn-risk"))
        #expect(tags(1).contains("active") && !tags(1).contains("high-value"))
        // User 8: frequency score 4 (8 >= 7), recency 8 days -> score 2: not loyal.
        #expect(!tags(8).contains("loyal"))
        // Two purchases under 10 each: a bargain hunter.
        let cheap = FeatureState(partitions: 1)
        cheap.foldAll([
            purchase(user: 5, at: monday, total: 4), purchase(user: 5, at: monday + day, total: 6),
            purchase(user: 6, at: monday, total: 500),
        ])
        #expect(cheap.view(5)!.tags(cheap.view(5)!.rfm).contains("bargain-hunter"))
        #expect(!cheap.view(6)!.tags(cheap.view(6)!.rfm).contains("bargain-hunter"))
    }

    @Test("churn risk: a regular buyer who stopped")
    func churnRisk() {
        let state = FeatureState(partitions: 1)
        // Bought every 5 days, four times, then 20 days of browsing only.
        var events = (0..<4).map { purchase(user: 1, at: monday + Int64($0) * 5 * day, total: 20) }
        events.append(event(.view, user: 1, at: monday + 35 * day, item: 3))
        state.foldAll(events)
        let v = state.view(1)!
        #expect(v.user.purchaseIntervals.mean == 5)
        #expect(v.recencyDays == 20)
        #expect(v.tags(v.rfm).contains("churn-risk"))
    }

    @Test("risk features: order velocity, identifiers, failures, z-score, sharing, country")
    func riskFeatures() {
        let state = FeatureState(partitions: 1)
        let t = monday + 12 * hour
        var events: [Event] = []
        var reg = event(.register, user: 1, at: t - 2 * day)
        reg.register = Register()
        reg.deviceId = "p:dev-a"
        events.append(reg)
        var profile = event(.profileUpdate, user: 1, at: t - 2 * day + 1)
        var p = ProfileUpdate()
        p.region = "France"
        profile.profile = p
        events.append(profile)
        // Amounts 10, 12, 11, 9 over the past days, then 200 now.
        for (i, amount) in [10.0, 12, 11, 9].enumerated() {
            var e = purchase(user: 1, at: t - Int64(4 - i) * 6 * hour, total: amount)
            e.deviceId = "p:dev-a"
            e.ip = "p:ip-\(i)"
            events.append(e)
        }
        for k in 0..<3 {
            var pay = event(.payment, user: 1, at: t - Int64(k + 1) * 10 * minute)
            var payment = Payment()
            payment.success = false
            payment.amount = 200
            payment.instrument = "p:card-\(k)"
            pay.payment = payment
            events.append(pay)
        }
        var login = event(.login, user: 1, at: t - 2 * hour)  // outside the hour
        login.login = Login()
        events.append(login)
        var big = purchase(user: 1, at: t, total: 200)
        big.deviceId = "p:dev-b"
        big.ip = "p:ip-shared"
        big.ipCountry = "Brazil"
        events.append(big)
        // Two other users on the same IP.
        for u in Int64(2)...3 {
            var e = event(.view, user: u, at: t - minute, item: 5)
            e.ip = "p:ip-shared"
            events.append(e)
        }
        state.foldAll(events.sorted { $0.timestampMs < $1.timestampMs })
        let r = state.view(1)!.risk
        #expect(r.accountAgeDays == 2)
        #expect(r.secondsSinceSignup == 2 * 86_400)
        #expect(r.orders1m == 1 && r.orders10m == 1 && r.orders1h == 1)
        #expect(r.orders24h == 4)  // 200 now, and 12, 11, 9 within 24 hours (10 was exactly 24h ago)
        #expect(r.amount24h == 232)
        #expect(r.distinctDevices24h == 2 && r.distinctDevices7d == 2)
        #expect(r.distinctIps24h == 4 && r.distinctIps7d == 5)
        #expect(r.distinctInstruments24h == 3)
        #expect(r.failedPayments1h == 3)
        #expect(r.failedLogins1h == 0)
        #expect(r.usersSharingIp == 2)
        #expect(r.usersSharingDevice == 0)
        #expect(r.newDevice)
        #expect(!r.firstPurchase)
        // Prior amounts 10, 12, 11, 9: mean 10.5, population std sqrt(1.25).
        #expect(abs(r.amountZscore - (200 - 10.5) / 1.25.squareRoot()) < 1e-9)
        #expect(r.ipCountry == "Brazil")
        #expect(r.ipCountryMismatch)
    }

    @Test("events the service cannot use are counted and skipped; out-of-order ones still count")
    func unusableEvents() {
        let state = FeatureState(partitions: 1)
        var unknownKind = event(.view, user: 1, at: monday)
        unknownKind.kind = EventKind(rawValue: 99)
        var noOrder = event(.purchase, user: 1, at: monday)
        noOrder.order = nil
        let noPayment = event(.payment, user: 1, at: monday)
        let cases: [(Event, FeatureState.Observation?)] = [
            (event(.view, user: 1, at: monday + hour, item: 5), .unknownItem),
            (unknownKind, .unknownKind),
            (event(.view, user: 0, at: monday), .invalidUser),
            (event(.view, user: -4, at: monday), .invalidUser),
            (noOrder, .missingDetail),
            (noPayment, .missingDetail),
            (event(.search, user: 1, at: monday), .outOfOrder),
            (event(.search, user: 1, at: monday + 2 * hour), nil),
        ]
        for (i, (e, expected)) in cases.enumerated() {
            #expect(state.fold(e, partition: 0, offset: UInt64(i)) == expected, "case \(i)")
        }
        let v = state.view(1)!
        #expect(v.lifetime(.search) == 2)
        #expect(v.lifetime(.view) == 1)
        #expect(state.users.count == 1)
        // The offset moves past every event read, used or not.
        var stored = StoredEvent()
        stored.offset = 41
        #expect(state.fold(stored, partition: 0) == .missingDetail)
        #expect(state.offsets == [42])
    }

    @Test("a snapshot restores the same profiles; a damaged one is refused with a typed error")
    func snapshotRoundTrip() throws {
        let state = FeatureState(partitions: 2)
        var events: [Event] = []
        for u in Int64(1)...50 {
            for k in 0..<Int64(u % 7 + 1) {
                var e = event(
                    k % 3 == 0 ? .addToCart : .view, user: u, at: monday + u * minute + k * hour, item: k + 1, category: k % 4 + 1)
                e.deviceId = "p:d\(u % 5)"
                e.ip = "p:i\(u % 3)"
                e.channel = k % 2 == 0 ? "app" : "web"
                events.append(e)
            }
            if u % 3 == 0 { events.append(purchase(user: u, at: monday + u * minute + 10 * hour, total: Double(u))) }
        }
        var upsert = event(.itemUpsert, user: 1, at: monday)
        var item = ItemUpsert()
        item.itemId = 1
        item.brand = "Acme"
        item.price = 30
        item.title = "Anvil"
        upsert.item = item
        state.foldAll([upsert] + events.sorted { $0.timestampMs < $1.timestampMs })
        _ = state.erase(7, ends: [3, 4])
        let bytes = state.snapshot()
        let restored = try FeatureState.restore(bytes)
        #expect(restored.snapshot() == bytes)

        // Streamed into a file in small chunks (many flushes, one mid-record at most per
        // user): the same bytes, and the file appears only on commit.
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/state.snapshot"
        let file = try AtomicFileWriter(path: path)
        let size = try state.writeSnapshot(to: file, chunkBytes: 256)
        #expect(size == bytes.count)
        #expect(!FileManager.default.fileExists(atPath: path))
        try file.commit()
        #expect(try AtomicFile.read(path) == bytes)
        // A writer dropped without a commit leaves the committed file as it was.
        let abandoned = try AtomicFileWriter(path: path)
        _ = try FeatureState(partitions: 1).writeSnapshot(to: abandoned)
        _ = consume abandoned
        #expect(try AtomicFile.read(path) == bytes)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        for u in Int64(1)...50 {
            #expect(restored.view(u)?.profile == state.view(u)?.profile)
        }
        #expect(restored.items[1]?.profile(nowMs: restored.watermarkMs) == state.items[1]?.profile(nowMs: state.watermarkMs))
        #expect(restored.erased[7] == [3, 4])

        var damaged = bytes
        damaged[damaged.count / 2] ^= 0x10
        #expect(throws: StoreError.self) { try FeatureState.restore(damaged) }
        #expect(throws: StoreError.self) { try FeatureState.restore(Array(bytes.prefix(bytes.count - 9))) }
    }

    @Test("an erased user's events below the erasure offsets are never folded again")
    func erasure() {
        let state = FeatureState(partitions: 1)
        state.foldAll([event(.view, user: 3, at: monday, item: 1), event(.view, user: 4, at: monday, item: 1)])
        #expect(state.erase(3, ends: [2]))
        #expect(state.users[3] == nil)
        // A rebuild from the log replays offsets 0 and 1: user 3 stays erased.
        let rebuilt = FeatureState(partitions: 1)
        rebuilt.erased = state.erased
        #expect(rebuilt.fold(event(.view, user: 3, at: monday, item: 1), partition: 0, offset: 0) == .erasedUser)
        // A later event (a returning user) is folded.
        #expect(rebuilt.fold(event(.view, user: 3, at: monday + 1, item: 1), partition: 0, offset: 2) == .unknownItem)
        #expect(rebuilt.users[3] != nil)
    }

    @Test("snapshots are paced so that folding waits for them at most a tenth of the time")
    func snapshotPacing() {
        #expect(FeatureService.snapshotDelay(interval: .seconds(10), lastEncoding: .zero) == .seconds(10))
        #expect(FeatureService.snapshotDelay(interval: .seconds(10), lastEncoding: .milliseconds(500)) == .seconds(10))
        let encoding = Duration.seconds(8)
        let delay = FeatureService.snapshotDelay(interval: .seconds(10), lastEncoding: encoding)
        #expect(encoding / (encoding + delay) <= 0.1)
    }
}
