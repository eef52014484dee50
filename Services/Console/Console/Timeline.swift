import DataStructures
import Foundation
import RPC
import Wire

/// A user's recent events, read from ingest's log: the user's partition read backwards in
/// slices, ingest returning only the user's events (Read's `user_id`), until enough are found,
/// the partition's start is reached or `scanLimit` events were read past.
extension Console {
    struct Timeline {
        /// Newest first.
        var events: [StoredEvent]
        /// Events of the partition read, the user's and others'.
        var scanned: UInt64
        /// The partition was read back to its start: there are no older events of the user.
        var complete: Bool
    }

    func timeline(of user: Int64, limit: Int = 20, scanLimit: UInt64 = 200_000) async throws -> Timeline {
        guard let ingest else { return Timeline(events: [], scanned: 0, complete: false) }
        let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest(), timeout: .seconds(2))
        guard !info.partitions.isEmpty else { return Timeline(events: [], scanned: 0, complete: true) }
        let p = UInt32(StableHash.partition(of: user, among: info.partitions.count))
        guard let partition = info.partitions.first(where: { $0.partition == p }) else {
            throw RPCError(.internal, "ingest's log has no partition \(p)")
        }
        let slice: UInt64 = 10_000
        var found: [StoredEvent] = []
        var end = partition.endOffset
        while found.count < limit && end > partition.startOffset && partition.endOffset - end < scanLimit {
            let from = end - min(slice, end - partition.startOffset)
            var at = from
            var older: [StoredEvent] = []
            while at < end {
                var r = ReadRequest()
                r.partition = p
                r.fromOffset = at
                r.maxEvents = UInt32(end - at)
                r.userId = user
                let answer = try await ingest.call(IngestAPI.read, r, timeout: .seconds(2))
                older += answer.events.filter { $0.offset < end }
                guard answer.nextOffset > at else { break }
                at = answer.nextOffset
            }
            found = older + found
            end = from
        }
        return Timeline(
            events: Array(found.suffix(limit).reversed()), scanned: partition.endOffset - end, complete: end <= partition.startOffset)
    }

    /// One event as a timeline row: when, what, and the details that matter to a risk analyst.
    static func timelineRow(_ stored: StoredEvent) -> [String: Any] {
        let e = stored.event ?? Event()
        var what: [String] = []
        if e.itemId != 0 { what.append("item \(e.itemId)") }
        if e.categoryId != 0 { what.append("category \(e.categoryId)") }
        if let o = e.order {
            let total = o.total > 0 ? ", \(String(format: "%.2f", o.total)) \(o.currency)" : ""
            what.append("order \(o.orderId)\(total), \(o.lines.count) line\(o.lines.count == 1 ? "" : "s")")
        }
        if let p = e.payment {
            what.append("payment of order \(p.orderId), \(String(format: "%.2f", p.amount)) \(p.currency)\(p.success ? "" : ", failed")")
        }
        if let r = e.refund { what.append("refund of order \(r.orderId), \(String(format: "%.2f", r.amount))") }
        if let l = e.login { what.append(l.success ? "succeeded" : "failed") }
        if let s = e.search { what.append("\"\(s.query)\"") }
        if let l = e.label { what.append("order \(l.orderId) labelled \(l.kind.name ?? "")") }
        var row: [String: Any] = [
            "at": time(e.timestampMs), "kind": e.kind.name ?? "", "what": what.joined(separator: "; "),
            "device": e.deviceId.isEmpty ? "-" : e.deviceId, "ip": e.ip.isEmpty ? "-" : e.ip,
        ]
        if (e.login.map { !$0.success } ?? false) || (e.payment.map { !$0.success } ?? false) { row["failed"] = true }
        return row
    }
}
