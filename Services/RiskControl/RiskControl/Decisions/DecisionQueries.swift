import SQLite
import Wire

/// QueryDecisions, DecisionStats and the backtest's history, as SQL over the decision store.
extension DecisionDatabase {
    static let defaultPage = 50
    static let maxPage = 1000

    struct BadQuery: Error, CustomStringConvertible {
        var description: String
    }

    /// One page of the decisions `q` selects, with the token of the next page.
    func query(_ q: QueryDecisionsRequest) throws -> (decisions: [Decision], next: String) {
        var clauses: [String] = []
        var values: [SQLiteValue] = []
        if !q.orderId.isEmpty { clauses.append("order_id = ?"); values.append(.text(q.orderId)) }
        if q.userId != 0 { clauses.append("user_id = ?"); values.append(.integer(q.userId)) }
        if q.decisionId != 0 { clauses.append("id = ?"); values.append(.integer(q.decisionId)) }
        if q.minScore > 0 { clauses.append("score >= ?"); values.append(.integer(Int64(q.minScore))) }
        if q.maxScore > 0 { clauses.append("score <= ?"); values.append(.integer(Int64(q.maxScore))) }
        if !q.device.isEmpty { clauses.append("device = ?"); values.append(.text(q.device)) }
        if !q.ip.isEmpty { clauses.append("ip = ?"); values.append(.text(q.ip)) }
        if q.action != .unspecified { clauses.append("action = ?"); values.append(.text(StoredNames.action(q.action))) }
        if q.fromMs != 0 { clauses.append("decided_ms >= ?"); values.append(.integer(q.fromMs)) }
        if q.toMs != 0 { clauses.append("decided_ms < ?"); values.append(.integer(q.toMs)) }
        if !q.reason.isEmpty {
            clauses.append("id IN (SELECT decision FROM decision_reasons WHERE code = ?)"); values.append(.text(q.reason))
        }
        if q.label != .unspecified { clauses.append("label = ?"); values.append(.text(StoredNames.label(q.label))) }
        if q.labelled { clauses.append("label IS NOT NULL") }
        let limit = q.limit == 0 ? Self.defaultPage : min(Int(q.limit), Self.maxPage)
        // A page token is where the previous page ended: "SCORE:ID" by score, else "ID".
        let token = q.pageToken.split(separator: ":").map { Int64($0) }
        guard q.pageToken.isEmpty || (token.count == (q.order == .score ? 2 : 1) && !token.contains(nil)) else {
            throw BadQuery(description: "page token '\(q.pageToken)' is not one this service gave")
        }
        let order: String
        switch q.order {
        case .score:
            order = "score DESC, id DESC"
            if let score = token.first ?? nil, let id = token.last ?? nil {
                clauses.append("(score < ? OR (score = ? AND id < ?))")
                values += [.integer(score), .integer(score), .integer(id)]
            }
        case .oldest:
            order = "id ASC"
            if let id = token.first ?? nil {
                clauses.append("id > ?")
                values.append(.integer(id))
            }
        default:
            order = "id DESC"
            if let id = token.first ?? nil {
                clauses.append("id < ?")
                values.append(.integer(id))
            }
        }
        let sql =
            """
            SELECT \(Self.columns) FROM \
            decisions\(clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")) ORDER BY \(order) \
            LIMIT \(limit + 1)
            """
        var out: [Decision] = []
        try read { db in
            try db.statement(sql).query(values) { r in out.append(decision(from: r, features: !q.withoutFeatures)) }
        }
        var next = ""
        if out.count > limit {
            out.removeLast()
            let last = out[out.count - 1]
            next = q.order == .score ? "\(last.score):\(last.decisionId)" : last.decisionId
        }
        return (out, next)
    }

    /// Decisions and declines per bucket, the score histogram and the outcome against labels.
    /// Over whole hours in buckets of whole hours they come from the running counts
    /// (`decision_hours`); otherwise the decisions are counted.
    func stats(_ q: DecisionStatsRequest) throws -> DecisionStatsResponse {
        let bucket = q.bucketMs > 0 ? q.bucketMs : 3_600_000
        if bucket % Self.hourMs == 0 && q.fromMs % Self.hourMs == 0 && q.toMs % Self.hourMs == 0 {
            return try statsFromHours(q, bucket: bucket)
        }
        var clauses: [String] = []
        var values: [SQLiteValue] = []
        if q.fromMs != 0 { clauses.append("decided_ms >= ?"); values.append(.integer(q.fromMs)) }
        if q.toMs != 0 { clauses.append("decided_ms < ?"); values.append(.integer(q.toMs)) }
        let filter = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        var response = DecisionStatsResponse()
        response.scoreHistogram = [UInt32](repeating: 0, count: 10)
        try read { db in
            try db.statement(
                """
                SELECT (decided_ms / \(bucket)) * \(bucket) AS b, count(*), sum(action = 'decline'), sum(action = \
                'review'), sum(action = 'challenge')
                FROM decisions\(filter) GROUP BY b ORDER BY b
                """
            ).query(values) { r in
                var b = DecisionBucket()
                b.startMs = r.int(0)
                b.decisions = UInt32(r.int(1))
                b.declines = UInt32(r.int(2))
                b.reviews = UInt32(r.int(3))
                b.challenges = UInt32(r.int(4))
                response.buckets.append(b)
            }
            try db.statement("SELECT min(score / 100, 9), count(*) FROM decisions\(filter) GROUP BY 1").query(values) { r in
                response.scoreHistogram[Int(max(0, min(9, r.int(0))))] = UInt32(r.int(1))
            }
            try db.statement(
                """
                SELECT count(*), sum(action = 'decline'), sum(label IS NOT NULL), sum(label IN ('chargeback', 'confirmed_fraud')),
                  sum(label IS NOT NULL AND action != 'allow'), sum(label IN ('chargeback', 'confirmed_fraud') AND action != 'allow')
                FROM decisions\(filter)
                """
            ).query(values) { r in
                response.outcome = Self.outcome(
                    decisions: r.int(0), declined: r.int(1), labelled: r.int(2), fraud: r.int(3), flagged: r.int(4), flaggedFraud: r.int(5))
            }
        }
        return response
    }

    static func outcome(decisions: Int64, declined: Int64, labelled: Int64, fraud: Int64, flagged: Int64, flaggedFraud: Int64)
        -> LabelledOutcome
    {
        var o = LabelledOutcome()
        o.decisions = UInt32(decisions)
        o.declined = UInt32(declined)
        o.declineRate = decisions == 0 ? 0 : Double(declined) / Double(decisions)
        o.labelled = UInt32(labelled)
        o.fraud = UInt32(fraud)
        o.flagged = UInt32(flagged)
        o.flaggedFraud = UInt32(flaggedFraud)
        o.precision = flagged == 0 ? 0 : Double(flaggedFraud) / Double(flagged)
        o.recall = fraud == 0 ? 0 : Double(flaggedFraud) / Double(fraud)
        return o
    }

    /// A stored decision with the request it decided (what a backtest replays).
    struct Stored {
        var decision: Decision
        var request: ScoreRequest
    }

    /// Decision `id` with the request it decided (nil: none has that id).
    func stored(id: Int64) throws -> Stored? {
        var out: Stored?
        try read { db in
            try db.statement("SELECT \(Self.columns) FROM decisions WHERE id = ?").query([.integer(id)]) { r in
                out = Stored(decision: decision(from: r), request: (try? ScoreRequest(serializedBytes: r.blob(28))) ?? ScoreRequest())
            }
        }
        return out
    }

    /// The newest `limit` decisions decided in [from, to), oldest first.
    func history(fromMs: Int64, toMs: Int64, limit: Int) throws -> [Stored] {
        var clauses: [String] = []
        var values: [SQLiteValue] = []
        if fromMs != 0 { clauses.append("decided_ms >= ?"); values.append(.integer(fromMs)) }
        if toMs != 0 { clauses.append("decided_ms < ?"); values.append(.integer(toMs)) }
        let sql =
            """
            SELECT \(Self.columns) FROM \
            decisions\(clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")) ORDER BY id DESC LIMIT \
            \(limit)
            """
        var out: [Stored] = []
        try read { db in
            try db.statement(sql).query(values) { r in
                let request = (try? ScoreRequest(serializedBytes: r.blob(28))) ?? ScoreRequest()
                out.append(Stored(decision: decision(from: r), request: request))
            }
        }
        return out.reversed()
    }
}
