import Store
import Synchronization
import Wire

/// Features as of a request not yet in the log (risk-control's Score): the user's state with
/// the request's event folded into a copy, read at the event's time, exactly as the training
/// export cuts a labelled order's row after folding it. Nothing of the state changes.
extension FeatureState {
    func valuesAsIf(_ e: borrowing Event) -> (values: [Float], known: Bool) {
        let existing = users[e.userId]
        let user = existing?.copy() ?? UserState(id: e.userId)
        // Folded at the request's own time (not the log's latest), as the export folds the
        // order while replaying the log up to it: a backfill or a late request loses nothing
        // to windows that the rest of the log has moved past. The sharing tables are left as
        // they are: "users sharing the device" counts the others seen with it by then.
        user.fold(e, nowMs: e.timestampMs, inOrder: e.timestampMs >= user.lastSeenMs, catalog: { self.items[$0] }) { _, _ in }
        let view = ProfileView(user, state: self, nowMs: e.timestampMs, cuts: rfmCuts(refresh: true))
        return (FeatureCatalog.values(view), existing != nil)
    }
}

extension UserState {
    /// An independent copy (through the snapshot encoding, so no field is ever left out).
    func copy() -> UserState {
        var w = SnapshotWriter(magic: "PUSR", version: FeatureState.snapshotVersion, expectedBytes: 4096)
        write(&w)
        var r = try! SnapshotReader(w.finish(), magic: "PUSR")  // just written
        let copy = try! UserState(from: &r)
        copy.partition = partition
        return copy
    }
}

/// RequestFeatures' lists of names by the key their caller sent with them, as positions in the
/// catalogue (at most 256 lists: past that the table starts again).
final class FeatureNameKeys: Sendable {
    private let kept = Mutex<[UInt64: [Int]]>([:])

    subscript(key: UInt64) -> [Int]? { kept.withLock { $0[key] } }

    func keep(_ positions: [Int], under key: UInt64) {
        kept.withLock { k in
            if k.count >= 256 { k.removeAll() }
            k[key] = positions
        }
    }
}
