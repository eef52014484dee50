import DataStructures
import Synchronization
import Wire

/// All the feature service's state: users, items, who shares which device and IP, and the
/// consumer's offset in each ingest partition. Folding is deterministic for each user
/// (a user's events live in one partition, in order), so a restart from a snapshot plus
/// the log, or a rebuild from the log alone, gives the same profiles. Not thread-safe:
/// `LiveFeatures` guards it.
public final class FeatureState {
    var users = ObjectTable<UserState>()
    var items = ObjectTable<ItemState>()
    /// Users seen with each device and IP (stable hash of the pseudonym), at most `sharingLimit`.
    var deviceUsers = SharingTable(limit: sharingLimit)
    var ipUsers = SharingTable(limit: sharingLimit)
    /// Brand names by id (id 0 is "no brand").
    var brandNames: [String] = [""]
    var brandIDs: [String: Int64] = [:]
    /// The event-time clock: the latest event timestamp folded. Windows, recency and tags
    /// are read at this time, so historical imports read as of their own end.
    var watermarkMs: Int64 = 0
    /// Next offset to read in each ingest partition.
    var offsets: [UInt64]
    /// Erased users, with each partition's end offset at erasure: their events below it are
    /// never folded again (a rebuild from the log does not bring them back).
    var erased: [Int64: [UInt64]] = [:]

    /// Whether the event of `user` at `offset` of `partition` came before their erasure.
    func isErased(_ user: Int64, partition: Int, offset: UInt64) -> Bool {
        guard !erased.isEmpty, let ends = erased[user] else { return false }
        return partition < ends.count && offset < ends[partition]
    }
    /// Changes with every fold and erasure.
    var version: UInt64 = 0
    /// The partitions whose users have profiles here (nil: every partition). A feature
    /// replica serving some partitions still folds every partition's item statistics, shared
    /// devices and IPs, and buyers' totals (`otherBuyers`), so what its profiles read of the
    /// rest of the shop is what one replica holding every user reads.
    var owned: Set<Int>?
    /// Recency, frequency and spend of the buyers in partitions not `owned`: the RFM cut
    /// points are quintiles over every buyer of the shop.
    var otherBuyers: [Int64: BuyerTotals] = [:]
    /// The audiences defined in the log, by name, and each one's measured sizes (among the
    /// users held here), oldest first (`Audiences.swift`).
    var audiences: [String: StoredAudience] = [:]

    func owns(_ partition: Int) -> Bool { owned?.contains(partition) ?? true }
    /// Cached cut points; refreshed by readers, hence its own lock.
    private let rfm = Mutex(RfmCuts())

    static let sharingLimit = 1000

    init(partitions: Int) {
        offsets = [UInt64](repeating: 0, count: partitions)
    }

    /// Why an event was not folded, or what was odd about one that was.
    public enum Observation: String, CaseIterable, Sendable {
        case unknownKind = "unknown_kind"
        case invalidUser = "invalid_user"
        case missingDetail = "missing_detail"
        case erasedUser = "erased_user"
        case unknownItem = "unknown_item"
        case outOfOrder = "out_of_order"
        /// An erasure event: the user was forgotten.
        case erasure

        /// The case's place in `allCases` (a run counts in an array: hashing a case hashes its string).
        var index: Int {
            switch self {
            case .unknownKind: 0
            case .invalidUser: 1
            case .missingDetail: 2
            case .erasedUser: 3
            case .unknownItem: 4
            case .outOfOrder: 5
            case .erasure: 6
            }
        }

        /// Whether the event was left out (the rest are folded, with a note).
        public var skipped: Bool {
            switch self {
            case .unknownKind, .invalidUser, .missingDetail, .erasedUser: true
            case .unknownItem, .outOfOrder, .erasure: false
            }
        }
    }

    /// Folds one stored event read from `partition`. Returns what was noticed (the event is
    /// folded unless it is one of unknown kind, invalid user, missing detail, erased user).
    @discardableResult
    func fold(_ stored: StoredEvent, partition: Int) -> Observation? {
        foldStored(stored.eventRef.map(Unmanaged.passUnretained), at: stored.offset, partition: partition)
    }

    /// The event stored at `offset` of `partition` (nil: a record without one; unretained, its
    /// owner keeps it): moves the partition's offset past it, then folds it.
    private func foldStored(_ event: Unmanaged<Boxed<Event>>?, at offset: UInt64, partition: Int) -> Observation? {
        if partition < offsets.count { offsets[partition] = max(offsets[partition], offset + 1) }
        guard let e = event else { return .missingDetail }
        return e._withUnsafeGuaranteedRef { box in box.withValue { fold($0, partition: partition, offset: offset) } }
    }

    /// Folds consecutive stored events of `partition`, counting what was noticed in `seen`.
    ///
    /// A fold touches a few dozen cache lines of its user and item, which with millions of
    /// users are rarely in cache. So the fold of event `i` runs behind four stages that
    /// only prefetch, for events further ahead: the table slots of event `i + 4d`, the
    /// objects of `i + 3d` (and for a user not seen before, the device and IP slots they will
    /// add to), the first line of their arrays for `i + 2d`, and for `i + d`, now that those
    /// arrays' headers are in cache, the lines deep in them this event reads (the newest
    /// window buckets, the viewed-item set's slot, the affinity lists). The misses of a few
    /// dozen events overlap instead of being paid one after another. Stages see users created
    /// since as absent (a hint missed, nothing more).
    func fold(_ run: ArraySlice<StoredEvent>, partition: Int, noting seen: inout [Observation: Int]) {
        // The events stay in their boxes (copying one out would retain each of its fields),
        // unretained: `run` owns them until the fold returns.
        let events = run.map { $0.eventRef.map(Unmanaged.passUnretained) }
        var steps = events.map { $0.map { $0._withUnsafeGuaranteedRef(FoldStep.init) } ?? FoldStep() }
        let d = PrefetchLayout.distance
        let users = UserState.prefetchLayout
        let items = ItemState.prefetchLayout
        var noted = [Int](repeating: 0, count: Observation.allCases.count)
        defer { for o in Observation.allCases where noted[o.index] > 0 { seen[o, default: 0] += noted[o.index] } }
        for i in 0..<(events.count + 4 * d) {
            if i < events.count {
                if steps[i].user != 0 { self.users.prefetchSlot(steps[i].user) }
                if steps[i].item != 0 { self.items.prefetchSlot(steps[i].item) }
            }
            if case let j = i - d, j >= 0 && j < events.count {
                if steps[j].user != 0 {
                    steps[j].userObject = self.users.prefetchObject(steps[j].user, users)
                    // A new user shares their device and IP: ask for those slots too.
                    if steps[j].userObject == nil, let e = events[j] { e._withUnsafeGuaranteedRef(prefetchSharing) }
                }
                if steps[j].item != 0 { steps[j].itemObject = self.items.prefetchObject(steps[j].item, items) }
            }
            if case let j = i - 2 * d, j >= 0 && j < events.count {
                if let u = steps[j].userObject { users.prefetchBuffers(of: u) }
                if let o = steps[j].itemObject { items.prefetchBuffers(of: o) }
            }
            if case let j = i - 3 * d, j >= 0 && j < events.count {
                let step = steps[j]
                if let u = step.userObject { UserState.prefetchDeep(u, kind: step.kind, item: step.item, category: step.category) }
                if let o = step.itemObject { ItemState.prefetchDeep(o) }
            }
            if case let j = i - 4 * d, j >= 0,
                let o = foldStored(events[j], at: run[run.startIndex + j].offset, partition: partition)
            {
                noted[o.index] += 1
            }
        }
    }

    private func prefetchSharing(of event: Boxed<Event>) {
        if !event.value.deviceId.isEmpty { deviceUsers.prefetch(StableHash.fnv1a(event.value.deviceId)) }
        if !event.value.ip.isEmpty { ipUsers.prefetch(StableHash.fnv1a(event.value.ip)) }
    }

    func fold(_ e: borrowing Event, partition: Int, offset: UInt64) -> Observation? {
        if e.kind == .erasure {
            guard e.userId > 0 else { return .invalidUser }
            // The log keeps the erasure and ingest removes the user's earlier events from it,
            // so a rebuild forgets them again: no list of erased ids is kept here.
            _ = erase(e.userId, ends: nil)
            return .erasure
        }
        if e.kind == .audience {
            guard let a = e.audienceRef?.value, !a.name.isEmpty else { return .missingDetail }
            defineAudience(a, atMs: e.timestampMs)
            version &+= 1
            return nil
        }
        // Campaigns are the model service's and recommend's to follow.
        if e.kind == .campaign || e.kind == .campaignSent { return nil }
        let kind = e.kind.rawValue
        guard kind >= 1 && kind < Int32(ProfileView.kindCount) else { return .unknownKind }
        if e.kind == .itemUpsert {
            guard let u = e.itemRef?.value, u.itemId != 0 else { return .missingDetail }
            let item = self.item(u.itemId)
            item.upsert(u, brandID: brandID(u.brand))
            version &+= 1
            return nil
        }
        guard e.userId > 0 else { return .invalidUser }
        if isErased(e.userId, partition: partition, offset: offset) { return .erasedUser }
        switch e.kind {
        case .purchase where e.orderRef == nil && e.itemId == 0: return .missingDetail
        case .payment where e.paymentRef == nil, .login where e.loginRef == nil, .review where e.reviewRef == nil,
            .profileUpdate where e.profileRef == nil:
            return .missingDetail
        default: break
        }
        version &+= 1
        // The shop's clock is its users' activity: impressions (recommend's, stamped when
        // served) and labels (stamped when an outcome is known) do not move it, so replayed
        // history keeps its windows while the suite serves it.
        let activity = e.kind != .label && e.kind != .impression
        if activity && e.timestampMs > watermarkMs { watermarkMs = e.timestampMs }
        let now = watermarkMs
        // The item of an interaction, looked up once for the user's fold and the item's statistics.
        let eventItem: ItemState?
        switch e.kind {
        case .view, .click, .addToCart, .favorite: eventItem = e.itemId != 0 ? self.item(e.itemId) : nil
        default: eventItem = nil
        }
        guard owns(partition) else {
            foldOtherUser(e, activity: activity)
            return countItems(e, eventItem, nowMs: now, observation: nil)
        }
        let user =
            users[e.userId]
            ?? {
                let u = UserState(id: e.userId)
                u.partition = UInt16(clamping: partition)
                users.insert(u)
                return u
            }()
        let inOrder = !activity || e.timestampMs >= user.lastSeenMs
        let observation: Observation? = inOrder ? nil : .outOfOrder
        user.fold(e, nowMs: now, inOrder: inOrder, catalog: { id in id == eventItem?.id ? eventItem : self.items[id] }) { hash, kind in
            let ms = e.timestampMs
            if kind == .device { self.deviceUsers.add(user.id, to: hash, at: ms) } else { self.ipUsers.add(user.id, to: hash, at: ms) }
        }

        return countItems(e, eventItem, nowMs: now, observation: observation)
    }

    /// What an event of a user in a partition not `owned` adds here: the sightings of their
    /// device and IP (the times one replica holding every user would note) and, for an order,
    /// their buyer totals.
    private func foldOtherUser(_ e: borrowing Event, activity: Bool) {
        guard activity else { return }
        let ms = e.timestampMs
        if !e.deviceId.isEmpty { deviceUsers.add(e.userId, to: StableHash.fnv1a(e.deviceId), at: ms) }
        if !e.ip.isEmpty { ipUsers.add(e.userId, to: StableHash.fnv1a(e.ip), at: ms) }
        if e.kind == .purchase { otherBuyers[e.userId, default: BuyerTotals()].add(UserState.orderAmount(e), at: ms) }
    }

    /// The item statistics of one event.
    private func countItems(_ e: borrowing Event, _ eventItem: ItemState?, nowMs now: Int64, observation: Observation?) -> Observation? {
        var observation = observation
        // Item statistics.
        if let item = eventItem {
            if !item.inCatalog { observation = observation ?? .unknownItem }
            if e.categoryId != 0 && item.categoryId == 0 { item.categoryId = e.categoryId }
            if e.kind == .view || e.kind == .click { item.count(.views, atMs: e.timestampMs, nowMs: now) }
            if e.kind == .addToCart { item.count(.carts, atMs: e.timestampMs, nowMs: now) }
        } else if e.kind == .purchase {
            let lines = e.orderRef?.value.lines ?? []
            for line in lines where line.itemId != 0 {
                let item = self.item(line.itemId)
                if !item.inCatalog { observation = observation ?? .unknownItem }
                if line.categoryId != 0 && item.categoryId == 0 { item.categoryId = line.categoryId }
                item.count(.purchases, atMs: e.timestampMs, nowMs: now)
            }
            if lines.isEmpty && e.itemId != 0 {
                let item = self.item(e.itemId)
                if !item.inCatalog { observation = observation ?? .unknownItem }
                item.count(.purchases, atMs: e.timestampMs, nowMs: now)
            }
        }
        return observation
    }

    /// Keeps profiles only for the users of `partitions` (nil: all) from now on. The users of
    /// the partitions given up leave, their buyer totals kept for the RFM cut points; a
    /// partition taken up starts empty (taking one over rebuilds the state from the log).
    func own(_ partitions: Set<Int>?) {
        owned = partitions
        version &+= 1
        guard let partitions else { return }
        let leaving = users.values.filter { !partitions.contains(Int($0.partition)) }
        for u in leaving {
            users.remove(u.id)
            if u.orders > 0 { otherBuyers[u.id] = BuyerTotals(orders: u.orders, monetary: u.monetary, lastPurchaseMs: u.lastPurchaseMs) }
        }
        otherBuyers = otherBuyers.filter { !partitions.contains(StableHash.partition(of: $0.key, among: max(1, offsets.count))) }
    }

    /// Takes every part of `other` (a state rebuilt beside this one) as its own.
    func take(_ other: FeatureState) {
        let next = max(version, other.version) &+ 1
        users = other.users
        items = other.items
        deviceUsers = other.deviceUsers
        ipUsers = other.ipUsers
        brandNames = other.brandNames
        brandIDs = other.brandIDs
        watermarkMs = other.watermarkMs
        offsets = other.offsets
        erased = other.erased
        owned = other.owned
        otherBuyers = other.otherBuyers
        version = next
    }

    func item(_ id: Int64) -> ItemState {
        if let item = items[id] { return item }
        let item = ItemState(id: id)
        items.insert(item)
        return item
    }

    func brandID(_ name: String) -> Int64 {
        guard !name.isEmpty else { return 0 }
        if let id = brandIDs[name] { return id }
        brandNames.append(name)
        let id = Int64(brandNames.count - 1)
        brandIDs[name] = id
        return id
    }

    /// Erases a user: their profile, their place in the sharing counts, and (through
    /// `ends`, the partitions' end offsets now, when given) every event of theirs already in
    /// the log.
    func erase(_ userID: Int64, ends: [UInt64]?) -> Bool {
        let existed = users.remove(userID) != nil || otherBuyers.removeValue(forKey: userID) != nil
        deviceUsers.remove(userID)
        ipUsers.remove(userID)
        erased[userID] = ends
        version &+= 1
        return existed
    }

    /// RFM quintile cut points, rebuilt on the first read after the state changed; with
    /// more than 2,000 buyers (a scan and three sorts of them), at most once a second, so
    /// reads between folds do not each pay for one.
    func rfmCuts(refresh: Bool) -> RfmCuts {
        rfm.withLock { cuts in
            guard refresh && cuts.version != version else { return cuts }
            if cuts.buyers > 2_000, let built = cuts.builtAt, built.duration(to: .now) < .seconds(1) { return cuts }
            cuts = RfmCuts(users: users.values, others: otherBuyers.values, nowMs: watermarkMs, version: version)
            return cuts
        }
    }
}

/// A buyer's orders, spend and latest order time: what the RFM cut points read of a user
/// whose profile another replica holds.
struct BuyerTotals: Equatable {
    var orders: UInt32 = 0
    var monetary: Double = 0
    var lastPurchaseMs: Int64 = 0

    mutating func add(_ amount: Double, at ms: Int64) {
        orders += 1
        monetary += amount
        lastPurchaseMs = max(lastPurchaseMs, ms)
    }
}

/// What the prefetch stages of `FeatureState.fold(_:partition:noting:)` know of one event.
struct FoldStep {
    var user: Int64 = 0
    var item: Int64 = 0
    var category: Int64 = 0
    var kind = EventKind(rawValue: 0)
    /// The user and item objects found by the second stage (unretained; nil when absent).
    var userObject: UnsafeRawPointer?
    var itemObject: UnsafeRawPointer?

    init() {}

    init(_ box: Boxed<Event>) {
        user = box.value.userId
        item = box.value.itemId
        category = box.value.categoryId
        kind = box.value.kind
    }
}

/// Quintile cut points of recency (days since the last purchase), frequency (purchases)
/// and monetary value (total spent) over every user with a purchase. A user's score is
/// 1 + the number of cut points they beat (lower recency beats, higher frequency and
/// monetary beat): 5 is the best fifth. Equal values get equal scores.
struct RfmCuts: Equatable {
    var recency: [Double] = []
    var frequency: [Double] = []
    var monetary: [Double] = []
    var version: UInt64 = .max
    var buyers = 0
    var builtAt: ContinuousClock.Instant?

    init() {}

    init(users: some Collection<UserState>, others: some Collection<BuyerTotals> = [], nowMs: Int64, version: UInt64) {
        var r: [Double] = []
        var f: [Double] = []
        var m: [Double] = []
        for u in users where u.orders > 0 {
            r.append(-Double(nowMs - u.lastPurchaseMs) / 86_400_000)
            f.append(Double(u.orders))
            m.append(u.monetary)
        }
        for b in others where b.orders > 0 {
            r.append(-Double(nowMs - b.lastPurchaseMs) / 86_400_000)
            f.append(Double(b.orders))
            m.append(b.monetary)
        }
        buyers = r.count
        self.version = version
        self.builtAt = .now
        guard !r.isEmpty else { return }
        func cuts(_ values: inout [Double]) -> [Double] {
            values.sort()
            return (1...4).map { values[min(values.count - 1, $0 * values.count / 5)] }
        }
        recency = cuts(&r)
        frequency = cuts(&f)
        monetary = cuts(&m)
    }

    func scores(recencyDays: Double, frequency f: Double, monetary m: Double) -> (Int32, Int32, Int32) {
        guard !recency.isEmpty else { return (0, 0, 0) }
        let r = 1 + recency.filter { $0 <= -recencyDays }.count
        let fs = 1 + frequency.filter { $0 <= f }.count
        // Nothing spent (a shop that sends no prices) is the lowest fifth, never the top.
        let ms = m > 0 ? 1 + monetary.filter { $0 <= m }.count : 1
        return (Int32(r), Int32(fs), Int32(ms))
    }
}
