import PersonalData
import ServiceKit
import Synchronization

/// The event ids ingest has already accepted, so a re-sent event is answered DUPLICATE and
/// not appended twice. Ids are kept as 128-bit hashes, bounded by a count and optionally by
/// ingestion age (oldest forgotten first). The memory is rebuilt from the log on start, so it survives restarts and never
/// holds an id whose event is not durable after a crash.
final class SeenEventIDs: Sendable {
    struct ID: Hashable, Sendable {
        var a: UInt64
        var b: UInt64
        init(_ eventID: String) {
            var eventID = eventID
            self = eventID.withUTF8 { ID(UnsafeRawBufferPointer($0)) }
        }
        /// From the id's UTF-8 bytes: the same value as from the same id as a String.
        init(_ eventID: UnsafeRawBufferPointer) {
            (a, b) = SipHash128.hash(eventID, k0: 0x7065_7273_6f6e_6131, k1: 0x6576_656e_7469_6473)
            // (0, 0) marks an empty slot of `IDTable`.
            if a == 0 && b == 0 { b = 1 }
        }
        init(a: UInt64, b: UInt64) {
            self.a = a
            self.b = b
        }
    }

    private struct State {
        var set = IDTable()
        /// Insertion order as a ring of at most `capacity`: (id, ingested at ms).
        var ring: [(id: ID, at: Int64)] = []
        var head = 0
        var size = 0
    }

    let capacity: Int
    /// Ids ingested longer ago than this are forgotten (nil: only the count bounds them).
    let maxAgeMs: Int64?
    private let state = Mutex(State())

    init(capacity: Int, maxAgeMs: Int64? = nil) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.maxAgeMs = maxAgeMs
    }

    var count: Int { state.withLock { $0.set.count } }

    /// Marks `id` (ingested at `atMs`) as seen; false when it was seen already.
    func insert(_ id: ID, atMs: Int64) -> Bool {
        state.withLock { insert(id, atMs: atMs, into: &$0) }
    }

    /// Marks each of `ids` as seen, under one lock; per id, false when it was seen already
    /// (earlier in `ids` included).
    func insert(_ ids: [ID], atMs: Int64) -> [Bool] {
        insert(ids) { _ in atMs }
    }

    /// Marks each of `ids` as seen, ingested at the time at the same index of `atMs`
    /// (re-learning the ids of the log at start).
    func insert(_ ids: [ID], atMs: [Int64]) {
        precondition(ids.count == atMs.count)
        _ = insert(ids) { atMs[$0] }
    }

    /// Both batch inserts: one lock, and the ids' home slots touched first.
    private func insert(_ ids: [ID], at time: (Int) -> Int64) -> [Bool] {
        state.withLock { s in
            s.set.touch(ids)
            return ids.indices.map { insert(ids[$0], atMs: time($0), into: &s) }
        }
    }

    private func insert(_ id: ID, atMs: Int64, into s: inout State) -> Bool {
        func evictOldest() {
            s.set.remove(s.ring[s.head].id)
            s.head = (s.head + 1) % capacity
            s.size -= 1
        }
        if let maxAgeMs {
            while s.size > 0, s.ring[s.head].at < atMs - maxAgeMs { evictOldest() }
        }
        guard s.set.insert(id) else { return false }
        if s.size == capacity { evictOldest() }
        let slot = (s.head + s.size) % capacity
        if slot == s.ring.count {
            s.ring.append((id, atMs))
        } else {
            s.ring[slot] = (id, atMs)
        }
        s.size += 1
        return true
    }

    /// Forgets ids whose append failed, so a retry is not mistaken for a duplicate.
    func remove(_ ids: [ID]) {
        state.withLock { s in
            for id in ids { s.set.remove(id) }
        }
    }
}

/// A set of event ids: open addressing with linear probing, indexed by the id's first word
/// (already a uniform hash, so nothing is hashed again), deletion by backward shift.
struct IDTable {
    private var slots: [SeenEventIDs.ID] = Array(repeating: SeenEventIDs.ID(a: 0, b: 0), count: 1024)
    private(set) var count = 0

    private static func isEmpty(_ id: SeenEventIDs.ID) -> Bool { id.a == 0 && id.b == 0 }

    /// The slot holding `id`, or the empty slot where it would go.
    private func find(_ id: SeenEventIDs.ID) -> (slot: Int, found: Bool) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: id.a) & mask
        return slots.withUnsafeBufferPointer { s in
            while true {
                if s[i] == id { return (i, true) }
                if Self.isEmpty(s[i]) { return (i, false) }
                i = (i + 1) & mask
            }
        }
    }

    func contains(_ id: SeenEventIDs.ID) -> Bool { find(id).found }

    /// Reads the home slot of every id, one independent load each, so that their cache
    /// misses overlap instead of being paid one after another by the inserts that follow.
    mutating func touch(_ ids: [SeenEventIDs.ID]) {
        let mask = slots.count - 1
        var sink: UInt64 = 0
        slots.withUnsafeBufferPointer { s in
            for id in ids { sink &+= s[Int(truncatingIfNeeded: id.a) & mask].b }
        }
        touched = sink
    }

    /// Keeps `touch`'s loads from being optimised away.
    private var touched: UInt64 = 0

    /// False when `id` was already there.
    mutating func insert(_ id: SeenEventIDs.ID) -> Bool {
        var (slot, found) = find(id)
        if found { return false }
        if (count + 1) * 4 > slots.count * 3 {
            grow()
            slot = find(id).slot
        }
        slots[slot] = id
        count += 1
        return true
    }

    mutating func remove(_ id: SeenEventIDs.ID) {
        var (hole, found) = find(id)
        guard found else { return }
        let mask = slots.count - 1
        slots.withUnsafeMutableBufferPointer { s in
            // Move later entries of the probe run back into the hole, so no search stops early.
            var i = hole
            while true {
                i = (i + 1) & mask
                if Self.isEmpty(s[i]) { break }
                let home = Int(truncatingIfNeeded: s[i].a) & mask
                // Entry i may fill the hole when its home is not cyclically in (hole, i].
                let fits = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i)
                if fits {
                    s[hole] = s[i]
                    hole = i
                }
            }
            s[hole] = SeenEventIDs.ID(a: 0, b: 0)
        }
        count -= 1
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: SeenEventIDs.ID(a: 0, b: 0), count: old.count * 2)
        count = 0
        for id in old where !Self.isEmpty(id) { _ = insert(id) }
    }
}
