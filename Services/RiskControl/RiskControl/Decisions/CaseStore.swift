import SQLite
import Wire

/// Cases in the decision view (docs/RISK.md, "Cases"): a decision to review or challenge
/// opens one in its team's queue as the view applies it, and case changes from the decision
/// log move it along. Every replica applies the same records in the same order, so a "take
/// next" that two analysts race for goes to the one whose change the log holds first.
extension DecisionDatabase {
    static let caseSchema = """
        CREATE TABLE IF NOT EXISTS cases (
          id INTEGER PRIMARY KEY,
          order_id TEXT NOT NULL,
          user_id INTEGER NOT NULL,
          team TEXT NOT NULL,
          status TEXT NOT NULL,
          assignee TEXT NOT NULL,
          outcome TEXT NOT NULL,
          opened_ms INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL,
          score INTEGER NOT NULL,
          action TEXT NOT NULL,
          amount REAL NOT NULL,
          currency TEXT NOT NULL,
          comments INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS cases_queue ON cases(team, status, id);
        CREATE INDEX IF NOT EXISTS cases_unresolved ON cases(id) WHERE status != 'resolved';
        CREATE INDEX IF NOT EXISTS cases_unresolved_team ON cases(team, id) WHERE status != 'resolved';
        CREATE INDEX IF NOT EXISTS cases_assignee ON cases(assignee, status, id);
        CREATE INDEX IF NOT EXISTS cases_order ON cases(order_id);
        CREATE INDEX IF NOT EXISTS cases_user ON cases(user_id);
        CREATE TABLE IF NOT EXISTS case_changes (
          case_id INTEGER NOT NULL,
          offset INTEGER NOT NULL,
          change BLOB NOT NULL,
          PRIMARY KEY (case_id, offset)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS case_counts (
          team TEXT NOT NULL,
          status TEXT NOT NULL,
          assigned INTEGER NOT NULL,
          n INTEGER NOT NULL,
          PRIMARY KEY (team, status, assigned)
        ) WITHOUT ROWID;
        """

    static func opensCase(_ action: Action) -> Bool { action == .review || action == .challenge }

    /// Opens the case of decision `id` (inside the view's commit); one already open stays.
    func openCase(_ d: Decision, id: Int64, _ db: SQLiteDatabase) throws {
        try db.statement(
            """
            INSERT OR IGNORE INTO cases (id, order_id, user_id, team, status, assignee, outcome, opened_ms, updated_ms, score, action,
              amount, currency, comments)
            VALUES (?, ?, ?, ?, 'open', '', 'unspecified', ?, ?, ?, ?, ?, ?, 0)
            """
        ).run([
            .integer(id), .text(d.orderId), .integer(d.userId), .text(StoredNames.kind(d.kind)), .integer(d.decidedMs),
            .integer(d.decidedMs), .integer(Int64(d.score)), .text(StoredNames.action(d.action)), .real(d.amount), .text(d.currency),
        ])
        if db.changes > 0 { try count(team: StoredNames.kind(d.kind), status: "open", assigned: false, by: 1, db) }
    }

    /// Applies one case change from the log at `offset` (inside the view's commit). A take of a
    /// case someone works already, and a change to a case the view does not hold, change nothing.
    func applyCaseChange(_ c: CaseChange, offset: UInt64, _ db: SQLiteDatabase) throws {
        guard let id = Int64(c.caseId), var current = try storedCase(id, db) else { return }
        let before = current
        if c.take {
            guard current.status == .open, current.assignee.isEmpty else { return }
            current.assignee = c.by
            current.status = .investigating
        }
        if c.assign { current.assignee = c.assignee }
        if !c.team.isEmpty { current.team = c.team }
        if c.status != .unspecified {
            current.status = c.status
            if c.status != .resolved { current.outcome = .unspecified }
        }
        if c.outcome != .unspecified {
            current.outcome = c.outcome
            current.status = .resolved
        }
        if !c.comment.isEmpty { current.comments += 1 }
        current.updatedMs = c.atMs
        try db.statement("UPDATE cases SET team = ?, status = ?, assignee = ?, outcome = ?, updated_ms = ?, comments = ? WHERE id = ?")
            .run([
                .text(current.team), .text(Self.name(current.status)), .text(current.assignee), .text(Self.name(current.outcome)),
                .integer(current.updatedMs), .integer(Int64(current.comments)), .integer(id),
            ])
        try count(team: before.team, status: Self.name(before.status), assigned: !before.assignee.isEmpty, by: -1, db)
        try count(team: current.team, status: Self.name(current.status), assigned: !current.assignee.isEmpty, by: 1, db)
        try db.statement("INSERT OR REPLACE INTO case_changes (case_id, offset, change) VALUES (?, ?, ?)")
            .run([.integer(id), .integer(Int64(offset)), .blob(c.serializedBytes())])
    }

    /// An erased user's cases name their pseudonym.
    func pseudonymiseCases(user: Int64, pseudonym: Int64, _ db: SQLiteDatabase) throws {
        try db.statement("UPDATE cases SET user_id = ? WHERE user_id = ?").run([.integer(pseudonym), .integer(user)])
    }

    /// The running count of cases per team, status and whether someone works them (what the
    /// queue's header shows without counting the cases).
    private func count(team: String, status: String, assigned: Bool, by delta: Int64, _ db: SQLiteDatabase) throws {
        guard status != "resolved" else { return }
        try db.statement(
            """
            INSERT INTO case_counts (team, status, assigned, n) VALUES (?, ?, ?, ?)
            ON CONFLICT (team, status, assigned) DO UPDATE SET n = n + excluded.n
            """
        ).run([.text(team), .text(status), .integer(assigned ? 1 : 0), .integer(delta)])
    }

    private static let caseColumns =
        "id, order_id, user_id, team, status, assignee, outcome, opened_ms, updated_ms, score, action, amount, currency, comments"

    private func storedCase(_ id: Int64, _ db: SQLiteDatabase) throws -> Case? {
        var found: Case?
        try db.statement("SELECT \(Self.caseColumns) FROM cases WHERE id = ?").query([.integer(id)]) { found = Self.readCase($0) }
        return found
    }

    private static func readCase(_ r: SQLiteStatement) -> Case {
        var c = Case()
        c.caseId = String(r.int(0))
        c.orderId = r.text(1)
        c.userId = r.int(2)
        c.team = r.text(3)
        c.status = CaseStatus(name: r.text(4)) ?? .open
        c.assignee = r.text(5)
        c.outcome = CaseOutcome(name: r.text(6)) ?? .unspecified
        c.openedMs = r.int(7)
        c.updatedMs = r.int(8)
        c.score = Int32(r.int(9))
        c.action = StoredNames.action(r.text(10))
        c.amount = r.double(11)
        c.currency = r.text(12)
        c.comments = UInt32(r.int(13))
        return c
    }

    static func name(_ s: CaseStatus) -> String { s.name ?? "open" }
    static func name(_ o: CaseOutcome) -> String { o.name ?? "unspecified" }

    // MARK: Reading

    /// A case and its changes, oldest first (nil: no case has that id).
    func caseWithHistory(_ id: Int64) throws -> (Case, [CaseChange])? {
        try read { db in
            guard let c = try storedCase(id, db) else { return nil }
            var history: [CaseChange] = []
            try db.statement("SELECT change FROM case_changes WHERE case_id = ? ORDER BY offset").query([.integer(id)]) { r in
                if let change = try? CaseChange(serializedBytes: r.blob(0)) { history.append(change) }
            }
            return (c, history)
        }
    }

    /// One page of the cases `q` selects, oldest first (the queue's order), the token of the
    /// next page, and every team's counts.
    func queryCases(_ q: QueryCasesRequest) throws -> QueryCasesResponse {
        var clauses: [String] = []
        var values: [SQLiteValue] = []
        if !q.team.isEmpty { clauses.append("team = ?"); values.append(.text(q.team)) }
        if q.status != .unspecified {
            clauses.append("status = ?"); values.append(.text(Self.name(q.status)))
        } else if !q.includeResolved {
            // Spelled as the partial indexes' condition, so that they serve the queue's order.
            clauses.append("status != 'resolved'")
        }
        if !q.assignee.isEmpty { clauses.append("assignee = ?"); values.append(.text(q.assignee)) }
        if !q.orderId.isEmpty { clauses.append("order_id = ?"); values.append(.text(q.orderId)) }
        if q.userId != 0 { clauses.append("user_id = ?"); values.append(.integer(q.userId)) }
        if !q.pageToken.isEmpty {
            guard let after = Int64(q.pageToken) else {
                throw BadQuery(description: "page token '\(q.pageToken)' is not one this service gave")
            }
            clauses.append("id > ?"); values.append(.integer(after))
        }
        let limit = q.limit == 0 ? Self.defaultPage : min(Int(q.limit), Self.maxPage)
        let filter = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        var response = QueryCasesResponse()
        try read { db in
            try db.statement("SELECT \(Self.caseColumns) FROM cases\(filter) ORDER BY id LIMIT \(limit + 1)").query(values) { r in
                response.cases.append(Self.readCase(r))
            }
            var teams: [String: TeamCases] = [:]
            try db.statement("SELECT team, status, assigned, n FROM case_counts WHERE n > 0 ORDER BY team").query { r in
                var t = teams[r.text(0)] ?? TeamCases()
                t.team = r.text(0)
                let n = UInt32(r.int(3))
                switch r.text(1) {
                case "open": t.`open` += n
                case "investigating": t.investigating += n
                default: t.waiting += n
                }
                if r.int(2) == 0 { t.unassigned += n }
                teams[t.team] = t
            }
            response.teams = teams.keys.sorted().map { teams[$0]! }
        }
        if response.cases.count > limit {
            response.cases.removeLast()
            response.nextPageToken = response.cases[response.cases.count - 1].caseId
        }
        return response
    }

    /// The oldest open cases of `team` nobody works (take next's candidates).
    func unassignedCases(team: String, limit: Int) throws -> [Case] {
        try read { db in
            var out: [Case] = []
            try db.statement(
                "SELECT \(Self.caseColumns) FROM cases WHERE team = ? AND status = 'open' AND assignee = '' ORDER BY id LIMIT \(limit)"
            ).query([.text(team)]) { out.append(Self.readCase($0)) }
            return out
        }
    }
}
