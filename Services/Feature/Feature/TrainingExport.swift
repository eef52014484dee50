import Synchronization
import RPC
import Wire

/// Point-in-time training rows: for every labelled order, the features of its user as they
/// were at the order's time, never later. The whole log is read from ingest, ordered by
/// event time (ties by partition and offset), and replayed into a fresh state; after each
/// labelled purchase is folded, that user's features are read at the purchase's time.
/// A label (chargeback or confirmed fraud: 1; false positive or legitimate: 0) only names
/// the row's outcome; the latest label of an order wins. RFM cut points are refreshed every
/// 256 rows, always from events at or before the row. Results are kept for paging.
final class TrainingExports: Sendable {
    struct Export: Sendable {
        let names: [String]
        let rows: [TrainingRow]
    }

    private let cache = Mutex<(next: Int, exports: [Int: Export], order: [Int])>((1, [:], []))
    static let kept = 4

    func page(_ request: ExportTrainingRequest, ingest: RPCClient, erased: [Int64: [UInt64]]) async throws -> ExportTrainingResponse {
        let chunk = request.chunkRows == 0 ? 1000 : min(Int(request.chunkRows), 10_000)
        let id: Int
        let start: Int
        if request.cursor.isEmpty {
            let positions: [Int]
            switch FeatureCatalog.resolve(request.names) {
            case .success(let p): positions = p
            case .failure(let unknown): throw RPCError(.invalidArgument, "unknown feature names: \(unknown.names.joined(separator: ", "))")
            }
            let events = try await Self.readLog(ingest)
            let export = Export(
                names: positions.map { FeatureCatalog.names[$0] },
                rows: Self.rows(events, positions: positions, fromMs: request.fromMs, toMs: request.toMs, erased: erased))
            id = cache.withLock { c in
                let id = c.next
                c.next += 1
                c.exports[id] = export
                c.order.append(id)
                if c.order.count > Self.kept { c.exports[c.order.removeFirst()] = nil }
                return id
            }
            start = 0
        } else {
            let parts = request.cursor.split(separator: ":")
            guard parts.count == 2, let i = Int(parts[0]), let s = Int(parts[1]), s >= 0 else {
                throw RPCError(.invalidArgument, "cursor '\(request.cursor)' is not one this service gave")
            }
            (id, start) = (i, s)
        }
        guard let export = cache.withLock({ $0.exports[id] }) else {
            throw RPCError(.failedPrecondition, "export \(id) has expired (the latest \(Self.kept) are kept); start again without a cursor")
        }
        let end = min(export.rows.count, start + chunk)
        var response = ExportTrainingResponse()
        response.schemaVersion = FeatureCatalog.schemaVersion
        response.names = export.names
        response.rows = start < end ? Array(export.rows[start..<end]) : []
        response.done = end >= export.rows.count
        if !response.done { response.nextCursor = "\(id):\(end)" }
        return response
    }

    struct Located {
        let event: Event
        let partition: Int
        let offset: UInt64
    }

    /// Every event now in the log, in event-time order.
    static func readLog(_ ingest: RPCClient) async throws -> [Located] {
        let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest())
        var events: [Located] = []
        for p in info.partitions {
            var next = p.startOffset
            while next < p.endOffset {
                var r = ReadRequest()
                r.partition = p.partition
                r.fromOffset = next
                r.maxEvents = 10_000
                let response = try await ingest.call(IngestAPI.read, r)
                for s in response.events {
                    if let e = s.event { events.append(Located(event: e, partition: Int(p.partition), offset: s.offset)) }
                }
                guard response.nextOffset > next else { break }
                next = response.nextOffset
            }
        }
        events.sort {
            ($0.event.timestampMs, $0.partition, $0.offset) < ($1.event.timestampMs, $1.partition, $1.offset)
        }
        return events
    }

    static func labelValue(_ kind: LabelKind) -> Float? {
        switch kind {
        case .chargeback, .confirmedFraud: 1
        case .falsePositive, .legitimate: 0
        default: nil
        }
    }

    /// Replays `events` (in time order) and cuts a row at each labelled purchase in range.
    static func rows(_ events: [Located], positions: [Int], fromMs: Int64, toMs: Int64, erased: [Int64: [UInt64]]) -> [TrainingRow] {
        var labels: [String: Float] = [:]
        for l in events where l.event.kind == .label {
            if let label = l.event.label, !label.orderId.isEmpty, let v = labelValue(label.kind) { labels[label.orderId] = v }
        }
        let partitions = (events.map(\.partition).max() ?? -1) + 1
        let state = FeatureState(partitions: partitions)
        state.erased = erased
        var rows: [TrainingRow] = []
        var cuts = RfmCuts()
        for l in events {
            let e = l.event
            let folded = state.fold(e, partition: l.partition, offset: l.offset)
            guard e.kind == .purchase, folded?.skipped != true,
                let orderID = e.order?.orderId, let label = labels[orderID],
                e.timestampMs >= fromMs, toMs == 0 || e.timestampMs <= toMs,
                let user = state.users[e.userId]
            else { continue }
            if rows.count % 256 == 0 { cuts = RfmCuts(users: state.users.values, nowMs: e.timestampMs, version: state.version) }
            let all = FeatureCatalog.values(ProfileView(user, state: state, nowMs: e.timestampMs, cuts: cuts))
            var row = TrainingRow()
            row.userId = e.userId
            row.timestampMs = e.timestampMs
            row.orderId = orderID
            row.values = positions.map { all[$0] }
            row.label = label
            rows.append(row)
        }
        return rows
    }
}
