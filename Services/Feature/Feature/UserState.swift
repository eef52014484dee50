import CMemory
import DataStructures
import Foundation
import Profiles
import Wire

/// Everything the feature service keeps about one user, folded event by event. Read-side
/// values (windows, RFM scores, tags, risk features) are computed from it at a point in
/// time by `ProfileView`.
final class UserState {
    static let recentLimit = 20
    static let affinityLimit = 32
    static let distinctLimit = 4096
    static let deviceMemory = 64
    /// A new session starts after this much inactivity when events carry no session id.
    static let sessionGapMs: Int64 = 30 * 60_000
    static let affinityHalfLifeMs: Double = 7 * 86_400_000

    let id: Int64
    var partition: UInt16 = 0

    // Basic
    var age: Int32 = 0
    var gender: Int32 = 0
    var region = ""
    var interests: [String] = []
    var signupMs: Int64 = 0
    var firstSeenMs: Int64 = 0
    var lastSeenMs: Int64 = 0

    // Behaviour
    var windows = WindowedCounts()
    /// Events per kind, ever (index: the kind's raw value, below `ProfileView.kindCount`).
    /// Fixed-size counters live inline in the object: no allocation per user, no pointer to
    /// follow while folding. 32 bits each (a line less of the object to fetch per event),
    /// saturating at 4,294,967,295 events of one kind.
    var lifetime = InlineArray<17, UInt32>(repeating: 0)
    var distinctItems = HashSet32()
    var distinctCategories = HashSet32()
    var sessions: UInt32 = 0
    var lastSession: UInt64 = 0
    var lastActivityMs: Int64 = 0
    var lastPurchaseMs: Int64 = 0
    var purchaseIntervals = RunningStats()
    var ratingSum: Double = 0
    var monetary: Double = 0

    // Interests
    var categories: [Affinity] = []
    var brands: [Affinity] = []
    /// Weighted interactions per price band (`PriceBands`).
    var priceBands: [Float] = []
    /// Events per hour of the day (0-23), then per weekday from Monday (24-30), UTC.
    var clock = InlineArray<31, UInt32>(repeating: 0)
    var channels: [Tally] = []
    var devices: [Tally] = []
    var recentViews = RecentItems()
    var recentCarts = RecentItems()
    var recentPurchases = RecentItems()
    /// The latest items of any interaction (view, click, favourite, cart, purchase line), in
    /// event-time order: what the sequence model reads.
    var recentItems = TimedRecentItems()
    /// When each of `recentPurchases` was bought (the same ring positions).
    var recentPurchaseTimes = RecentItems()
    var segment: Int32 = -1

    // Risk
    /// Orders of the last 24 hours: (time, amount).
    var recentOrders: [TimedAmount] = []
    /// Failed payments and logins of the last hour.
    var failures: [TimedKind] = []
    /// Devices, IPs and payment instruments of the last 7 days, with when each was last used.
    var identifiers: [Identifier] = []
    /// Devices ever used (newest last, at most `deviceMemory`), for the new-device flag.
    var knownDevices: [UInt64] = []
    var lastDevice: UInt64 = 0
    var lastIP: UInt64 = 0
    var lastIPCountry = ""
    var newDevice = false
    /// Order amounts before the latest order, and the latest order's amount.
    var priorOrders = RunningStats()
    var lastOrderAmount: Double = 0
    var orders: UInt32 = 0
    /// The latest event's channel family and browser family (`ChannelFamily`, `BrowserFamily`).
    var lastChannel: UInt8 = 0
    var lastBrowser: UInt8 = 0

    init(id: Int64) { self.id = id }

    /// A time-decayed score: the sum over interactions of weight x 2^(-age / half-life).
    /// Kept as `level`, the log2 of the score as of the epoch, so the score at `t` is
    /// 2^(level - t / half-life): decaying needs no update, interactions in any order add up
    /// exactly, and which of two scores is lower is the same at every time (finding the
    /// weakest of a full list compares levels, with no exponential per entry).
    struct Affinity: Equatable {
        var id: Int64
        var level: Double

        func decayed(to nowMs: Int64) -> Double {
            exp2(level - Double(nowMs) / UserState.affinityHalfLifeMs)
        }

        /// Adds an interaction of weight `w` at `ts`.
        mutating func add(_ w: Double, at ts: Int64) {
            let other = Self.level(w, at: ts)
            let (hi, lo) = level >= other ? (level, other) : (other, level)
            level = hi + log2(1 + exp2(lo - hi))
        }

        static func level(_ w: Double, at ts: Int64) -> Double {
            log2(w) + Double(ts) / UserState.affinityHalfLifeMs
        }
    }

    struct Tally: Equatable {
        var value: String
        var count: UInt32
    }

    struct TimedAmount: Equatable {
        var ms: Int64
        var amount: Double
    }

    struct TimedKind: Equatable {
        var ms: Int64
        var kind: UInt8
    }

    struct Identifier: Equatable {
        enum Kind: UInt8 { case device = 0, ip = 1, instrument = 2 }
        var hash: UInt64
        var kind: UInt8
        var lastMs: Int64
    }
}

extension UserState.Affinity {
    /// An affinity of `score` as of `atMs` (how snapshots before version 2 kept it).
    init(id: Int64, score: Double, atMs: Int64) {
        self.init(id: id, level: log2(score) + Double(atMs) / UserState.affinityHalfLifeMs)
    }
}

// MARK: Prefetching

extension UserState: Identified {
    /// The arrays the prefetch stages read, by their place in `prefetchLayout.buffers`.
    enum Prefetched: Int, CaseIterable {
        case windows, distinctItems, distinctCategories, categories, brands, priceBands, channels, devices
        case identifiers, knownDevices, recentViews, recentOrders, failures
    }

    /// The cache lines a fold touches (see `FeatureState.fold(_:partition:noting:)`).
    static let prefetchLayout: PrefetchLayout = {
        let p = UserState(id: 1)
        p.windows = WindowedCounts(buckets: [.init(minute: 0, count: 1, kind: 0, tier: 0)])
        p.distinctItems = HashSet32(hashes: [1])
        p.distinctCategories = HashSet32(hashes: [2])
        p.categories = [Affinity(id: 1, level: 0)]
        p.brands = [Affinity(id: 2, level: 0)]
        p.priceBands = [1]
        p.channels = [Tally(value: "a", count: 1)]
        p.devices = [Tally(value: "b", count: 1)]
        p.identifiers = [Identifier(hash: 1, kind: 0, lastMs: 0)]
        p.knownDevices = [1]
        p.recentViews.push(1)
        p.recentOrders = [TimedAmount(ms: 0, amount: 0)]
        p.failures = [TimedKind(ms: 0, kind: 0)]
        let buffers = Prefetched.allCases.map { array -> UnsafeRawPointer in
            switch array {
            case .windows: bufferAddress(p.windows.buckets)
            case .distinctItems: p.distinctItems.buffer
            case .distinctCategories: p.distinctCategories.buffer
            case .categories: bufferAddress(p.categories)
            case .brands: bufferAddress(p.brands)
            case .priceBands: bufferAddress(p.priceBands)
            case .channels: bufferAddress(p.channels)
            case .devices: bufferAddress(p.devices)
            case .identifiers: bufferAddress(p.identifiers)
            case .knownDevices: bufferAddress(p.knownDevices)
            case .recentViews: p.recentViews.buffer
            case .recentOrders: bufferAddress(p.recentOrders)
            case .failures: bufferAddress(p.failures)
            }
        }
        return PrefetchLayout(p, buffers: buffers)
    }()
}

extension UserState {
    /// The fold's last prefetch stage for the user at `object`, once its lines and the first
    /// line of each of its arrays are in cache: asks for the lines deeper in the arrays that
    /// folding an event of `kind` on `item` in `category` reads. Reads the object's memory
    /// raw: reading its arrays as arrays retained each one.
    @inline(__always)
    static func prefetchDeep(_ object: UnsafeRawPointer, kind: EventKind, item: Int64, category: Int64) {
        let layout = prefetchLayout
        guard layout.buffers.count == Prefetched.allCases.count else { return }
        func array(_ a: Prefetched) -> RawArray { layout.array(a.rawValue, of: object) }
        WindowedCounts.prefetchNewest(array(.windows))
        guard weight(kind) > 0 else { return }
        if item != 0 { HashSet32.prefetch(item, in: array(.distinctItems)) }
        if category != 0 { HashSet32.prefetch(category, in: array(.distinctCategories)) }
        let categories = array(.categories)
        let brands = array(.brands)
        categories.prefetch(from: 0, count: categories.count, stride: MemoryLayout<Affinity>.stride)
        brands.prefetch(from: 0, count: brands.count, stride: MemoryLayout<Affinity>.stride)
    }
}

// MARK: Folding

extension UserState {
    /// Interaction weights for affinities and price bands.
    static func weight(_ kind: EventKind) -> Double {
        switch kind {
        case .view, .click: 1
        case .favorite: 2
        case .addToCart: 3
        case .purchase: 5
        default: 0
        }
    }

    /// Folds one of this user's events. `inOrder` is false for an event older than the
    /// user's latest activity: it still counts, but does not move sequences (sessions, intervals,
    /// recent items). `catalog` answers the brand and price of known items.
    /// `share` hears of each device and IP new to the user (for the users-sharing counts).
    func fold(_ e: borrowing Event, nowMs: Int64, inOrder: Bool, catalog: (Int64) -> ItemState?, share: (UInt64, Identifier.Kind) -> Void) {
        let ts = e.timestampMs
        let kind = e.kind
        let k = Int(kind.rawValue)
        if lifetime[k] < .max { lifetime[k] += 1 }
        windows.add(kind: UInt8(k), atMs: ts, nowMs: nowMs)
        // Labels (the risk team's verdicts) and impressions (what recommend showed) are
        // about the user, not by them: counted, but not activity.
        guard kind != .label && kind != .impression else { return }
        if firstSeenMs == 0 || ts < firstSeenMs { firstSeenMs = ts }
        if ts > lastSeenMs { lastSeenMs = ts }
        countClock(ts)
        if !e.channel.isEmpty {
            Self.tally(&channels, e.channel)
            if inOrder { lastChannel = ChannelFamily(channel: e.channel).rawValue }
        }
        if !e.userAgent.isEmpty, inOrder { lastBrowser = BrowserFamily(userAgent: e.userAgent).rawValue }
        if !e.deviceId.isEmpty {
            let device = StableHash.fnv1a(e.deviceId)
            Self.tally(&devices, e.deviceId)
            newDevice = !knownDevices.contains(device)
            if newDevice {
                knownDevices.appendSmall(device)
                if knownDevices.count > Self.deviceMemory { knownDevices.removeFirst() }
            }
            lastDevice = device
            if use(device, .device, ts, nowMs: nowMs) || !inOrder { share(device, .device) }
        }
        if !e.ip.isEmpty {
            lastIP = StableHash.fnv1a(e.ip)
            if use(lastIP, .ip, ts, nowMs: nowMs) || !inOrder { share(lastIP, .ip) }
        }
        if !e.ipCountry.isEmpty { lastIPCountry = e.ipCountry }
        if inOrder { countSession(e) }

        switch kind {
        case .view, .click, .favorite, .addToCart:
            let item = catalog(e.itemId)
            let category = e.categoryId != 0 ? e.categoryId : item?.categoryId ?? 0
            met(e.itemId, category: category)
            if inOrder && e.itemId != 0 {
                if kind == .view { recentViews.push(e.itemId) }
                if kind == .addToCart { recentCarts.push(e.itemId) }
            }
            // The sequence takes a late event at its place in time.
            if e.itemId != 0 { recentItems.insert(e.itemId, atMs: ts) }
            interact(kind, category: category, item: item, price: item?.price ?? 0, at: ts)
        case .purchase:
            foldPurchase(e, inOrder: inOrder, catalog: catalog)
        case .payment:
            if let p = e.paymentRef?.value {
                if !p.instrument.isEmpty { use(StableHash.fnv1a(p.instrument), .instrument, ts, nowMs: nowMs) }
                if !p.success { fail(kind, ts) }
            }
        case .login:
            if let l = e.loginRef, !l.value.success { fail(kind, ts) }
        case .review:
            if let r = e.reviewRef { ratingSum += Double(r.value.rating) }
        case .register:
            if signupMs == 0 || ts < signupMs { signupMs = ts }
        case .profileUpdate:
            if let p = e.profileRef?.value {
                if p.age > 0 { age = p.age }
                if p.gender.rawValue != 0 { gender = p.gender.rawValue }
                if !p.region.isEmpty { region = p.region }
                if !p.interests.isEmpty { interests = p.interests }
            }
        default:
            break
        }
        prune(nowMs: nowMs)
    }

    /// Counts the item and its category among those the user met (viewed, clicked, favourited,
    /// carted or bought): the profile's distinct items and categories.
    private func met(_ item: Int64, category: Int64) {
        if item != 0 { distinctItems.insert(item, limit: Self.distinctLimit) }
        if category != 0 { distinctCategories.insert(category, limit: Self.distinctLimit) }
    }

    /// An order's amount: its total, else the sum of its lines.
    static func orderAmount(_ e: borrowing Event) -> Double {
        let amount = e.orderRef?.value.total ?? 0
        guard amount == 0, let lines = e.orderRef?.value.lines else { return amount }
        return lines.reduce(0) { $0 + $1.unitPrice * Double(max(1, $1.quantity)) }
    }

    private func foldPurchase(_ e: borrowing Event, inOrder: Bool, catalog: (Int64) -> ItemState?) {
        let ts = e.timestampMs
        let lines = e.orderRef?.value.lines ?? []
        let amount = Self.orderAmount(e)
        if lines.isEmpty && e.itemId != 0 {
            let item = catalog(e.itemId)
            let category = e.categoryId != 0 ? e.categoryId : item?.categoryId ?? 0
            met(e.itemId, category: category)
            interact(.purchase, category: category, item: item, price: item?.price ?? 0, at: ts)
            if inOrder {
                recentPurchases.push(e.itemId)
                recentPurchaseTimes.push(ts)
            }
            recentItems.insert(e.itemId, atMs: ts)
        }
        for line in lines {
            let item = catalog(line.itemId)
            let category = line.categoryId != 0 ? line.categoryId : item?.categoryId ?? 0
            met(line.itemId, category: category)
            interact(.purchase, category: category, item: item, price: line.unitPrice != 0 ? line.unitPrice : item?.price ?? 0, at: ts)
            if inOrder && line.itemId != 0 {
                recentPurchases.push(line.itemId)
                recentPurchaseTimes.push(ts)
            }
            if line.itemId != 0 { recentItems.insert(line.itemId, atMs: ts) }
        }
        monetary += amount
        if inOrder {
            if lastPurchaseMs > 0 { purchaseIntervals.add(Double(ts - lastPurchaseMs) / 86_400_000) }
            lastPurchaseMs = ts
        } else if ts > lastPurchaseMs {
            lastPurchaseMs = ts
        }
        if orders > 0 { priorOrders.add(lastOrderAmount) }
        lastOrderAmount = amount
        orders += 1
        recentOrders.appendSmall(TimedAmount(ms: ts, amount: amount))
    }

    private func interact(_ kind: EventKind, category: Int64, item: ItemState?, price: Double, at ts: Int64) {
        let w = Self.weight(kind)
        guard w > 0 else { return }
        if category != 0 { Self.bump(&categories, id: category, by: w, at: ts) }
        if let brand = item?.brandID, brand != 0 { Self.bump(&brands, id: brand, by: w, at: ts) }
        if price > 0 {
            if priceBands.isEmpty {
                // One band per edge and one above (a literal: SmallArrays.swift).
                priceBands = [0, 0, 0, 0, 0]
                assert(priceBands.count == PriceBands.count)
            }
            priceBands[PriceBands.band(price)] += Float(w)
        }
    }

    private func countClock(_ ts: Int64) {
        clock[ClockFields.hour(ms: ts)] &+= 1
        clock[24 + ClockFields.weekday(ms: ts)] &+= 1
    }

    private func countSession(_ e: borrowing Event) {
        let key = e.sessionId.isEmpty ? 0 : StableHash.fnv1a(e.sessionId)
        let newSession: Bool
        if sessions == 0 {
            newSession = true
        } else if key != 0 {
            newSession = key != lastSession
        } else {
            newSession = lastSession != 0 || e.timestampMs - lastActivityMs > Self.sessionGapMs
        }
        if newSession { sessions += 1 }
        lastSession = key
        lastActivityMs = e.timestampMs
    }

    /// Records a use of a device, IP or instrument; true when it is new in the last 7 days.
    /// Identifiers unused for 7 days are forgotten when a new one is added (the only time
    /// the list grows), once it holds 8: not on every event, which scanned it each time.
    @discardableResult
    private func use(_ hash: UInt64, _ kind: Identifier.Kind, _ ts: Int64, nowMs: Int64) -> Bool {
        let expired = nowMs - Self.identifierMemoryMs
        if let i = identifiers.firstIndex(where: { $0.hash == hash && $0.kind == kind.rawValue }) {
            let stale = identifiers[i].lastMs <= expired
            identifiers[i].lastMs = max(identifiers[i].lastMs, ts)
            return stale
        }
        if identifiers.count >= 8 { identifiers.removeAll { $0.lastMs <= expired } }
        identifiers.appendSmall(Identifier(hash: hash, kind: kind.rawValue, lastMs: ts))
        return true
    }

    /// How long an unused identifier is remembered: the longest window the risk features
    /// count distinct devices, IPs and instruments over (7 days).
    static let identifierMemoryMs: Int64 = 7 * 86_400_000

    private func fail(_ kind: EventKind, _ ts: Int64) {
        failures.appendSmall(TimedKind(ms: ts, kind: UInt8(kind.rawValue)))
    }

    /// Forgets the orders and failures that fell out of the longest window each serves.
    func prune(nowMs: Int64) {
        if let first = recentOrders.first, first.ms <= nowMs - 86_400_000 { recentOrders.removeAll { $0.ms <= nowMs - 86_400_000 } }
        if let first = failures.first, first.ms <= nowMs - 3_600_000 { failures.removeAll { $0.ms <= nowMs - 3_600_000 } }
    }

    static func tally(_ list: inout [Tally], _ value: String) {
        if let i = list.firstIndex(where: { $0.value == value }) {
            list[i].count += 1
        } else if list.count < 8 {
            list.appendSmall(Tally(value: value, count: 1))
        }
    }

    /// Adds an interaction of weight `w` at `ts` to an affinity. When the list is full, the
    /// entry with the lowest score gives way (of equal scores, the higher id), replaced in
    /// place: one pass finds both the entry and the weakest, and nothing moves.
    static func bump(_ list: inout [Affinity], id: Int64, by w: Double, at ts: Int64) {
        let weakest: Int? = list.withUnsafeMutableBufferPointer { l in
            var weakest = 0
            for i in l.indices {
                if l[i].id == id {
                    l[i].add(w, at: ts)
                    return nil
                }
                if l[i].level < l[weakest].level || (l[i].level == l[weakest].level && l[i].id > l[weakest].id) { weakest = i }
            }
            return weakest
        }
        guard let weakest else { return }
        let entry = Affinity(id: id, level: Affinity.level(w, at: ts))
        if list.count < affinityLimit { list.appendSmall(entry) } else { list[weakest] = entry }
    }
}

/// The latest `UserState.recentLimit` values of one list. A ring once full: a push overwrites
/// the oldest instead of shifting the other 19 down.
struct RecentRing<Element: Equatable>: Equatable {
    private var ring: [Element] = []
    /// Where the oldest value is, once the ring is full.
    private var head: UInt8 = 0

    init() {}

    /// The latest values of `values` (oldest first).
    init(_ values: [Element]) {
        ring = Array(values.suffix(UserState.recentLimit))
    }

    mutating func push(_ value: Element) {
        guard ring.count == UserState.recentLimit else { return ring.appendSmall(value) }
        ring[Int(head)] = value
        head = Int(head) + 1 == ring.count ? 0 : head + 1
    }

    /// Oldest first.
    var items: [Element] { Array(ring[Int(head)...] + ring[..<Int(head)]) }

    /// The newest value.
    var newest: Element? { ring.isEmpty ? nil : ring[(Int(head) + ring.count - 1) % ring.count] }

    static func == (a: Self, b: Self) -> Bool { a.items == b.items }

    /// The ring's buffer (for `PrefetchLayout`).
    var buffer: UnsafeRawPointer { bufferAddress(ring) }
}

/// The latest items of one kind (or purchase times), in the order they came.
typealias RecentItems = RecentRing<Int64>

/// The latest `UserState.recentLimit` items of any kind in event-time order, each with the
/// second it was met: a late event takes its place by its time (events of one second keep
/// their order); one older than every item of a full list is left out. Two rings while events
/// come in time order; a late event lays them out oldest first and inserts.
struct TimedRecentItems: Equatable {
    private var ring = RecentRing<Int64>()
    private var times = RecentRing<UInt32>()

    init() {}

    /// A restored list: the latest `recentLimit` of `items`, with their seconds (0: unknown).
    init(items: [Int64], seconds: [UInt32]) {
        ring = RecentRing(items)
        times = RecentRing(seconds.count == items.count ? seconds : [UInt32](repeating: 0, count: items.count))
    }

    /// Oldest first.
    var items: [Int64] { ring.items }
    var seconds: [UInt32] { times.items }

    mutating func insert(_ item: Int64, atMs ms: Int64) {
        let second = UInt32(clamping: max(0, ms / 1000))
        guard let newest = times.newest, second < newest else {
            ring.push(item)
            times.push(second)
            return
        }
        // A late event: oldest first, then its place by time.
        var items = ring.items, seconds = times.items
        var at = items.count
        while at > 0 && seconds[at - 1] > second { at -= 1 }
        if at == 0 && items.count >= UserState.recentLimit { return }
        items.insert(item, at: at)
        seconds.insert(second, at: at)
        (ring, times) = (RecentRing(items), RecentRing(seconds))
    }
}

/// Mean and spread of a stream (Welford).
struct RunningStats: Equatable {
    var count: UInt32 = 0
    var mean: Double = 0
    var m2: Double = 0

    mutating func add(_ x: Double) {
        count += 1
        let d = x - mean
        mean += d / Double(count)
        m2 += d * (x - mean)
    }

    /// Population standard deviation (0 below two values).
    var std: Double { count < 2 ? 0 : (m2 / Double(count)).squareRoot() }
}
