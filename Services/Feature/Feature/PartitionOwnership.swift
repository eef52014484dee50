import DataStructures
import RPC
import ServiceKit
import Synchronization
import Wire

/// Which partitions this feature replica serves: the ones it was started with (`home`), those
/// it took over from a replica that stopped answering, those it is rebuilding to take over,
/// and which it has read to the log's end since it started. A call about a user of a
/// partition it does not serve is answered UNAVAILABLE, naming the partition, so a caller
/// asks again where it is served (docs/SCALING.md).
final class PartitionOwnership: Sendable {
    struct State: Sendable {
        /// The log's partition count; 0 until the consumer has asked ingest.
        var partitions = 0
        /// Nil: every partition (one replica).
        var home: Set<Int>?
        var serving: Set<Int>?
        var rebuilding: Set<Int> = []
        var caughtUp: Set<Int> = []
    }

    private let state: Mutex<State>

    init(home: Set<Int>?) {
        state = Mutex(State(home: home, serving: home))
    }

    var current: State { state.withLock { $0 } }

    /// Learns the partition count; false when a home partition is not one of them.
    func adopt(partitions: Int) -> Bool {
        state.withLock { s in
            s.partitions = partitions
            return (s.home ?? []).allSatisfy { $0 < partitions }
        }
    }

    /// Throws UNAVAILABLE when `user`'s partition is not served here.
    func check(user: Int64) throws {
        let (partitions, serving) = state.withLock { ($0.partitions, $0.serving) }
        guard let serving, partitions > 0 else { return }
        let p = StableHash.partition(of: user, among: partitions)
        guard !serving.contains(p) else { return }
        throw RPCError(
            .unavailable,
            """
            user \(user) is in partition \(p), which this feature replica does not serve (it serves \
            \(PartitionSet.format(serving))); Feature/Ownership on each replica says which serves it
            """)
    }

    func caughtUp(_ partition: Int) {
        _ = state.withLock { $0.caughtUp.insert(partition) }
    }

    func startRebuilding(_ partitions: Set<Int>) {
        state.withLock { $0.rebuilding = partitions }
    }

    /// The rebuilt state is in place: `partitions` are served, read to where the others are.
    func tookOver(_ partitions: Set<Int>) {
        state.withLock { s in
            s.rebuilding = []
            s.serving = s.serving.map { $0.union(partitions) }
            s.caughtUp.formUnion(partitions)
        }
    }

    /// Stops serving `partitions` (their home replica serves them again).
    func release(_ partitions: Set<Int>) {
        state.withLock { s in
            s.serving = s.serving.map { $0.subtracting(partitions) }
            s.caughtUp.subtract(partitions)
        }
    }

    var response: OwnershipResponse {
        let s = current
        let all = Set(0..<s.partitions)
        var r = OwnershipResponse()
        r.partitions = UInt32(s.partitions)
        r.home = (s.home ?? all).sorted().map(UInt32.init)
        let serving = s.serving ?? all
        r.serving = serving.sorted().map(UInt32.init)
        r.rebuilding = s.rebuilding.sorted().map(UInt32.init)
        r.lagging = serving.subtracting(s.caughtUp).sorted().map(UInt32.init)
        return r
    }

    /// The health check: `serving 0-3 (home 0-3)`, with what is being rebuilt or lags.
    var summary: String {
        let r = response
        var text = "serving \(PartitionSet.format(r.serving.map(Int.init))) (home \(PartitionSet.format(r.home.map(Int.init))))"
        if !r.rebuilding.isEmpty { text += ", rebuilding \(PartitionSet.format(r.rebuilding.map(Int.init)))" }
        if !r.lagging.isEmpty { text += ", catching up \(PartitionSet.format(r.lagging.map(Int.init)))" }
        return text
    }
}

/// What a replica decides from its peers' answers to Feature/Ownership: partitions no live
/// replica holds, home or serving or rebuilding, are taken over by the live replica with the
/// lowest home partition; a partition taken over is given back once a live replica whose
/// home it is serves it read to the log's end.
struct TakeoverPlan: Equatable {
    var takeOver: Set<Int> = []
    var release: Set<Int> = []

    /// `mine`: this replica's answer; `live`: the answers of the peers that answered within
    /// the takeover time.
    init(mine: OwnershipResponse, live: [OwnershipResponse]) {
        let all = Set(0..<Int(mine.partitions))
        func set(_ values: [UInt32]) -> Set<Int> { Set(values.map(Int.init)) }
        var claimed = set(mine.serving).union(set(mine.rebuilding))
        for peer in live { claimed.formUnion(set(peer.home).union(set(peer.serving)).union(set(peer.rebuilding))) }
        let lowest = { (r: OwnershipResponse) in r.home.min() ?? .max }
        let leader = live.allSatisfy { lowest($0) > lowest(mine) }
        if leader && mine.rebuilding.isEmpty { takeOver = all.subtracting(claimed) }
        let borrowed = set(mine.serving).subtracting(set(mine.home))
        for peer in live {
            let ready = set(peer.home).intersection(set(peer.serving)).subtracting(set(peer.lagging))
            release.formUnion(borrowed.intersection(ready))
        }
    }
}
