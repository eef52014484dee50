import Foundation
import Math
public import Recommenders
import ServiceKit
import Store
public import Wire

/// What the model service trains its recommenders on, folded from the log: per (user,
/// item) pair the count of each kind of interaction and the time of the latest one, in
/// 12 bytes. A user's pairs lie together in one pool, sorted by item (a block per user,
/// moved to a block twice the size when full, the pool compacted when moves have left too
/// many holes), so a million pairs cost about 12 MB plus the user and item tables. Offsets are kept with
/// the state: a snapshot holds both, and a restart resumes exactly where it left off.
/// Beside the pairs, each user's latest `sequenceLimit` steps in event-time order (a step: one
/// item and the counts of the events in a row on it), the sequence model's data; 12 bytes a
/// step. A late event takes its place by its timestamp, so a history imported in any order
/// gives the same sequences.
public final class InteractionTable: @unchecked Sendable {
    /// One (user, item) pair: the item's dense index, the latest event's time in seconds,
    /// and counts of views (and clicks), carts, favourites (and reviews) and purchased order
    /// lines (less refunds), each saturating at 255 (a confidence gains little past that).
    struct Pair: BitwiseCopyable, Equatable {
        var item: UInt32
        var seconds: UInt32
        var counts: SIMD4<UInt8>
    }

    /// One step of a user's sequence: consecutive events on the same item, counted by channel,
    /// and the time of its latest event.
    struct Step: BitwiseCopyable, Equatable {
        var item: UInt32
        var counts: SIMD4<UInt8>
        var seconds: UInt32
    }

    /// A step as snapshots before version 4 stored it (no time).
    struct UntimedStep: BitwiseCopyable {
        var item: UInt32
        var counts: SIMD4<UInt8>
    }

    /// Steps kept per user (the latest); a sequence model reads at most this many.
    public static let sequenceLimit = 64

    enum Channel: Int, CaseIterable {
        case view, cart, favorite, purchase
    }

    /// Where a user's pairs lie in the pool.
    struct Slot: BitwiseCopyable {
        var start: UInt32
        var count: UInt32
        var capacity: UInt32
    }

    final class State {
        var offsets: [UInt64] = []
        var userIDs: [Int64] = []
        var userIndex: [Int64: Int32] = [:]
        var slots: [Slot] = []
        var pool: [Pair] = []
        /// Each user's latest steps, oldest first (up to `sequenceLimit` + 16 before a trim).
        var steps: [[Step]] = []
        /// Freed blocks by log2 of their capacity.
        var free: [[UInt32]] = Array(repeating: [], count: 33)
        var pairs = 0
        var itemIDs: [Int64] = []
        var itemIndex: [Int64: Int32] = [:]
        var itemCategories: [Int64] = []
        var latestSeconds: UInt32 = 0
        var erasures = 0
        /// Users erased whose factor rows the registry has not yet dropped from the stored
        /// models (kept in the snapshot until it has, so a crash cannot skip one).
        var pendingErasures: [Int64] = []
        /// Changes on every fold, so a snapshot is written only when there is something new.
        var version: UInt64 = 0
    }

    private let state = State()
    private let lock = ReadWriteLock()

    public init(partitions: Int = 0) {
        state.offsets = [UInt64](repeating: 0, count: partitions)
    }

    // MARK: Folding

    /// Folds a batch read from `partition` and moves its offset to `next`.
    /// Returns how many of them were labels (the online model learns from those).
    @discardableResult
    public func fold(_ events: [StoredEvent], partition: Int, next: UInt64) -> Int {
        lock.write(state) { s in
            var labels = 0
            for stored in events {
                guard let box = stored.eventRef else { continue }
                Self.fold(box.value, into: s)
                if box.value.kind == .label { labels += 1 }
            }
            s.offsets[partition] = max(s.offsets[partition], next)
            s.version &+= 1
            Self.compactIfSparse(s)
            return labels
        }
    }

    /// Folds events as if read from partition 0 (tests, benchmarks).
    public func fold(_ events: [Event]) {
        lock.write(state) { s in
            if s.offsets.isEmpty { s.offsets = [0] }
            for e in events { Self.fold(e, into: s) }
            s.offsets[0] += UInt64(events.count)
            s.version &+= 1
            Self.compactIfSparse(s)
        }
    }

    static func fold(_ e: Event, into s: State) {
        let seconds = UInt32(clamping: e.timestampMs / 1000)
        switch e.kind {
        case .view, .click: add(e.userId, e.itemId, e.categoryId, .view, 1, seconds, s)
        case .addToCart: add(e.userId, e.itemId, e.categoryId, .cart, 1, seconds, s)
        case .favorite: add(e.userId, e.itemId, e.categoryId, .favorite, 1, seconds, s)
        case .review:
            if let r = e.reviewRef?.value { add(e.userId, r.itemId, 0, .favorite, 1, seconds, s) }
        case .purchase:
            if let order = e.orderRef?.value, !order.lines.isEmpty {
                for line in order.lines where line.quantity > 0 {
                    add(e.userId, line.itemId, line.categoryId != 0 ? line.categoryId : e.categoryId, .purchase, 1, seconds, s)
                }
            } else {
                add(e.userId, e.itemId, e.categoryId, .purchase, 1, seconds, s)
            }
        case .refund:
            if let r = e.refundRef?.value { add(e.userId, r.itemId, 0, .purchase, -1, seconds, s) }
        case .itemUpsert:
            if let u = e.itemRef?.value, u.itemId > 0 {
                let i = item(u.itemId, s)
                if u.categoryId != 0 { s.itemCategories[Int(i)] = u.categoryId }
            }
        case .erasure:
            erase(e.userId, s)
            if e.userId > 0 { s.pendingErasures.append(e.userId) }
        default:
            break
        }
    }

    static func item(_ id: Int64, _ s: State) -> Int32 {
        if let i = s.itemIndex[id] { return i }
        let i = Int32(s.itemIDs.count)
        s.itemIDs.append(id)
        s.itemCategories.append(0)
        s.itemIndex[id] = i
        return i
    }

    /// Adds `delta` to the user's count of `channel` on the item (a refund without a pair
    /// adds nothing).
    static func add(_ userID: Int64, _ itemID: Int64, _ category: Int64, _ channel: Channel, _ delta: Int, _ seconds: UInt32, _ s: State) {
        guard userID > 0, itemID > 0 else { return }
        let item = UInt32(bitPattern: Self.item(itemID, s))
        if category != 0 { s.itemCategories[Int(item)] = category }
        if seconds > s.latestSeconds { s.latestSeconds = seconds }
        var u: Int32
        if let found = s.userIndex[userID] {
            u = found
        } else {
            guard delta > 0 else { return }
            u = Int32(s.userIDs.count)
            s.userIDs.append(userID)
            s.userIndex[userID] = u
            s.slots.append(Slot(start: 0, count: 0, capacity: 0))
            s.steps.append([])
        }
        let c = channel.rawValue
        if delta > 0 { step(Int(u), item, c, seconds, s) }
        // A user's pairs are sorted by item: binary search, and an insert shifts the later ones.
        var slot = s.slots[Int(u)]
        var lo = Int(slot.start), hi = Int(slot.start + slot.count)
        s.pool.withUnsafeBufferPointer { pool in
            while lo < hi {
                let mid = (lo + hi) >> 1
                if pool[mid].item < item { lo = mid + 1 } else { hi = mid }
            }
        }
        if lo < Int(slot.start + slot.count) && s.pool[lo].item == item {
            let updated = Int(s.pool[lo].counts[c]) + delta
            s.pool[lo].counts[c] = UInt8(clamping: max(0, updated))
            if seconds > s.pool[lo].seconds { s.pool[lo].seconds = seconds }
            return
        }
        guard delta > 0 else { return }
        if slot.count == slot.capacity {
            let offset = lo - Int(slot.start)
            grow(Int(u), s)
            slot = s.slots[Int(u)]
            lo = Int(slot.start) + offset
        }
        var counts = SIMD4<UInt8>()
        counts[c] = UInt8(clamping: delta)
        let end = Int(slot.start + slot.count)
        s.pool.withUnsafeMutableBufferPointer { pool in
            let base = pool.baseAddress!
            if end > lo { (base + lo + 1).update(from: base + lo, count: end - lo) }
            base[lo] = Pair(item: item, seconds: seconds, counts: counts)
        }
        s.slots[Int(u)].count += 1
        s.pairs += 1
    }

    /// Adds an event on `item` at `seconds` to user u's sequence, in time order: after every
    /// step at or before its second (events of one second keep their log order). It joins the
    /// step before or after that place when that step is on the same item, else it is a new
    /// step; an event older than every step of a full sequence is left out, and the oldest 16
    /// go once the sequence is 16 past its limit. Events in time order append, as they did.
    static func step(_ u: Int, _ item: UInt32, _ channel: Int, _ seconds: UInt32, _ s: State) {
        var at = s.steps[u].count
        while at > 0 && s.steps[u][at - 1].seconds > seconds { at -= 1 }
        func count(_ k: Int) {
            s.steps[u][k].counts[channel] = s.steps[u][k].counts[channel] &+ (s.steps[u][k].counts[channel] == 255 ? 0 : 1)
            s.steps[u][k].seconds = max(s.steps[u][k].seconds, seconds)
        }
        if at > 0 && s.steps[u][at - 1].item == item { return count(at - 1) }
        if at < s.steps[u].count && s.steps[u][at].item == item { return count(at) }
        if at == 0 && s.steps[u].count >= sequenceLimit { return }
        if s.steps[u].count >= sequenceLimit + 16 {
            let drop = s.steps[u].count - sequenceLimit + 1
            s.steps[u].removeFirst(drop)
            at -= drop
            if at < 0 { return }
        }
        var counts = SIMD4<UInt8>()
        counts[channel] = 1
        s.steps[u].insert(Step(item: item, counts: counts, seconds: seconds), at: at)
    }

    /// The pair of `item` in a user's block (sorted by item).
    static func pair(_ item: UInt32, in slot: Slot, _ s: State) -> Pair? {
        var lo = Int(slot.start), hi = Int(slot.start + slot.count)
        while lo < hi {
            let mid = (lo + hi) >> 1
            if s.pool[mid].item < item { lo = mid + 1 } else { hi = mid }
        }
        return lo < Int(slot.start + slot.count) && s.pool[lo].item == item ? s.pool[lo] : nil
    }

    /// Moves user u's pairs to a block twice the size (a freed one of that size when there is one).
    static func grow(_ u: Int, _ s: State) {
        let old = s.slots[u]
        let capacity = max(2, old.capacity * 2)
        let log = capacity.trailingZeroBitCount
        let start: UInt32
        if capacity.nonzeroBitCount == 1, let reused = s.free[log].popLast() {
            start = reused
        } else {
            start = UInt32(s.pool.count)
            s.pool.append(contentsOf: repeatElement(Pair(item: 0, seconds: 0, counts: .zero), count: Int(capacity)))
        }
        for k in 0..<Int(old.count) { s.pool[Int(start) + k] = s.pool[Int(old.start) + k] }
        release(old, s)
        s.slots[u] = Slot(start: start, count: old.count, capacity: capacity)
    }

    static func release(_ slot: Slot, _ s: State) {
        guard slot.capacity > 0 else { return }
        if slot.capacity.nonzeroBitCount == 1 { s.free[slot.capacity.trailingZeroBitCount].append(slot.start) }
    }

    /// Forgets a user's pairs (an erasure event in the log).
    static func erase(_ userID: Int64, _ s: State) {
        guard let u = s.userIndex[userID] else { return }
        let slot = s.slots[Int(u)]
        s.pairs -= Int(slot.count)
        release(slot, s)
        s.slots[Int(u)] = Slot(start: 0, count: 0, capacity: 0)
        s.steps[Int(u)] = []
        s.erasures += 1
    }

    /// Erased users whose rows the stored models may still hold (see `erasuresApplied`).
    public var pendingErasures: [Int64] { lock.read(state) { $0.pendingErasures } }

    /// The registry no longer holds these users: they leave the pending list.
    public func erasuresApplied(_ users: [Int64]) {
        let done = Set(users)
        lock.write(state) { s in
            s.pendingErasures.removeAll { done.contains($0) }
            s.version &+= 1
        }
    }

    /// Rewrites the pool user by user with no room to spare once holes and spare room are
    /// over half of it (a user who grows again moves to a block of twice their pairs).
    static func compactIfSparse(_ s: State) {
        guard s.pool.count > 2 * s.pairs + 4096 else { return }
        compact(s)
    }

    /// Packs the pool tight now (the benchmark measures memory after it).
    public func compact() {
        lock.write(state) { Self.compact($0) }
    }

    static func compact(_ s: State) {
        var pool: [Pair] = []
        pool.reserveCapacity(s.pairs)
        for u in s.slots.indices {
            let slot = s.slots[u]
            let start = UInt32(pool.count)
            pool.append(contentsOf: s.pool[Int(slot.start)..<Int(slot.start + slot.count)])
            s.slots[u] = Slot(start: start, count: slot.count, capacity: slot.count)
        }
        s.pool = pool
        s.free = Array(repeating: [], count: 33)
    }

    // MARK: Reading

    public struct Summary: Sendable {
        public var users: Int
        public var items: Int
        public var pairs: Int
        public var offsets: [UInt64]
        public var latestSeconds: UInt32
        public var version: UInt64
        /// The state's memory: the pool, the user and item tables and their dictionaries.
        public var bytes: Int
    }

    public var summary: Summary {
        lock.read(state) { s in
            // Dictionary storage: a key and a value per bucket, buckets at most 3/4 full.
            let dictionaries = (s.userIndex.capacity + s.itemIndex.capacity) * 12 * 4 / 3
            let bytes =
                s.pool.capacity * MemoryLayout<Pair>.stride + s.slots.capacity * MemoryLayout<Slot>.stride
                + s.userIDs.capacity * 8 + (s.itemIDs.capacity + s.itemCategories.capacity) * 8 + dictionaries
                + s.free.reduce(0) { $0 + $1.capacity * 4 } + s.steps.reduce(0) { $0 + $1.capacity * MemoryLayout<Step>.stride + 32 }
            return Summary(
                users: s.slots.count { $0.count > 0 }, items: s.itemIDs.count, pairs: s.pairs, offsets: s.offsets,
                latestSeconds: s.latestSeconds,
                version: s.version, bytes: bytes)
        }
    }

    func adopt(partitions: Int) -> Bool {
        lock.write(state) { s in
            if s.offsets.count == partitions { return true }
            guard s.offsets.isEmpty && s.pairs == 0 else { return false }
            s.offsets = [UInt64](repeating: 0, count: partitions)
            return true
        }
    }

    func offset(_ partition: Int) -> UInt64 {
        lock.read(state) { $0.offsets[partition] }
    }

    /// One user's pairs as (item id, counts by channel, latest seconds), for tests and tools.
    public func pairs(of userID: Int64) -> [(item: Int64, counts: [Int], seconds: UInt32)] {
        lock.read(state) { s in
            guard let u = s.userIndex[userID] else { return [] }
            let slot = s.slots[Int(u)]
            return s.pool[Int(slot.start)..<Int(slot.start + slot.count)].map { p in
                (s.itemIDs[Int(p.item)], (0..<4).map { Int(p.counts[$0]) }, p.seconds)
            }.sorted { $0.item < $1.item }
        }
    }

    /// Every pair as "user item views,carts,favorites,purchases seconds", sorted: the store's
    /// content independent of the order partitions were folded in (dense indices follow it).
    public var canonicalPairs: [String] {
        lock.read(state) { s in
            var out: [String] = []
            out.reserveCapacity(s.pairs)
            for (u, slot) in s.slots.enumerated() {
                for p in s.pool[Int(slot.start)..<Int(slot.start + slot.count)] {
                    out.append(
                        "\(s.userIDs[u]) \(s.itemIDs[Int(p.item)]) \(p.counts[0]),\(p.counts[1]),\(p.counts[2]),\(p.counts[3]) \(p.seconds)"
                    )
                }
            }
            return out.sorted()
        }
    }

    /// The training matrix: every pair whose latest event is in [fromMs, toMs) (0: no
    /// bound), valued by `weights`, over the users and items that have one, both in id order.
    public func interactions(fromMs: Int64 = 0, toMs: Int64 = 0, weights: InteractionWeights = .defaults) -> (
        data: Interactions, offsets: [UInt64]
    ) {
        lock.read(state) { s in
            let from = UInt32(clamping: fromMs / 1000), to = toMs == 0 ? UInt32.max : UInt32(clamping: toMs / 1000)
            let end = Double(min(to, s.latestSeconds))
            func kept(_ p: Pair) -> Float? {
                guard p.seconds >= from && p.seconds < to else { return nil }
                let value = weights.value(p.counts, ageSeconds: end - Double(p.seconds))
                return value > 0 ? value : nil
            }
            // Users and items in id order, so the matrix (and a model trained on it) is the
            // same whatever order the partitions were folded in. One pass keeps each user's
            // pairs under their store item index; the used items are then numbered by id.
            var used = [Bool](repeating: false, count: s.itemIDs.count)
            var userIDs: [Int64] = [], users: [Int] = []
            var rowStart = [0], indices: [Int32] = [], values: [Float] = [], times: [UInt32] = []
            indices.reserveCapacity(s.pairs)
            values.reserveCapacity(s.pairs)
            times.reserveCapacity(s.pairs)
            for u in s.slots.indices.sorted(by: { s.userIDs[$0] < s.userIDs[$1] }) {
                let slot = s.slots[u]
                for p in s.pool[Int(slot.start)..<Int(slot.start + slot.count)] {
                    guard let value = kept(p) else { continue }
                    used[Int(p.item)] = true
                    indices.append(Int32(bitPattern: p.item))
                    values.append(value)
                    times.append(p.seconds)
                }
                guard indices.count > rowStart.last! else { continue }
                userIDs.append(s.userIDs[u])
                users.append(u)
                rowStart.append(indices.count)
            }
            let items = used.indices.filter { used[$0] }.sorted { s.itemIDs[$0] < s.itemIDs[$1] }
            var newItem = [Int32](repeating: -1, count: s.itemIDs.count)
            for (n, i) in items.enumerated() { newItem[i] = Int32(n) }
            let itemIDs = items.map { s.itemIDs[$0] }, categories = items.map { s.itemCategories[$0] }
            // Renumber, then order each row by the new numbers (CSR columns ascend).
            var row: [(Int32, Float, UInt32)] = []
            for r in 0..<userIDs.count {
                let range = rowStart[r]..<rowStart[r + 1]
                row.removeAll(keepingCapacity: true)
                for e in range { row.append((newItem[Int(indices[e])], values[e], times[e])) }
                row.sort { $0.0 < $1.0 }
                for (k, e) in range.enumerated() { (indices[e], values[e], times[e]) = row[k] }
            }
            let matrix = SparseMatrix(rows: userIDs.count, cols: itemIDs.count, rowStart: rowStart, indices: indices, values: values)
            var data = Interactions(userIDs: userIDs, itemIDs: itemIDs, itemCategories: categories, matrix: matrix, times: times)
            // Each user's latest steps on the items kept, valued like the pairs (decayed by the
            // age of the pair's latest event); a step whose pair is out of the range is left out.
            data.steps = users.map { u in
                var out: [(item: Int32, value: Float)] = []
                let slot = s.slots[u]
                for step in s.steps[u].suffix(Self.sequenceLimit) {
                    let i = newItem[Int(step.item)]
                    guard i >= 0, let pair = Self.pair(step.item, in: slot, s), kept(pair) != nil else { continue }
                    let value = weights.value(step.counts, ageSeconds: end - Double(pair.seconds))
                    if let last = out.last, last.item == i {
                        out[out.count - 1].value += value
                    } else {
                        out.append((i, value))
                    }
                }
                return out
            }
            return (data, s.offsets)
        }
    }

    // MARK: Snapshots

    static let magic = "PMIS"
    /// 2: erased users' ids are left out, the pending erasures follow the pairs.
    /// 3: each kept user's steps follow the pending erasures.
    /// 4: each step carries the time of its latest event.
    static let snapshotVersion: UInt32 = 4

    /// Writes the state and its offsets to `path` atomically when it changed since
    /// `version`; returns the version written (nil when nothing changed).
    @discardableResult
    public func writeSnapshot(to path: String, ifChangedSince version: UInt64? = nil) throws -> UInt64? {
        let encoded: (bytes: [UInt8], version: UInt64)? = lock.read(state) { s in
            guard s.version != version else { return nil }
            var w = SnapshotWriter(
                magic: Self.magic, version: Self.snapshotVersion, expectedBytes: s.pairs * 16 + s.userIDs.count * 12 + 4096)
            w.plain(s.offsets)
            w.u32(s.latestSeconds)
            w.u64(UInt64(s.erasures))
            w.plain(s.itemIDs)
            w.plain(s.itemCategories)
            // Users without pairs (erased ones among them) are left out.
            let kept = s.slots.indices.filter { s.slots[$0].count > 0 }
            w.plain(kept.map { s.userIDs[$0] })
            w.plain(kept.map { s.slots[$0].count })
            var pairs: [Pair] = []
            pairs.reserveCapacity(s.pairs)
            for u in kept { pairs += s.pool[Int(s.slots[u].start)..<Int(s.slots[u].start + s.slots[u].count)] }
            w.plain(pairs)
            w.plain(s.pendingErasures)
            w.plain(kept.map { UInt32(s.steps[$0].count) })
            w.plain(kept.flatMap { s.steps[$0] })
            return (w.finish(), s.version)
        }
        guard let encoded else { return nil }
        try AtomicFile.write(encoded.bytes, to: path)
        return encoded.version
    }

    /// The store saved at `path`, or an empty one when there is no file.
    public static func open(snapshotPath path: String) throws -> (InteractionTable, restored: Bool) {
        guard let bytes = try AtomicFile.read(path) else { return (InteractionTable(), false) }
        return (try restore(bytes), true)
    }

    public static func restore(_ bytes: [UInt8]) throws -> InteractionTable {
        var r = try SnapshotReader(bytes, magic: magic)
        guard (1...snapshotVersion).contains(r.version) else {
            throw StoreError(.corrupt, "interaction snapshot version \(r.version) is not \(snapshotVersion)")
        }
        let table = InteractionTable()
        let s = table.state
        s.offsets = try r.plain(UInt64.self)
        s.latestSeconds = try r.u32()
        s.erasures = Int(try r.u64())
        s.itemIDs = try r.plain(Int64.self)
        s.itemCategories = try r.plain(Int64.self)
        s.userIDs = try r.plain(Int64.self)
        let counts = try r.plain(UInt32.self)
        s.pool = try r.plain(Pair.self)
        if r.version >= 2 { s.pendingErasures = try r.plain(Int64.self) }
        // Before version 3 no steps were kept: each user's sequence starts empty.
        let stepCounts = r.version >= 3 ? try r.plain(UInt32.self) : [UInt32](repeating: 0, count: counts.count)
        let steps: [Step] =
            r.version >= 4
            ? try r.plain(Step.self)
            // Version 3 steps have no time: they keep their order, as of the user's start.
            : r.version == 3 ? try r.plain(UntimedStep.self).map { Step(item: $0.item, counts: $0.counts, seconds: 0) } : []
        guard stepCounts.count == counts.count, stepCounts.reduce(0, { $0 + Int($1) }) == steps.count,
            steps.allSatisfy({ Int($0.item) < s.itemIDs.count })
        else { throw StoreError(.corrupt, "interaction snapshot sequences disagree") }
        var at = 0
        s.steps = stepCounts.map { c in
            defer { at += Int(c) }
            return Array(steps[at..<(at + Int(c))])
        }
        guard s.itemCategories.count == s.itemIDs.count, counts.count == s.userIDs.count,
            counts.reduce(0, { $0 + Int($1) }) == s.pool.count,
            s.pool.allSatisfy({ Int($0.item) < s.itemIDs.count })
        else { throw StoreError(.corrupt, "interaction snapshot tables disagree") }
        var start: UInt32 = 0
        s.slots = counts.map { c in
            defer { start += c }
            return Slot(start: start, count: c, capacity: c)
        }
        s.pairs = s.pool.count
        // Lookups binary-search a user's block: make sure each is sorted by item.
        for slot in s.slots where slot.count > 1 {
            s.pool[Int(slot.start)..<Int(slot.start + slot.count)].sort { $0.item < $1.item }
        }
        s.userIndex = Dictionary(uniqueKeysWithValues: s.userIDs.enumerated().map { ($1, Int32($0)) })
        s.itemIndex = Dictionary(uniqueKeysWithValues: s.itemIDs.enumerated().map { ($1, Int32($0)) })
        return table
    }
}

/// How a pair's interactions become one value: a weight per kind of interaction times its
/// count, summed, and optionally halved every `halfLifeDays` of age (measured from the
/// latest event in the training data). Defaults: view 1, cart 3, favourite 2, purchase 5,
/// no decay.
public struct InteractionWeights: Sendable, Equatable {
    public var view: Float = 1
    public var cart: Float = 3
    public var favorite: Float = 2
    public var purchase: Float = 5
    /// 0: no decay.
    public var halfLifeDays: Double = 0

    public static let defaults = InteractionWeights()

    func value(_ counts: SIMD4<UInt8>, ageSeconds: Double) -> Float {
        var v = view * Float(counts[0]) + cart * Float(counts[1]) + favorite * Float(counts[2]) + purchase * Float(counts[3])
        if halfLifeDays > 0 { v *= Float(exp2(-max(0, ageSeconds) / (halfLifeDays * 86_400))) }
        return v
    }
}
