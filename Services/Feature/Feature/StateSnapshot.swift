import DataStructures
import Store
import Wire

/// The feature state as one snapshot file (`SnapshotWriter`): offsets and state together,
/// so a restart resumes exactly where the snapshot was taken.
extension FeatureState {
    static let snapshotMagic = "PFS1"
    /// 2: affinities as levels (`UserState.Affinity`); 1 (read too): as a score and its time.
    /// 5: the mixed sequence keeps the second of each item, in event-time order.
    /// 7: the partitions owned and the other partitions' buyer totals. 8: the audiences and
    /// their sizes.
    static let snapshotVersion: UInt32 = 8

    /// The snapshot in memory (tests compare states by it; the service streams it to its file
    /// with `writeSnapshot(to:)`).
    func snapshot() -> [UInt8] {
        var w = SnapshotWriter(magic: Self.snapshotMagic, version: Self.snapshotVersion)
        try! encode(into: &w)  // in memory, nothing throws
        return w.finish()
    }

    /// The same bytes streamed into `file` a few megabytes at a time (what the service writes):
    /// no buffer of the state's size. Returns the size written; the caller commits the file.
    func writeSnapshot(to file: AtomicFileWriter, chunkBytes: Int = 4 << 20) throws -> Int {
        var w = SnapshotWriter(magic: Self.snapshotMagic, version: Self.snapshotVersion, streamingTo: file, chunkBytes: chunkBytes)
        try encode(into: &w)
        return try w.finishStreaming()
    }

    private func encode(into w: inout SnapshotWriter) throws {
        w.array(offsets) { $0.u64($1) }
        w.i64(watermarkMs)
        w.u64(version)
        w.array(brandNames) { $0.string($1) }
        w.array(erased.sorted { $0.key < $1.key }) { w, e in
            w.i64(e.key)
            w.array(e.value) { $0.u64($1) }
        }
        // Users and items in id order (the same bytes whatever order they came in).
        w.count(users.count)
        try users.forEachInIDOrder(prefetching: UserState.prefetchLayout) {
            $0.write(&w)
            try w.flushIfFull()
        }
        w.count(items.count)
        try items.forEachInIDOrder(prefetching: ItemState.prefetchLayout) {
            $0.write(&w)
            try w.flushIfFull()
        }
        for table in [deviceUsers, ipUsers] {
            let entries = table.sortedEntries
            w.count(entries.count)
            for e in entries {
                w.u64(e.key)
                w.array(e.users) {
                    $0.i64($1.user)
                    $0.i64($1.firstMs)
                }
                try w.flushIfFull()
            }
        }
        // Owned partitions: a flag, then the list (no flag: every partition).
        w.u8(owned == nil ? 0 : 1)
        w.array((owned ?? []).sorted()) { $0.u32(UInt32($1)) }
        w.array(otherBuyers.sorted { $0.key < $1.key }) { w, b in
            w.i64(b.key)
            w.u32(b.value.orders)
            w.f64(b.value.monetary)
            w.i64(b.value.lastPurchaseMs)
        }
        w.array(audiences.sorted { $0.key < $1.key }) { w, a in
            w.string(a.value.definition.name)
            w.string(a.value.definition.expression)
            w.string(a.value.definition.description)
            w.string(a.value.definition.definedBy)
            w.i64(a.value.definedMs)
            w.array(a.value.sizes) {
                $0.i64($1.atMs)
                $0.u32($1.size)
            }
        }
    }

    static func restore(_ bytes: [UInt8]) throws -> FeatureState {
        var r = try SnapshotReader(bytes, magic: snapshotMagic)
        guard (1...snapshotVersion).contains(r.version) else {
            throw StoreError(.corrupt, "feature snapshot version \(r.version) is not 1...\(snapshotVersion)")
        }
        let offsets = try r.array { try $0.u64() }
        let s = FeatureState(partitions: offsets.count)
        s.offsets = offsets
        s.watermarkMs = try r.i64()
        s.version = try r.u64()
        s.brandNames = try r.array { try $0.string() }
        s.brandIDs = Dictionary(s.brandNames.enumerated().dropFirst().map { ($1, Int64($0)) }, uniquingKeysWith: { a, _ in a })
        for (user, ends) in try r.array({ r in (try r.i64(), try r.array { try $0.u64() }) }) { s.erased[user] = ends }
        let users = try r.array { try UserState(from: &$0) }
        s.users.reserveCapacity(users.count)
        for u in users { s.users.insert(u) }
        let items = try r.array { try ItemState(from: &$0) }
        s.items.reserveCapacity(items.count)
        for i in items { s.items.insert(i) }
        for k in 0..<2 {
            // Before version 6 a sighting had no time: seen since ever.
            let timed = r.version >= 6
            let entries = try r.array { r in
                (
                    key: try r.u64(),
                    users: try r.array { SharingTable.Sighting(user: try $0.i64(), firstMs: timed ? try $0.i64() : .min) }
                )
            }
            let table = SharingTable(limit: sharingLimit, entries: entries)
            if k == 0 { s.deviceUsers = table } else { s.ipUsers = table }
        }
        if r.version >= 7 {
            let some = try r.u8() != 0
            let owned = try r.array { Int(try $0.u32()) }
            s.owned = some ? Set(owned) : nil
            for (user, totals) in try r.array({ r in
                (try r.i64(), BuyerTotals(orders: try r.u32(), monetary: try r.f64(), lastPurchaseMs: try r.i64()))
            }) {
                s.otherBuyers[user] = totals
            }
        }
        if r.version >= 8 {
            for a in try r.array({ r in
                var d = AudienceDefinition()
                (d.name, d.expression, d.description, d.definedBy) = (try r.string(), try r.string(), try r.string(), try r.string())
                return StoredAudience(
                    definition: d, definedMs: try r.i64(), sizes: try r.array { (atMs: try $0.i64(), size: try $0.u32()) })
            }) {
                s.audiences[a.definition.name] = a
            }
        }
        guard r.isAtEnd else { throw StoreError(.corrupt, "feature snapshot has trailing bytes") }
        return s
    }
}

extension WindowedCounts {
    func write(_ w: inout SnapshotWriter) {
        w.array(buckets) { w, b in
            w.u32(b.minute)
            w.count(Int(b.count))
            w.u8(b.kind)
            w.u8(b.tier)
        }
    }

    init(from r: inout SnapshotReader) throws {
        self.init(
            buckets: try r.array { r in
                Bucket(minute: try r.u32(), count: UInt32(clamping: try r.count()), kind: try r.u8(), tier: try r.u8())
            })
    }
}

extension HashSet32 {
    /// The hashes, ascending (the same bytes whatever order they were inserted in), sorted in
    /// a temporary buffer: no allocation per user while the fold waits.
    func write(_ w: inout SnapshotWriter) {
        w.count(count)
        withSortedHashes { for h in $0 { w.u32(h) } }
    }

    init(from r: inout SnapshotReader) throws {
        self.init(hashes: try r.array { try $0.u32() })
    }
}

extension RunningStats {
    func write(_ w: inout SnapshotWriter) {
        w.u32(count)
        w.f64(mean)
        w.f64(m2)
    }

    init(from r: inout SnapshotReader) throws {
        self.init(count: try r.u32(), mean: try r.f64(), m2: try r.f64())
    }
}

extension UserState {
    func write(_ w: inout SnapshotWriter) {
        w.i64(id)
        w.u16(partition)
        w.i32(age)
        w.i32(gender)
        w.string(region)
        w.array(interests) { $0.string($1) }
        w.i64(signupMs)
        w.i64(firstSeenMs)
        w.i64(lastSeenMs)
        windows.write(&w)
        w.counts(lifetime)
        distinctItems.write(&w)
        distinctCategories.write(&w)
        w.u32(sessions)
        w.u64(lastSession)
        w.i64(lastActivityMs)
        w.i64(lastPurchaseMs)
        purchaseIntervals.write(&w)
        w.f64(ratingSum)
        w.f64(monetary)
        func affinities(_ list: [Affinity]) {
            w.array(list) { w, a in
                w.i64(a.id)
                w.f64(a.level)
            }
        }
        affinities(categories)
        affinities(brands)
        w.array(priceBands) { $0.f32($1) }
        // None before the first activity (the format of the list this replaced).
        w.counts(clock, noneWhenZero: true)
        func tallies(_ list: [Tally]) {
            w.array(list) { w, t in
                w.string(t.value)
                w.u32(t.count)
            }
        }
        tallies(channels)
        tallies(devices)
        // Separate calls, not a loop over an array literal: that allocated per user.
        w.array(recentViews.items) { $0.i64($1) }
        w.array(recentCarts.items) { $0.i64($1) }
        w.array(recentPurchases.items) { $0.i64($1) }
        w.array(recentPurchaseTimes.items) { $0.i64($1) }
        w.array(recentItems.items) { $0.i64($1) }
        w.array(recentItems.seconds) { $0.u32($1) }
        w.i32(segment)
        w.array(recentOrders) { w, o in
            w.i64(o.ms)
            w.f64(o.amount)
        }
        w.array(failures) { w, f in
            w.i64(f.ms)
            w.u8(f.kind)
        }
        w.array(identifiers) { w, i in
            w.u64(i.hash)
            w.u8(i.kind)
            w.i64(i.lastMs)
        }
        w.array(knownDevices) { $0.u64($1) }
        w.u64(lastDevice)
        w.u64(lastIP)
        w.string(lastIPCountry)
        w.bool(newDevice)
        priorOrders.write(&w)
        w.f64(lastOrderAmount)
        w.u32(orders)
        w.u8(lastChannel)
        w.u8(lastBrowser)
    }

    convenience init(from r: inout SnapshotReader) throws {
        self.init(id: try r.i64())
        partition = try r.u16()
        age = try r.i32()
        gender = try r.i32()
        region = try r.string()
        interests = try r.array { try $0.string() }
        signupMs = try r.i64()
        firstSeenMs = try r.i64()
        lastSeenMs = try r.i64()
        windows = try WindowedCounts(from: &r)
        try r.counts(into: &lifetime, of: "user \(id)'s kind counters")
        distinctItems = try HashSet32(from: &r)
        distinctCategories = try HashSet32(from: &r)
        sessions = try r.u32()
        lastSession = try r.u64()
        lastActivityMs = try r.i64()
        lastPurchaseMs = try r.i64()
        purchaseIntervals = try RunningStats(from: &r)
        ratingSum = try r.f64()
        monetary = try r.f64()
        let affinity = { (r: inout SnapshotReader) throws -> Affinity in
            r.version == 1
                ? Affinity(id: try r.i64(), score: try r.f64(), atMs: try r.i64()) : Affinity(id: try r.i64(), level: try r.f64())
        }
        categories = try r.array(affinity)
        brands = try r.array(affinity)
        priceBands = try r.array { try $0.f32() }
        try r.counts(into: &clock, of: "user \(id)'s clock", noneWhenZero: true)
        let tally = { (r: inout SnapshotReader) throws -> Tally in Tally(value: try r.string(), count: try r.u32()) }
        channels = try r.array(tally)
        devices = try r.array(tally)
        recentViews = RecentItems(try r.array { try $0.i64() })
        recentCarts = RecentItems(try r.array { try $0.i64() })
        recentPurchases = RecentItems(try r.array { try $0.i64() })
        // Versions before 3 kept no purchase times: unknown (0) for each purchase.
        recentPurchaseTimes = RecentItems(
            r.version >= 3 ? try r.array { try $0.i64() } : [Int64](repeating: 0, count: recentPurchases.items.count))
        // Versions before 4 kept no mixed sequence: it starts empty.
        let sequence = r.version >= 4 ? try r.array { try $0.i64() } : []
        // Versions before 5 kept no times: the sequence keeps its order, as of the start.
        recentItems = TimedRecentItems(items: sequence, seconds: r.version >= 5 ? try r.array { try $0.u32() } : [])
        segment = try r.i32()
        recentOrders = try r.array { r in TimedAmount(ms: try r.i64(), amount: try r.f64()) }
        failures = try r.array { r in TimedKind(ms: try r.i64(), kind: try r.u8()) }
        identifiers = try r.array { r in Identifier(hash: try r.u64(), kind: try r.u8(), lastMs: try r.i64()) }
        knownDevices = try r.array { try $0.u64() }
        lastDevice = try r.u64()
        lastIP = try r.u64()
        lastIPCountry = try r.string()
        newDevice = try r.bool()
        priorOrders = try RunningStats(from: &r)
        lastOrderAmount = try r.f64()
        orders = try r.u32()
        // Versions before 6 kept no families: other until the next event.
        if r.version >= 6 {
            lastChannel = try r.u8()
            lastBrowser = try r.u8()
        }
    }
}

extension ItemState {
    func write(_ w: inout SnapshotWriter) {
        w.i64(id)
        w.bool(inCatalog)
        w.i64(categoryId)
        w.string(brand)
        w.i64(brandID)
        w.f64(price)
        w.string(currency)
        w.i64(stock)
        w.string(title)
        w.array(tags) { $0.string($1) }
        windows.write(&w)
        w.counts(lifetime)
    }

    convenience init(from r: inout SnapshotReader) throws {
        self.init(id: try r.i64())
        inCatalog = try r.bool()
        categoryId = try r.i64()
        brand = try r.string()
        brandID = try r.i64()
        price = try r.f64()
        currency = try r.string()
        stock = try r.i64()
        title = try r.string()
        tags = try r.array { try $0.string() }
        windows = try WindowedCounts(from: &r)
        try r.counts(into: &lifetime, of: "item \(id)'s counters")
    }
}

/// Fixed-size counters, written as a list of counts (the format of the arrays they replaced).
extension SnapshotWriter {
    mutating func counts<let n: Int, T: FixedWidthInteger & UnsignedInteger>(_ values: InlineArray<n, T>, noneWhenZero: Bool = false) {
        if noneWhenZero && values.indices.allSatisfy({ values[$0] == 0 }) { return count(0) }
        count(n)
        for i in values.indices { count(Int(values[i])) }
    }
}

extension SnapshotReader {
    /// Reads what `counts(_:noneWhenZero:)` wrote; any other length is corrupt.
    mutating func counts<let n: Int, T: FixedWidthInteger & UnsignedInteger>(
        into values: inout InlineArray<n, T>, of what: @autoclosure () -> String, noneWhenZero: Bool = false
    ) throws {
        let stored = try count()
        if noneWhenZero && stored == 0 { return }
        guard stored == n else { throw StoreError(.corrupt, "\(what()): \(stored) counters, not \(n)") }
        for i in 0..<n { values[i] = T(clamping: try count()) }
    }
}
