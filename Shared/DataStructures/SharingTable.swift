/// The users seen with each device or IP (keyed by the stable hash of its pseudonym), each
/// with the event time it was first seen at, at most `limit` per key: what "users sharing
/// the device" reads, as of any time (a user first seen later does not count earlier, in
/// whatever order the events arrived).
///
/// Most devices and IPs have one or two users, so a slot holds the key and the first user
/// inline and only the others in an array: a lookup is one cache line, where a
/// `[UInt64: [Int64]]` paid a miss on its metadata, its keys, its values and the array.
/// Open addressing with linear probing on a mix of the key; a slot is empty when its first
/// user is 0 (user ids are positive). Only erasure removes, and it rebuilds the table.
public struct SharingTable: Sendable {
    /// A user and the event time they were first seen with the key.
    public struct Sighting: Equatable, Sendable {
        public var user: Int64
        public var firstMs: Int64
        public init(user: Int64, firstMs: Int64) {
            self.user = user
            self.firstMs = firstMs
        }
    }

    private struct Slot: ProbedSlot {
        var key: UInt64
        var first: Sighting
        var more: [Sighting]?

        var probeKey: UInt64 { key }
        var isEmpty: Bool { first.user == 0 }
        static var empty: Slot { Slot(key: 0, first: Sighting(user: 0, firstMs: 0), more: nil) }
    }

    private var slots = [Slot](repeating: .empty, count: 1024)
    public private(set) var count = 0
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    /// The slot holding `key`, or the empty slot where it would go.
    private func find(_ key: UInt64) -> (slot: Int, found: Bool) {
        slots.withUnsafeBufferPointer { LinearProbing.find(key, in: $0) }
    }

    /// Notes that `user` was seen with `key` at `ms` (an earlier time than the one known
    /// moves the user's first sighting back).
    public mutating func add(_ user: Int64, to key: UInt64, at ms: Int64) {
        precondition(user > 0, "user ids are positive")
        var (i, found) = find(key)
        if found {
            slots.withUnsafeMutableBufferPointer { s in
                if s[i].first.user == user {
                    s[i].first.firstMs = min(s[i].first.firstMs, ms)
                    return
                }
                if let k = s[i].more?.firstIndex(where: { $0.user == user }) {
                    s[i].more![k].firstMs = min(s[i].more![k].firstMs, ms)
                    return
                }
                guard Self.users(in: s[i]) < limit else { return }
                let seen = Sighting(user: user, firstMs: ms)
                if s[i].more == nil { s[i].more = [seen] } else { s[i].more!.append(seen) }
            }
            return
        }
        if (count + 1) * 2 > slots.count {
            LinearProbing.double(&slots)
            i = find(key).slot
        }
        slots[i] = Slot(key: key, first: Sighting(user: user, firstMs: ms), more: nil)
        count += 1
    }

    private static func users(in slot: Slot) -> Int { 1 + (slot.more?.count ?? 0) }

    private static func list(of slot: Slot) -> [Sighting] { [slot.first] + (slot.more ?? []) }

    /// Asks for the home slot of `key` (a fold a few events ahead will add to it).
    @inline(__always)
    public func prefetch(_ key: UInt64) {
        slots.withUnsafeBufferPointer { LinearProbing.prefetchHome(key, in: $0) }
    }

    /// The users seen with `key`, in the order they were added.
    public subscript(key: UInt64) -> [Sighting] {
        let (i, found) = find(key)
        guard found else { return [] }
        return Self.list(of: slots[i])
    }

    /// How many users other than `user` had been seen with `key` by `ms`.
    public func others(of key: UInt64, than user: Int64, asOf ms: Int64) -> Int {
        let (i, found) = find(key)
        guard found else { return 0 }
        let s = slots[i]
        var n = s.first.user != user && s.first.firstMs <= ms ? 1 : 0
        if let more = s.more { for m in more where m.user != user && m.firstMs <= ms { n += 1 } }
        return n
    }

    /// Every key with its users, in key order (a snapshot's bytes do not depend on the table's history).
    public var sortedEntries: [(key: UInt64, users: [Sighting])] {
        slots.filter { !$0.isEmpty }.sorted { $0.key < $1.key }.map { ($0.key, Self.list(of: $0)) }
    }

    /// A table holding `entries` (as `sortedEntries` gives them).
    public init(limit: Int, entries: [(key: UInt64, users: [Sighting])]) {
        self.init(limit: limit)
        while entries.count * 2 > slots.count { slots = [Slot](repeating: .empty, count: slots.count * 2) }
        for e in entries where !e.users.isEmpty {
            let (i, found) = find(e.key)
            guard !found else { continue }
            slots[i] = Slot(key: e.key, first: e.users[0], more: e.users.count > 1 ? Array(e.users.dropFirst()) : nil)
            count += 1
        }
    }

    /// Forgets `user` everywhere; keys left without users go. Rebuilds the table (erasure is rare).
    public mutating func remove(_ user: Int64) {
        guard slots.contains(where: { $0.first.user == user || ($0.more?.contains { $0.user == user } ?? false) }) else { return }
        let kept = sortedEntries.map { (key: $0.key, users: $0.users.filter { $0.user != user }) }
        self = SharingTable(limit: limit, entries: kept)
    }
}
