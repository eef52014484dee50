import Synchronization

/// The event ids ingest has already accepted, so a re-sent event is answered DUPLICATE and
/// not appended twice. Ids are kept as 128-bit hashes, bounded by a count and optionally by
/// ingestion age (oldest forgotten first). The memory is rebuilt from the log on start, so it survives restarts and never
/// holds an id whose event is not durable after a crash.
final class SeenEventIDs: Sendable {
    struct ID: Hashable, Sendable {
        let a: UInt64
        let b: UInt64
        init(_ eventID: String) {
            (a, b) = SipHash128.hash(eventID, k0: 0x7065_7273_6f6e_6131, k1: 0x6576_656e_7469_6473)
        }
    }

    private struct State {
        var set: Set<ID> = []
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
        state.withLock { s in
            func evictOldest() {
                s.set.remove(s.ring[s.head].id)
                s.head = (s.head + 1) % capacity
                s.size -= 1
            }
            if let maxAgeMs {
                while s.size > 0, s.ring[s.head].at < atMs - maxAgeMs { evictOldest() }
            }
            guard s.set.insert(id).inserted else { return false }
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
    }

    /// Forgets ids whose append failed, so a retry is not mistaken for a duplicate.
    func remove(_ ids: [ID]) {
        state.withLock { s in
            for id in ids { s.set.remove(id) }
        }
    }
}
