import CMemory
import Wire

/// A slot of an open-addressing table (`ObjectTable`, `SharingTable`).
protocol ProbedSlot {
    /// The slot's key (meaningful when it is occupied).
    var probeKey: UInt64 { get }
    var isEmpty: Bool { get }
    static var empty: Self { get }
}

/// Open addressing with linear probing on a mix of the key, over a power-of-two number of
/// slots: what the feature state's tables share.
enum LinearProbing {
    /// Where the search for `key` starts.
    @inline(__always)
    static func home(_ key: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: StableHash.mix64(key)) & mask
    }

    /// The slot holding `key`, or the empty slot where it would go.
    @inline(__always)
    static func find<Slot: ProbedSlot>(_ key: UInt64, in s: UnsafeBufferPointer<Slot>) -> (slot: Int, found: Bool) {
        let mask = s.count - 1
        var i = home(key, mask: mask)
        while true {
            if s[i].isEmpty { return (i, false) }
            if s[i].probeKey == key { return (i, true) }
            i = (i + 1) & mask
        }
    }

    /// Asks for the cache line of `key`'s home slot (a lookup a few steps later finds it there).
    @inline(__always)
    static func prefetchHome<Slot>(_ key: UInt64, in s: UnsafeBufferPointer<Slot>) {
        persona_prefetch(s.baseAddress! + home(key, mask: s.count - 1))
    }

    /// The occupied slots of `slots` placed in a table twice its size.
    static func doubled<Slot: ProbedSlot>(_ slots: [Slot]) -> [Slot] {
        var bigger = [Slot](repeating: .empty, count: slots.count * 2)
        let mask = bigger.count - 1
        for slot in slots where !slot.isEmpty {
            var i = home(slot.probeKey, mask: mask)
            while !bigger[i].isEmpty { i = (i + 1) & mask }
            bigger[i] = slot
        }
        return bigger
    }
}
