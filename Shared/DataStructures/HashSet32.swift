/// A set of 64-bit ids kept as 32-bit hashes (half the memory of the ids), up to a limit
/// after which it stops growing: counts are exact below the limit but for the rare 32-bit
/// collision.
///
/// Open addressing with linear probing (`LinearProbing`), at most three quarters full, so an
/// insert reads one slot, usually in one cache line, and `prefetch(_:)` can ask for that line
/// ahead of the fold. (It was a sorted array: a binary search over a few kilobytes and a
/// memmove per insert, 12% of folding a long history.) A hash of 0 marks an empty slot and
/// is stored as 1.
public struct HashSet32: Equatable, Sendable {
    /// The hashes, 0 where a slot is empty.
    private var slots: [UInt32] = []
    public private(set) var count = 0

    public init() {}

    /// A set of `hashes` (as `hashes` lists them).
    public init(hashes: [UInt32]) {
        var capacity = Self.minimumCapacity
        while !Self.fits(hashes.count, in: capacity) { capacity *= 2 }
        slots = [UInt32](repeating: 0, count: capacity)
        for h in hashes { insert(hash: max(1, h), limit: .max) }
    }

    public static let minimumCapacity = 4

    /// The set whose open-addressing table is `table` (as `table` gives it, sent over the
    /// wire): nil unless its length is 0 or a power of two with a free slot.
    public init?(table: [UInt32]) {
        let held = table.count { $0 != 0 }
        guard table.isEmpty || (table.count & (table.count - 1) == 0 && held < table.count) else { return nil }
        slots = table
        count = held
    }

    /// The open-addressing table itself (0: an empty slot), for `init(table:)` elsewhere.
    public var table: [UInt32] { slots }

    /// `minimumCapacity` empty slots, made through a literal (SmallArrays.swift).
    @inline(__always)
    private static func emptySlots() -> [UInt32] {
        let slots: [UInt32] = [0, 0, 0, 0]
        assert(slots.count == minimumCapacity)
        return slots
    }

    @inline(__always)
    private static func fits(_ count: Int, in capacity: Int) -> Bool { count * 4 <= capacity * 3 }

    @inline(__always)
    private static func hash(_ id: Int64) -> UInt32 {
        max(1, UInt32(truncatingIfNeeded: StableHash.mix64(UInt64(bitPattern: id))))
    }

    public mutating func insert(_ id: Int64, limit: Int) {
        insert(hash: Self.hash(id), limit: limit)
    }

    private mutating func insert(hash h: UInt32, limit: Int) {
        if slots.isEmpty { slots = Self.emptySlots() }
        var (i, found) = slots.withUnsafeBufferPointer { LinearProbing.find(UInt64(h), in: $0) }
        guard !found && count < limit else { return }
        if !Self.fits(count + 1, in: slots.count) {
            LinearProbing.double(&slots)
            i = slots.withUnsafeBufferPointer { LinearProbing.find(UInt64(h), in: $0) }.slot
        }
        slots[i] = h
        count += 1
    }

    public func contains(_ id: Int64) -> Bool {
        guard !slots.isEmpty else { return false }
        return slots.withUnsafeBufferPointer { LinearProbing.find(UInt64(Self.hash(id)), in: $0) }.found
    }

    /// The hashes held, ascending.
    public var hashes: [UInt32] { withSortedHashes { Array($0) } }

    /// Calls `body` with the hashes held, ascending, in a temporary buffer.
    public func withSortedHashes<R>(_ body: (UnsafeMutableBufferPointer<UInt32>) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: count) { temporary in
            var buffer = temporary
            var n = 0
            for h in slots where h != 0 {
                buffer[n] = h
                n += 1
            }
            buffer.sort()
            return try body(buffer)
        }
    }

    /// Asks for the cache line where `id` would be found in a set whose slots' buffer is
    /// `slots` (the fold's last prefetch stage, once that buffer's header is in cache).
    @inline(__always)
    public static func prefetch(_ id: Int64, in slots: RawArray) {
        guard slots.count > 0 else { return }
        LinearProbing.prefetchHome(UInt64(hash(id)), in: slots.typed(UInt32.self))
    }

    /// The slots' buffer (for `PrefetchLayout`).
    public var buffer: UnsafeRawPointer { bufferAddress(slots) }

    public static func == (a: HashSet32, b: HashSet32) -> Bool { a.count == b.count && a.hashes == b.hashes }
}

/// A slot of `HashSet32`: the hash itself, 0 when empty.
extension UInt32: ProbedSlot {
    public var probeKey: UInt64 { UInt64(self) }
    public var isEmpty: Bool { self == 0 }
    public static var empty: UInt32 { 0 }
}
