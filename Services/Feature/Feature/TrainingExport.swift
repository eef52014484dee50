import RPC
import Synchronization
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
            let target = try UserTarget(request)
            let events = try await Self.readLog(ingest)
            let rows =
                target.map {
                    Self.userRows(events, positions: positions, target: $0, fromMs: request.fromMs, toMs: request.toMs, erased: erased)
                }
                ?? Self.rows(events, positions: positions, fromMs: request.fromMs, toMs: request.toMs, erased: erased)
            let export = Export(names: positions.map { FeatureCatalog.names[$0] }, rows: rows)
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

    /// A user-level target: what its label looks for in the horizon after each cut-off.
    struct UserTarget {
        enum Kind: String { case propensity, churn }
        let kind: Kind
        let horizonMs: Int64
        /// The latest cut-off (nil: the last event's time minus the horizon) and how many.
        let cutoffMs: Int64?
        let cutoffs: Int

        /// Nil for labelled orders (`fraud`, or no target).
        init?(_ request: ExportTrainingRequest) throws {
            guard !request.target.isEmpty, request.target != "fraud" else { return nil }
            guard let kind = Kind(rawValue: request.target) else {
                throw RPCError(.invalidArgument, "target '\(request.target)' is not one of: fraud, propensity, churn")
            }
            guard request.horizonDays <= 3650, request.cutoffs <= 100 else {
                throw RPCError(
                    .invalidArgument,
                    "horizon_days \(request.horizonDays) (at most 3650) or cutoffs \(request.cutoffs) (at most 100) out of range")
            }
            self.kind = kind
            horizonMs = Int64(request.horizonDays == 0 ? 30 : request.horizonDays) * 86_400_000
            cutoffMs = request.cutoffMs == 0 ? nil : request.cutoffMs
            cutoffs = max(1, Int(request.cutoffs))
        }

        /// Whether a user's own behaviour (not an item upsert, impression, label or erasure) counts as activity.
        static func isActivity(_ kind: EventKind) -> Bool {
            switch kind {
            case .itemUpsert, .impression, .label, .erasure, .unspecified: false
            default: true
            }
        }
    }

    /// Replays `events` (in time order) and, at each cut-off, cuts a row for every user seen
    /// so far: their features as of the cut-off, and a label from their own events in the
    /// horizon after it (a purchase for propensity; none at all for churn). Events of erased
    /// users before their erasure count for neither.
    static func userRows(_ events: [Located], positions: [Int], target: UserTarget, fromMs: Int64, toMs: Int64, erased: [Int64: [UInt64]])
        -> [TrainingRow]
    {
        guard let lastMs = events.last?.event.timestampMs else { return [] }
        let partitions = (events.map(\.partition).max() ?? -1) + 1
        let state = FeatureState(partitions: partitions)
        state.erased = erased
        // Each user's activity (or purchase) times, ascending (the events are in time order).
        var future: [Int64: [Int64]] = [:]
        for l in events where l.event.userId > 0 && !state.isErased(l.event.userId, partition: l.partition, offset: l.offset) {
            let counts = target.kind == .propensity ? l.event.kind == .purchase : UserTarget.isActivity(l.event.kind)
            if counts { future[l.event.userId, default: []].append(l.event.timestampMs) }
        }
        let latest = target.cutoffMs ?? (lastMs - target.horizonMs)
        var cutoffs = (0..<target.cutoffs).map { latest - Int64($0) * target.horizonMs }
            .filter { $0 >= fromMs && (toMs == 0 || $0 <= toMs) }
        cutoffs.sort()
        var rows: [TrainingRow] = []
        var next = 0
        /// Rows for every user as of `cutoff` (the events up to it folded).
        func cut(_ cutoff: Int64) {
            let cuts = RfmCuts(users: state.users.values, nowMs: cutoff, version: state.version)
            for user in state.users.values.sorted(by: { $0.id < $1.id }) {
                let times = future[user.id] ?? []
                // The first time after the cut-off: is it inside the horizon?
                var lo = 0, hi = times.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if times[mid] <= cutoff { lo = mid + 1 } else { hi = mid }
                }
                let inHorizon = lo < times.count && times[lo] <= cutoff + target.horizonMs
                let all = FeatureCatalog.values(ProfileView(user, state: state, nowMs: cutoff, cuts: cuts))
                var row = TrainingRow()
                row.userId = user.id
                row.timestampMs = cutoff
                row.values = positions.map { all[$0] }
                row.label = (target.kind == .propensity ? inHorizon : !inHorizon) ? 1 : 0
                rows.append(row)
            }
        }
        for l in events {
            while next < cutoffs.count, l.event.timestampMs > cutoffs[next] {
                cut(cutoffs[next])
                next += 1
            }
            if next == cutoffs.count { break }
            _ = state.fold(l.event, partition: l.partition, offset: l.offset)
        }
        while next < cutoffs.count {
            cut(cutoffs[next])
            next += 1
        }
        return rows
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
