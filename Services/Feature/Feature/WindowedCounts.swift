import DataStructures

/// The standard sliding windows of every counter. Each has a granularity: an event at time
/// `t` counts in window `w` at time `now` when `bucket(t) > bucket(now) - length` and
/// `bucket(t) <= bucket(now)`, where `bucket` floors to the window's granularity (UTC):
///
/// | window | length | granularity |
/// | --- | --- | --- |
/// | 1h | 60 | minute |
/// | 24h | 24 | hour |
/// | 7d | 7 | day |
/// | 30d | 30 | day |
///
/// So "the last hour" at 10:30:15 is the minutes 09:31 to 10:30, and "the last 7 days" are
/// today and the six days before. Lifetime counts are kept apart and never expire.
public enum Window: Int, CaseIterable, Sendable {
    case hour1, hours24, days7, days30

    public var name: String {
        switch self {
        case .hour1: "1h"
        case .hours24: "24h"
        case .days7: "7d"
        case .days30: "30d"
        }
    }

    public init?(name: String) {
        guard let w = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = w
    }

    /// Granularity in minutes.
    var granularity: UInt32 {
        switch self {
        case .hour1: 1
        case .hours24: 60
        case .days7, .days30: 1440
        }
    }

    /// Length in buckets of the granularity.
    var length: UInt32 {
        switch self {
        case .hour1: 60
        case .hours24: 24
        case .days7: 7
        case .days30: 30
        }
    }

    /// Whether an event in minute `minute` counts at minute `now`.
    @inline(__always)
    func contains(minute: UInt32, now: UInt32) -> Bool {
        let b = minute / granularity
        let n = now / granularity
        return b <= n && b + length > n
    }
}

/// Minutes since the Unix epoch of a millisecond timestamp (0 before the epoch).
@inline(__always)
func minuteOf(_ ms: Int64) -> UInt32 {
    ms <= 0 ? 0 : UInt32(clamping: ms / 60_000)
}

/// Event counts per kind over the windows, in bounded memory: recent events are kept per
/// minute, and as they age out of a window that needs that precision they are merged into
/// hour buckets (older than an hour), then day buckets (older than a day), then dropped
/// (older than 30 days). At most 60 + 24 + 30 buckets per kind, whatever the traffic.
/// Merging never changes an answer: a bucket is coarsened only once every window that
/// would look at its finer time has moved past it.
struct WindowedCounts: Sendable, Equatable {
    struct Bucket: Sendable, Equatable {
        /// First minute of the bucket.
        var minute: UInt32
        var count: UInt32
        var kind: UInt8
        /// 0 minute, 1 hour, 2 day.
        var tier: UInt8
    }

    private(set) var buckets: [Bucket] = []

    /// Minutes per bucket of a tier.
    @inline(__always)
    static func minutes(ofTier tier: UInt8) -> UInt32 {
        switch tier {
        case 0: 1
        case 1: 60
        default: 1440
        }
    }

    /// The finest tier an event in `minute` may still be kept at, when the clock is at
    /// `now`; nil once it is outside every window.
    @inline(__always)
    static func tier(minute: UInt32, now: UInt32) -> UInt8? {
        if Window.hour1.contains(minute: minute, now: now) || minute > now { return 0 }
        if Window.hours24.contains(minute: minute, now: now) { return 1 }
        if Window.days30.contains(minute: minute, now: now) { return 2 }
        return nil
    }

    mutating func add(kind: UInt8, atMs: Int64, nowMs: Int64, count: UInt32 = 1) {
        let minute = minuteOf(atMs)
        let now = minuteOf(nowMs)
        guard let tier = Self.tier(minute: minute, now: now) else { return }
        let start = minute / Self.minutes(ofTier: tier) * Self.minutes(ofTier: tier)
        // Events mostly arrive in order: the bucket to add to is among the last few.
        var i = buckets.count - 1
        let stop = max(0, buckets.count - Self.searched)
        while i >= stop {
            let b = buckets[i]
            if b.minute == start && b.kind == kind && b.tier == tier && b.count <= UInt32.max - count {
                buckets[i].count += count
                return
            }
            i -= 1
        }
        // At 16, 32, 64... buckets, merge what aged. A function of the count alone, so folding
        // the same events always gives the same buckets (the array's capacity, which depends
        // on what malloc hands back, is not).
        let n = buckets.count + 1
        if n >= 16 && n & (n - 1) == 0 { compact(nowMs: nowMs) }
        buckets.appendSmall(Bucket(minute: start, count: count, kind: kind, tier: tier))
    }

    /// Asks for the cache lines of the newest of `buckets` (a counter's `buckets`), where
    /// `add` looks first, once the buckets' header, which holds their count, is in cache.
    @inline(__always)
    static func prefetchNewest(_ buckets: RawArray) {
        let count = buckets.count
        let newest = min(count, searched)
        buckets.prefetch(from: count - newest, count: newest, stride: MemoryLayout<Bucket>.stride)
    }

    /// How many of the newest buckets `add` searches for the one to count in.
    static let searched = 8

    /// Coarsens buckets that aged out of their tier, drops those outside every window. In
    /// place: the first `kept` buckets are the merged ones, and `kept` never passes the bucket
    /// read. A bucket joins the latest kept one with its time, kind and tier, found through a
    /// small hash of the kept ones: linear in the buckets (a history that keeps about 64 live
    /// buckets compacts every few events, and a scan of the kept ones made that quadratic).
    mutating func compact(nowMs: Int64) {
        let now = minuteOf(nowMs)
        var kept = 0
        // At most half full: the next power of two of twice the buckets.
        let tableSize = max(16, 1 << (Int.bitWidth - (buckets.count * 2 - 1).leadingZeroBitCount))
        let mask = tableSize - 1
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: tableSize) { table in
            // Per slot, the index of a kept bucket, -1 when empty.
            table.initialize(repeating: -1)
            buckets.withUnsafeMutableBufferPointer { all in
                for i in all.indices {
                    var b = all[i]
                    guard let tier = Self.tier(minute: b.minute, now: now) else { continue }
                    if tier > b.tier {
                        b.tier = tier
                        b.minute = b.minute / Self.minutes(ofTier: tier) * Self.minutes(ofTier: tier)
                    }
                    var slot = LinearProbing.home(Self.key(b), mask: mask)
                    while table[slot] >= 0 {
                        let j = Int(table[slot])
                        if all[j].minute == b.minute && all[j].kind == b.kind && all[j].tier == b.tier { break }
                        slot = (slot + 1) & mask
                    }
                    if table[slot] >= 0, all[Int(table[slot])].count <= UInt32.max - b.count {
                        all[Int(table[slot])].count += b.count
                    } else {
                        // New, or the kept one is full: this one is now the latest with its key.
                        all[kept] = b
                        table[slot] = Int32(kept)
                        kept += 1
                    }
                }
            }
        }
        buckets.removeLast(buckets.count - kept)
    }

    /// What `compact` merges buckets by: their time, kind and tier.
    @inline(__always)
    private static func key(_ b: Bucket) -> UInt64 {
        UInt64(b.minute) << 16 | UInt64(b.kind) << 8 | UInt64(b.tier)
    }

    /// Counts of one kind in each window.
    func counts(kind: UInt8, nowMs: Int64) -> [UInt32] {
        let now = minuteOf(nowMs)
        var out = [UInt32](repeating: 0, count: Window.allCases.count)
        for b in buckets where b.kind == kind {
            for w in Window.allCases where w.contains(minute: b.minute, now: now) { out[w.rawValue] &+= b.count }
        }
        return out
    }

    /// The count of one window, of one kind or (nil) of every kind below `kinds`, without
    /// building the other windows' (what ranking many items reads).
    func count(in window: Window, kind: UInt8?, kinds: Int = .max, nowMs: Int64) -> UInt32 {
        let now = minuteOf(nowMs)
        var total: UInt32 = 0
        for b in buckets where (kind.map { b.kind == $0 } ?? (Int(b.kind) < kinds)) && window.contains(minute: b.minute, now: now) {
            total &+= b.count
        }
        return total
    }

    /// Counts of every kind below `kinds` in each window: `[kind][window]`.
    func allCounts(kinds: Int, nowMs: Int64) -> [[UInt32]] {
        let now = minuteOf(nowMs)
        var out = [[UInt32]](repeating: [0, 0, 0, 0], count: kinds)
        for b in buckets where Int(b.kind) < kinds {
            for w in Window.allCases where w.contains(minute: b.minute, now: now) { out[Int(b.kind)][w.rawValue] &+= b.count }
        }
        return out
    }

    init() {}

    init(buckets: [Bucket]) { self.buckets = buckets }
}
