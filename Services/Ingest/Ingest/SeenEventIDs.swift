import Synchronization

/// The event ids ingest has already accepted, so a re-sent event is answered DUPLICATE and
/// not appended twice. Ids are kept as 128-bit hashes, bounded by a count (oldest forgotten
/// first). The memory is rebuilt from the log on start, so it survives restarts and never
/// holds an id whose event is not durable after a crash.
final class SeenEventIDs: Sendable {
    struct ID: Hashable, Sendable {
        let a: UInt64
        let b: UInt64
        init(_ eventID: String) {
            (a, b) = SipHash128.hash(Array(eventID.utf8), k0: 0x7065_7273_6f6e_6131, k1: 0x6576_656e_7469_6473)
        }
    }

    private struct State {
        var set: Set<ID> = []
        var order: [ID] = []
        var head = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { state.withLock { $0.set.count } }

    /// Marks `id` as seen; false when it was seen already.
    func insert(_ id: ID) -> Bool {
        state.withLock { s in
            guard s.set.insert(id).inserted else { return false }
            if s.order.count < capacity {
                s.order.append(id)
            } else {
                s.set.remove(s.order[s.head])
                s.order[s.head] = id
                s.head = (s.head + 1) % capacity
            }
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
