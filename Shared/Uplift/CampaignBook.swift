import Synchronization
public import Wire

/// The campaigns as the log tells them: their definitions (`campaign` events), who each
/// reached and on which side (`campaign_sent` events), and the orders of the users reached
/// (`purchase` events), with erasures applied. The model service folds it to measure
/// campaigns; recommend folds it (without orders) to apply their boosts. It keeps its
/// offsets: a service reads the log's `kinds` from the start and is caught up at the end.
public final class CampaignBook: Sendable {
    public struct Campaign: Sendable {
        public var definition: CampaignDefinition
        public var definedMs: Int64
    }

    /// A user reached by a campaign: held out in control or sent the offer, and when.
    public struct Reach: Sendable, Equatable {
        public var control: Bool
        public var atMs: Int64

        public init(control: Bool, atMs: Int64) {
            self.control = control
            self.atMs = atMs
        }
    }

    /// An order of a user some campaign reached.
    public struct Purchase: Sendable, Equatable {
        public var atMs: Int64
        public var total: Double
        public var discount: Double
        public var coupon: String
    }

    struct State {
        var campaigns: [String: Campaign] = [:]
        var reached: [String: [Int64: Reach]] = [:]
        /// How many campaigns reached each user: a purchase asks this once, however many campaigns there are.
        var campaignsReaching: [Int64: Int] = [:]
        var purchases: [Int64: [Purchase]] = [:]
        /// Orders carrying each coupon code, whoever placed them.
        var couponOrders: [String: Int] = [:]
        var offsets: [UInt64] = []
    }

    /// The kinds the book reads; `orders` false leaves purchases out (recommend).
    public static func kinds(orders: Bool) -> [EventKind] {
        [.campaign, .campaignSent, .erasure] + (orders ? [.purchase] : [])
    }

    private let state = Mutex(State())

    public init() {}

    /// Reads start at offset 0 of each of the log's `partitions`.
    public func start(partitions: Int) {
        state.withLock { s in if s.offsets.count != partitions { s.offsets = Array(repeating: 0, count: partitions) } }
    }

    public func offset(_ partition: Int) -> UInt64 { state.withLock { $0.offsets[partition] } }

    /// Whether every partition has been read up to `ends`.
    public func caughtUp(to ends: [UInt64]) -> Bool {
        state.withLock { s in s.offsets.count == ends.count && zip(s.offsets, ends).allSatisfy { $0 >= $1 } }
    }

    /// Folds one read of `partition`, then moves its offset to `next`.
    public func fold(_ events: [StoredEvent], partition: Int, next: UInt64) {
        state.withLock { s in
            for stored in events {
                guard let e = stored.event else { continue }
                Self.fold(e, into: &s)
            }
            s.offsets[partition] = max(s.offsets[partition], next)
        }
    }

    static func fold(_ e: Event, into s: inout State) {
        switch e.kind {
        case .campaign:
            guard let c = e.campaign, !c.name.isEmpty else { return }
            if c.deleted {
                s.campaigns[c.name] = nil
                for user in (s.reached.removeValue(forKey: c.name) ?? [:]).keys {
                    s.campaignsReaching[user] = s.campaignsReaching[user].flatMap { $0 > 1 ? $0 - 1 : nil }
                }
            } else {
                s.campaigns[c.name] = Campaign(definition: c, definedMs: e.timestampMs)
            }
        case .campaignSent:
            guard let c = e.campaignSent, e.userId > 0, s.campaigns[c.campaign] != nil else { return }
            // The first word on a user stands: a later event cannot move them across.
            if s.reached[c.campaign, default: [:]][e.userId] == nil {
                s.reached[c.campaign, default: [:]][e.userId] = Reach(control: c.control, atMs: e.timestampMs)
                s.campaignsReaching[e.userId, default: 0] += 1
            }
        case .purchase:
            guard let order = e.order else { return }
            if !order.couponCode.isEmpty { s.couponOrders[order.couponCode, default: 0] += 1 }
            guard s.campaignsReaching[e.userId] != nil else { return }
            s.purchases[e.userId, default: []].append(
                Purchase(atMs: e.timestampMs, total: order.total, discount: order.discount, coupon: order.couponCode))
        case .erasure:
            s.purchases[e.userId] = nil
            guard s.campaignsReaching.removeValue(forKey: e.userId) != nil else { return }
            for name in s.reached.keys { s.reached[name]?[e.userId] = nil }
        default: return
        }
    }

    /// The campaign named `name`, or every campaign when `name` is empty, by name.
    public func campaigns(named name: String = "") -> [Campaign] {
        state.withLock { s in
            name.isEmpty ? s.campaigns.values.sorted { $0.definition.name < $1.definition.name } : s.campaigns[name].map { [$0] } ?? []
        }
    }

    /// Who the campaign reached, and on which side.
    public func reached(_ campaign: String) -> [Int64: Reach] { state.withLock { $0.reached[campaign] ?? [:] } }

    /// The orders of `users` (each reached by some campaign), in the order they were read.
    public func purchases(of users: some Sequence<Int64>) -> [Int64: [Purchase]] {
        state.withLock { s in
            var found: [Int64: [Purchase]] = [:]
            for u in users { if let p = s.purchases[u] { found[u] = p } }
            return found
        }
    }

    /// Orders carrying `code`, whoever placed them.
    public func ordersCarrying(_ code: String) -> Int { state.withLock { $0.couponOrders[code] ?? 0 } }

    /// The boosts `user` gets on `surface` at `nowMs`: the offers of the running campaigns that
    /// sent them one.
    public func boosts(user: Int64, surface: String, nowMs: Int64) -> [(campaign: String, offer: CampaignOffer)] {
        state.withLock { s in
            var found: [(String, CampaignOffer)] = []
            for (name, c) in s.campaigns {
                let d = c.definition
                guard let offer = d.offer, offer.boostFactor > 0, !(offer.boostItems.isEmpty && offer.boostCategories.isEmpty),
                    offer.surface.isEmpty || offer.surface == surface, d.startMs <= nowMs, nowMs < d.endMs,
                    let reach = s.reached[name]?[user], !reach.control
                else { continue }
                found.append((name, offer))
            }
            return found.sorted { $0.0 < $1.0 }
        }
    }
}

/// What a campaign's users did over one period: per-user outcomes of each arm, and the
/// orders that redeemed its coupon (treated users' only) with the discount they gave.
public struct CampaignOutcomes: Sendable {
    public var treatment: [UserOutcome] = []
    public var control: [UserOutcome] = []
    public var redemptions = 0
    public var discounts = 0.0

    /// The orders in [from, to) of the users `reached`; a redeeming order's discount is the
    /// one it carries, else the offer's share of its total, else the offer's amount.
    public init(
        reached: [Int64: CampaignBook.Reach], purchases: [Int64: [CampaignBook.Purchase]], offer: CampaignOffer?, from: Int64, to: Int64
    ) {
        for (user, reach) in reached.sorted(by: { $0.key < $1.key }) {
            var outcome = UserOutcome(orders: 0, revenue: 0)
            for p in purchases[user] ?? [] where p.atMs >= from && p.atMs < to {
                outcome.orders += 1
                outcome.revenue += p.total
                if !reach.control, let offer, !offer.couponCode.isEmpty, p.coupon == offer.couponCode {
                    redemptions += 1
                    discounts +=
                        p.discount > 0 ? p.discount : offer.discountShare > 0 ? offer.discountShare * p.total : offer.discountAmount
                }
            }
            if reach.control { control.append(outcome) } else { treatment.append(outcome) }
        }
    }

    /// Each arm's share of users with an order between `from` and each of `ends`.
    public static func cumulativeConversion(
        reached: [Int64: CampaignBook.Reach], purchases: [Int64: [CampaignBook.Purchase]], from: Int64, ends: [Int64]
    ) -> (treatment: [Double], control: [Double]) {
        var firsts: [(control: Bool, first: Int64?)] = []
        for (user, reach) in reached {
            firsts.append((reach.control, (purchases[user] ?? []).filter { $0.atMs >= from }.map(\.atMs).min()))
        }
        let nt = Double(max(1, firsts.filter { !$0.control }.count)), nc = Double(max(1, firsts.filter(\.control).count))
        var t: [Double] = [], c: [Double] = []
        for end in ends {
            t.append(Double(firsts.filter { !$0.control && ($0.first.map { $0 < end } ?? false) }.count) / nt)
            c.append(Double(firsts.filter { $0.control && ($0.first.map { $0 < end } ?? false) }.count) / nc)
        }
        return (t, c)
    }
}
