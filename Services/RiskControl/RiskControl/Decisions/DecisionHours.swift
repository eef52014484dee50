import SQLite
import Wire

/// Running counts of the decisions per hour and score band, kept by triggers as decisions are
/// inserted, labelled, replaced and deleted, so DecisionStats over whole hours reads a few
/// hundred rows a day instead of every decision (the dashboard's day of decisions).
extension DecisionDatabase {
    static let hourMs: Int64 = 3_600_000

    /// One row's contribution to its (hour, band) counts, as SQL over `row` (NEW, OLD or a
    /// table): `h` its hour, `b` its score band, `c0` to `c7` its counts.
    private static func counts(_ row: String) -> String {
        let fraud = "(\(row).label IN ('chargeback', 'confirmed_fraud')) IS 1"
        return [
            "\(row).decided_ms / \(hourMs) AS h", "min(max(\(row).score / 100, 0), 9) AS b", "1 AS c0",
            "\(row).action = 'decline' AS c1", "\(row).action = 'review' AS c2", "\(row).action = 'challenge' AS c3",
            "\(row).label IS NOT NULL AS c4", "\(fraud) AS c5", "(\(row).label IS NOT NULL AND \(row).action != 'allow') AS c6",
            "(\(fraud) AND \(row).action != 'allow') AS c7",
        ].joined(separator: ", ")
    }

    private static let countColumns = ["decisions", "declines", "reviews", "challenges", "labelled", "fraud", "flagged", "flagged_fraud"]

    /// Adds (`sign` 1) or takes away (-1) a row's counts.
    private static func upsert(_ row: String, sign: Int) -> String {
        """
        INSERT INTO decision_hours (hour, band, \(countColumns.joined(separator: ", ")))
        SELECT h, b, \(countColumns.indices.map { "\(sign) * c\($0)" }.joined(separator: ", ")) FROM (SELECT \(counts(row))) WHERE true
        ON CONFLICT (hour, band) DO UPDATE SET \(countColumns.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", "));
        """
    }

    static let hourSchema = """
        CREATE TABLE IF NOT EXISTS decision_hours (
          hour INTEGER NOT NULL,
          band INTEGER NOT NULL,
          decisions INTEGER NOT NULL,
          declines INTEGER NOT NULL,
          reviews INTEGER NOT NULL,
          challenges INTEGER NOT NULL,
          labelled INTEGER NOT NULL,
          fraud INTEGER NOT NULL,
          flagged INTEGER NOT NULL,
          flagged_fraud INTEGER NOT NULL,
          PRIMARY KEY (hour, band)
        ) WITHOUT ROWID;
        CREATE TRIGGER IF NOT EXISTS decision_hours_insert AFTER INSERT ON decisions BEGIN \(upsert("NEW", sign: 1)) END;
        CREATE TRIGGER IF NOT EXISTS decision_hours_delete AFTER DELETE ON decisions BEGIN \(upsert("OLD", sign: -1)) END;
        CREATE TRIGGER IF NOT EXISTS decision_hours_update AFTER UPDATE OF label, action, score, decided_ms ON decisions BEGIN
        \(upsert("OLD", sign: -1)) \(upsert("NEW", sign: 1)) END;
        """

    /// Creates the counts and their triggers; a store that had decisions before them has its
    /// counts computed once from them.
    static func createHours(_ db: SQLiteDatabase) throws {
        var existed = false
        try db.statement("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decision_hours'").query { _ in existed = true }
        // A replaced row (INSERT OR REPLACE) fires the delete trigger for the row it replaces.
        try db.execute("PRAGMA recursive_triggers = ON")
        try db.execute(hourSchema)
        guard !existed else { return }
        try db.execute(
            """
            INSERT INTO decision_hours
            SELECT h, b, sum(c0), sum(c1), sum(c2), sum(c3), sum(c4), sum(c5), sum(c6), sum(c7)
            FROM (SELECT \(counts("decisions")) FROM decisions) GROUP BY h, b
            """)
    }

    /// DecisionStats from the running counts: for buckets of whole hours between whole hours.
    func statsFromHours(_ q: DecisionStatsRequest, bucket: Int64) throws -> DecisionStatsResponse {
        var clauses: [String] = []
        var values: [SQLiteValue] = []
        if q.fromMs != 0 { clauses.append("hour >= ?"); values.append(.integer(q.fromMs / Self.hourMs)) }
        if q.toMs != 0 { clauses.append("hour < ?"); values.append(.integer(q.toMs / Self.hourMs)) }
        let filter = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        let perBucket = bucket / Self.hourMs
        var response = DecisionStatsResponse()
        response.scoreHistogram = [UInt32](repeating: 0, count: 10)
        try read { db in
            // Floor division, so that hours before 1970 fall in their bucket too.
            try db.statement(
                """
                SELECT (hour - ((hour % \(perBucket)) + \(perBucket)) % \(perBucket)) AS b, sum(decisions), sum(declines), sum(reviews),
                  sum(challenges)
                FROM decision_hours\(filter) GROUP BY b HAVING sum(decisions) > 0 ORDER BY b
                """
            ).query(values) { r in
                var b = DecisionBucket()
                b.startMs = r.int(0) * Self.hourMs
                b.decisions = UInt32(r.int(1))
                b.declines = UInt32(r.int(2))
                b.reviews = UInt32(r.int(3))
                b.challenges = UInt32(r.int(4))
                response.buckets.append(b)
            }
            try db.statement("SELECT band, sum(decisions) FROM decision_hours\(filter) GROUP BY band").query(values) { r in
                response.scoreHistogram[Int(max(0, min(9, r.int(0))))] = UInt32(r.int(1))
            }
            try db.statement(
                """
                SELECT coalesce(sum(decisions), 0), coalesce(sum(declines), 0), coalesce(sum(labelled), 0), coalesce(sum(fraud), 0),
                  coalesce(sum(flagged), 0), coalesce(sum(flagged_fraud), 0)
                FROM decision_hours\(filter)
                """
            ).query(values) { r in
                response.outcome = Self.outcome(
                    decisions: r.int(0), declined: r.int(1), labelled: r.int(2), fraud: r.int(3), flagged: r.int(4), flaggedFraud: r.int(5))
            }
        }
        return response
    }
}
