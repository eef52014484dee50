import CMemory

/// A slot of an open-addressing table (`ObjectTable`, `SharingTable`).
public protocol ProbedSlot {
    /// The slot's key (meaningful when it is occupied).
    var probeKey: UInt64 { get }
    var isEmpty: Bool { get }
    static var empty: Self { get }
}

/// Open addressing with linear probing on a mix of the key, over a power-of-two number of
/// slots: what the feature state's tables share.
public enum LinearProbing {
    /// Where the search for `key` starts.
    @inline(__always)
    public static func home(_ key: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: StableHash.mix64(key)) & mask
    }

    /// The slot holding `key`, or the empty slot where it would go.
    @inline(__always)
    public static func find<Slot: ProbedSlot>(_ key: UInt64, in s: UnsafeBufferPointer<Slot>) -> (slot: Int, found: Bool) {
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
    public static func prefetchHome<Slot>(_ key: UInt64, in s: UnsafeBufferPointer<Slot>) {
        persona_prefetch(s.baseAddress! + home(key, mask: s.count - 1))
    }

    /// Places the occupied slots in a table twice the size. Slots are moved (swapped with
    /// the new table's empty ones), not copied: a copy retained whatever a slot references.
    public static func double<Slot: ProbedSlot>(_ slots: inout [Slot]) {
        var bigger = [Slot](repeating: .empty, count: slots.count * 2)
        let mask = bigger.count - 1
        slots.withUnsafeMutableBufferPointer { old in
            bigger.withUnsafeMutableBufferPointer { new in
                for j in old.indices where !old[j].isEmpty {
                    var i = home(old[j].probeKey, mask: mask)
                    while !new[i].isEmpty { i = (i + 1) & mask }
                    swap(&new[i], &old[j])
                }
            }
        }
        slots = bigger
    }
}
