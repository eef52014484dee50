import Profiles
import Wire

/// A user's profile read at one point in time (`nowMs`): windows, RFM scores, tags and risk
/// features are computed here from `UserState`, so they are always as of the read.
struct ProfileView {
    static let kindCount = 17
    static let dayMs = 86_400_000.0
    static let topAffinities = 10

    let user: UserState
    let state: FeatureState
    let nowMs: Int64
    let cuts: RfmCuts
    init(_ user: UserState, state: FeatureState, nowMs: Int64, cuts: RfmCuts) {
        self.user = user
        self.state = state
        self.nowMs = nowMs
        self.cuts = cuts
    }

    /// `[kind][window]` counts at `nowMs` (one scan of the buckets; read it once).
    var counts: [[UInt32]] { user.windows.allCounts(kinds: Self.kindCount, nowMs: nowMs) }

    func lifetime(_ kind: EventKind) -> UInt64 { UInt64(user.lifetime[Int(kind.rawValue)]) }

    var signupMs: Int64 { user.signupMs > 0 ? user.signupMs : user.firstSeenMs }
    var browseDepth: Double { user.sessions == 0 ? 0 : Double(lifetime(.view)) / Double(user.sessions) }
    var returnRate: Double { user.orders == 0 ? 0 : Double(lifetime(.refund)) / Double(user.orders) }
    var meanRating: Double { lifetime(.review) == 0 ? 0 : user.ratingSum / Double(lifetime(.review)) }
    var recencyDays: Double { user.orders == 0 ? 0 : Double(nowMs - user.lastPurchaseMs) / Self.dayMs }
    var averageOrderValue: Double { user.orders == 0 ? 0 : user.monetary / Double(user.orders) }

    var rfm: Rfm {
        var r = Rfm()
        r.recencyDays = recencyDays
        r.frequency = user.orders
        r.monetary = user.monetary
        r.averageOrderValue = averageOrderValue
        if user.orders > 0 {
            (r.rScore, r.fScore, r.mScore) = cuts.scores(recencyDays: recencyDays, frequency: Double(user.orders), monetary: user.monetary)
        }
        return r
    }

    /// Shares of weighted interactions per price band (sum 1, or all 0 without prices).
    var priceShares: [Double] {
        let total = user.priceBands.reduce(0, +)
        guard total > 0 else { return [Double](repeating: 0, count: PriceBands.count) }
        return user.priceBands.map { Double($0 / total) }
    }

    // MARK: Tags

    /// Lifecycle tags, by these rules (days at the read time, RFM scores as in `RfmCuts`):
    /// - new: signed up (or first seen) at most 7 days ago
    /// - active: an event in the last 7 days
    /// - dormant: no event for more than 30 days
    /// - churn-risk: 2+ purchases, not dormant, and the last purchase longer ago than
    ///   both 14 days and twice the user's mean purchase interval
    /// - high-value: monetary score 5 (the top fifth of spenders)
    /// - loyal: frequency score 4+ and recency score 3+
    /// - bargain-hunter: 2+ purchases, and 60% or more of the weight of priced interactions
    ///   (views, carts, purchases; `UserState.weight`) under 50
    func tags(_ rfm: Rfm) -> [String] {
        var tags: [String] = []
        let sinceSignup = Double(nowMs - signupMs) / Self.dayMs
        let sinceSeen = Double(nowMs - user.lastSeenMs) / Self.dayMs
        if sinceSignup <= 7 { tags.append("new") }
        if sinceSeen <= 7 { tags.append("active") }
        let dormant = sinceSeen > 30
        if dormant { tags.append("dormant") }
        if user.orders >= 2 && !dormant && recencyDays > max(14, 2 * user.purchaseIntervals.mean) { tags.append("churn-risk") }
        if rfm.mScore == 5 { tags.append("high-value") }
        if rfm.fScore >= 4 && rfm.rScore >= 3 { tags.append("loyal") }
        if user.orders >= 2 {
            let shares = priceShares
            if shares[0] + shares[1] >= 0.6 { tags.append("bargain-hunter") }
        }
        return tags
    }

    // MARK: Risk

    var risk: RiskFeatures {
        var r = RiskFeatures()
        let signup = signupMs
        r.accountAgeDays = Double(nowMs - signup) / Self.dayMs
        r.secondsSinceSignup = Double(nowMs - signup) / 1000
        for o in user.recentOrders where o.ms <= nowMs {
            let age = nowMs - o.ms
            if age < 60_000 { r.orders1m += 1; r.amount1m += o.amount }
            if age < 600_000 { r.orders10m += 1; r.amount10m += o.amount }
            if age < 3_600_000 { r.orders1h += 1; r.amount1h += o.amount }
            if age < 86_400_000 { r.orders24h += 1; r.amount24h += o.amount }
        }
        for id in user.identifiers where id.lastMs <= nowMs {
            let age = nowMs - id.lastMs
            let day = age < 86_400_000
            let week = age < UserState.identifierMemoryMs
            switch UserState.Identifier.Kind(rawValue: id.kind) {
            case .device:
                if day { r.distinctDevices24h += 1 }
                if week { r.distinctDevices7d += 1 }
            case .ip:
                if day { r.distinctIps24h += 1 }
                if week { r.distinctIps7d += 1 }
            case .instrument:
                if day { r.distinctInstruments24h += 1 }
                if week { r.distinctInstruments7d += 1 }
            case nil: break
            }
        }
        if user.lastDevice != 0 {
            r.usersSharingDevice = UInt32(state.deviceUsers.others(of: user.lastDevice, than: user.id, asOf: nowMs))
        }
        if user.lastIP != 0 { r.usersSharingIp = UInt32(state.ipUsers.others(of: user.lastIP, than: user.id, asOf: nowMs)) }
        for f in user.failures where f.ms <= nowMs && nowMs - f.ms < 3_600_000 {
            if f.kind == UInt8(EventKind.payment.rawValue) { r.failedPayments1h += 1 }
            if f.kind == UInt8(EventKind.login.rawValue) { r.failedLogins1h += 1 }
        }
        let prior = user.priorOrders
        if prior.count >= 2 && prior.std > 0 { r.amountZscore = (user.lastOrderAmount - prior.mean) / prior.std }
        r.firstPurchase = user.orders == 1
        r.newDevice = user.newDevice
        r.ipCountry = user.lastIPCountry
        r.ipCountryMismatch =
            !user.region.isEmpty && !user.lastIPCountry.isEmpty && user.region.lowercased() != user.lastIPCountry.lowercased()
        return r
    }

    // MARK: The whole profile

    var profile: UserProfile {
        // Recommend's fields (recent items, category affinities, price bands), then the rest.
        var p = recommendProfile
        p.age = user.age
        p.gender = Gender(rawValue: user.gender)
        p.region = user.region
        p.interests = user.interests
        p.signupMs = user.signupMs
        p.firstSeenMs = user.firstSeenMs
        p.lastSeenMs = user.lastSeenMs
        let counts = self.counts
        for k in 1..<Self.kindCount where user.lifetime[k] > 0 {
            var c = KindCounts()
            c.kind = EventKind(rawValue: Int32(k))
            c.counts = windowCounts(counts[k], lifetime: UInt64(user.lifetime[k]))
            p.counts.append(c)
        }
        p.distinctItems = UInt32(user.distinctItems.count)
        p.distinctCategories = UInt32(user.distinctCategories.count)
        p.sessions = user.sessions
        p.browseDepth = browseDepth
        p.purchaseIntervalMeanDays = user.purchaseIntervals.mean
        p.purchaseIntervalStdDays = user.purchaseIntervals.std
        p.returnRate = returnRate
        p.reviewCount = UInt32(clamping: lifetime(.review))
        p.meanRating = meanRating
        let rfm = self.rfm
        p.rfm = rfm
        p.brands = top(user.brands).map { a in
            var x = Affinity()
            x.id = a.id
            x.name = Int(a.id) < state.brandNames.count ? state.brandNames[Int(a.id)] : ""
            x.score = a.score
            return x
        }
        p.activeHours = (0..<24).map { user.clock[$0] }
        p.weekdays = (24..<31).map { user.clock[$0] }
        p.preferredChannel = preferred(user.channels)
        p.preferredDevice = preferred(user.devices)
        p.tags = tags(rfm)
        p.hasSegment = user.segment >= 0
        p.segmentId = max(0, user.segment)
        p.risk = risk
        return p
    }

    /// What recommend reads of the profile, and nothing else (`GetProfileRequest.recommend_only`):
    /// its cost does not grow with what the rest of the profile holds.
    var recommendProfile: UserProfile {
        var p = UserProfile()
        p.userId = user.id
        p.categories = top(user.categories).map { a in
            var x = Affinity()
            x.id = a.id
            x.score = a.score
            return x
        }
        p.priceBands = priceShares
        p.recentViews = user.recentViews.items.reversed()
        p.recentCarts = user.recentCarts.items.reversed()
        p.recentPurchases = user.recentPurchases.items.reversed()
        p.recentItems = user.recentItems.items.reversed()
        p.recentPurchaseMs = user.recentPurchaseTimes.items.reversed()
        return p
    }

    private func top(_ list: [UserState.Affinity]) -> [(id: Int64, score: Double)] {
        list.map { (id: $0.id, score: $0.decayed(to: nowMs)) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
            .prefix(Self.topAffinities).map { $0 }
    }

    func preferred(_ tallies: [UserState.Tally]) -> String {
        var best: UserState.Tally?
        for t in tallies where t.count > (best?.count ?? 0) { best = t }
        return best?.value ?? ""
    }
}

func windowCounts(_ w: [UInt32], lifetime: UInt64) -> WindowCounts {
    var c = WindowCounts()
    c.last1h = w[Window.hour1.rawValue]
    c.last24h = w[Window.hours24.rawValue]
    c.last7d = w[Window.days7.rawValue]
    c.last30d = w[Window.days30.rawValue]
    c.lifetime = lifetime
    return c
}
