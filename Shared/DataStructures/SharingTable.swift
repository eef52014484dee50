/// The users seen with each device or IP (keyed by the stable hash of its pseudonym), in the
/// order they were first seen, at most `limit` per key: what "users sharing the device" reads.
///
/// Most devices and IPs have one or two users, so a slot holds the key and the first user
/// inline and only the others in an array: a lookup is one cache line, where a
/// `[UInt64: [Int64]]` paid a miss on its metadata, its keys, its values and the array.
/// Open addressing with linear probing on a mix of the key; a slot is empty when its first
/// user is 0 (user ids are positive). Only erasure removes, and it rebuilds the table.
public struct SharingTable: Sendable {
    private struct Slot: ProbedSlot {
        var key: UInt64
        var first: Int64
        var more: [Int64]?

        var probeKey: UInt64 { key }
        var isEmpty: Bool { first == 0 }
        static var empty: Slot { Slot(key: 0, first: 0, more: nil) }
    }

    private var slots = [Slot](repeating: .empty, count: 1024)
    public private(set) var count = 0
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    /// The slot holding `key`, or the empty slot where it would go.
    private func find(_ key: UInt64) -> (slot: Int, found: Bool) {
        slots.withUnsafeBufferPointer { LinearProbing.find(key, in: $0) }
    }

    /// Notes that `user` was seen with `key`.
    public mutating func add(_ user: Int64, to key: UInt64) {
        precondition(user > 0, "user ids are positive")
        var (i, found) = find(key)
        if found {
            slots.withUnsafeMutableBufferPointer { s in
                guard s[i].first != user, !(s[i].more?.contains(user) ?? false), Self.users(in: s[i]) < limit else { return }
                if s[i].more == nil { s[i].more = [user] } else { s[i].more!.append(user) }
            }
            return
        }
        if (count + 1) * 2 > slots.count {
            LinearProbing.double(&slots)
            i = find(key).slot
        }
        slots[i] = Slot(key: key, first: user, more: nil)
        count += 1
    }

    private static func users(in slot: Slot) -> Int { 1 + (slot.more?.count ?? 0) }

    private static func list(of slot: Slot) -> [Int64] { [slot.first] + (slot.more ?? []) }

    /// Asks for the home slot of `key` (a fold a few events ahead will add to it).
    @inline(__always)
    public func prefetch(_ key: UInt64) {
        slots.withUnsafeBufferPointer { LinearProbing.prefetchHome(key, in: $0) }
    }

    /// The users seen with `key`, first seen first.
    public subscript(key: UInt64) -> [Int64] {
        let (i, found) = find(key)
        guard found else { return [] }
        return Self.list(of: slots[i])
    }

    /// How many users were seen with `key`.
    public func users(of key: UInt64) -> Int {
        let (i, found) = find(key)
        return found ? Self.users(in: slots[i]) : 0
    }

    /// Whether `user` was seen with `key`.
    public func contains(_ user: Int64, in key: UInt64) -> Bool {
        let (i, found) = find(key)
        return found && (slots[i].first == user || (slots[i].more?.contains(user) ?? false))
    }

    /// Every key with its users, in key order (a snapshot's bytes do not depend on the table's history).
    public var sortedEntries: [(key: UInt64, users: [Int64])] {
        slots.filter { !$0.isEmpty }.sorted { $0.key < $1.key }.map { ($0.key, Self.list(of: $0)) }
    }

    /// A table holding `entries` (as `sortedEntries` gives them).
    public init(limit: Int, entries: [(key: UInt64, users: [Int64])]) {
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
        guard slots.contains(where: { $0.first == user || ($0.more?.contains(user) ?? false) }) else { return }
        let kept = sortedEntries.map { (key: $0.key, users: $0.users.filter { $0 != user }) }
        self = SharingTable(limit: limit, entries: kept)
    }
}
