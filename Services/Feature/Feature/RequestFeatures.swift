import Store
import Wire

/// Features as of a request not yet in the log (risk-control's Score): the user's state with
/// the request's event folded into a copy, read at the event's time, exactly as the training
/// export cuts a labelled order's row after folding it. Nothing of the state changes.
extension FeatureState {
    func valuesAsIf(_ e: borrowing Event) -> (values: [Float], known: Bool) {
        let existing = users[e.userId]
        let user = existing?.copy() ?? UserState(id: e.userId)
        var joins = ProfileView.Joining()
        let (devices, ips) = (deviceUsers, ipUsers)
        user.fold(e, nowMs: max(watermarkMs, e.timestampMs), inOrder: e.timestampMs >= user.lastSeenMs, catalog: { self.items[$0] }) {
            hash, kind in
            if kind == .device {
                joins.device = !devices.contains(e.userId, in: hash)
            } else {
                joins.ip = !ips.contains(e.userId, in: hash)
            }
        }
        var view = ProfileView(user, state: self, nowMs: e.timestampMs, cuts: rfmCuts(refresh: true))
        view.joining = joins
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
