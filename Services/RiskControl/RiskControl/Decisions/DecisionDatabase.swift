import Foundation
import SQLite
import Synchronization
import Wire

/// Every decision risk-control made, its label, the rule sets and the lists, in one SQLite
/// database (WAL, `synchronous=FULL`: a commit is on disk before it returns). The schema is
/// documented in docs/RISK.md; an analyst may open the file with any SQLite tool.
///
/// Writes go through one writer thread that commits whatever has queued since its last
/// commit in one transaction (group commit): concurrent decisions share an fsync, and a
/// decision is answered only after the commit that holds it. Reads use their own
/// connections (WAL lets them run beside the writer).
final class DecisionDatabase: @unchecked Sendable {
    let path: String
    private let writer: SQLiteDatabase
    private let readers = Mutex<[SQLiteDatabase]>([])
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var closed = false
    private var thread: Thread?
    private var checkpointer: Thread?
    /// Feature-name lists by id (decisions store their values in a list's order).
    private let featureSets = Mutex<(ids: [String: Int64], names: [Int64: [String]])>(([:], [:]))
    private let onCommit: @Sendable (_ rows: Int, _ seconds: Double, _ queued: Int) -> Void

    private struct Job {
        let run: (SQLiteDatabase) throws -> Void
        let done: ((any Error)?) -> Void
    }

    /// `onCommit`: after each group commit, its rows, its time and the writes queued behind it.
    /// `synced`: each commit is on disk before it returns (`synchronous=FULL`); false for a view
    /// that is rebuilt from a log (`synchronous=NORMAL`: a commit lost to a power cut is applied
    /// again from the log, whose offset the same commit holds).
    init(
        path: String, synced: Bool = true,
        onCommit: @escaping @Sendable (_ rows: Int, _ seconds: Double, _ queued: Int) -> Void = { _, _, _ in }
    ) throws {
        self.path = path
        self.onCommit = onCommit
        writer = try SQLiteDatabase(path: path)
        // Checkpoints run beside the commits (`checkpointLoop`), never inside one.
        // secure_delete: what an erasure replaces is overwritten, not left in free pages.
        let synchronous = synced ? "FULL" : "NORMAL"
        try writer.execute(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=\(synchronous); PRAGMA wal_autocheckpoint=0; PRAGMA secure_delete=ON;")
        try writer.execute(Self.schema + Self.caseSchema)
        try Self.createHours(writer)
        try writer.statement("SELECT id, names FROM feature_sets").query { row in
            let names = row.text(1).split(separator: ",").map(String.init)
            featureSets.withLock {
                $0.ids[row.text(1)] = row.int(0)
                $0.names[row.int(0)] = names
            }
        }
        let t = Thread { [unowned self] in self.writeLoop() }
        t.name = "decision-database"
        thread = t
        t.start()
        let c = Thread { [unowned self] in self.checkpointLoop() }
        c.name = "decision-checkpoint"
        checkpointer = c
        c.start()
    }

    /// Copies the WAL's committed pages into the database every second (a passive
    /// checkpoint: it never waits for, nor blocks, the writer), so commits do not pay for it.
    private func checkpointLoop() {
        guard let db = try? SQLiteDatabase(path: path) else { return }
        while true {
            condition.lock()
            let stop = closed
            condition.unlock()
            if stop { break }
            try? db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            for _ in 0..<20 {
                usleep(50_000)
                condition.lock()
                let stop = closed
                condition.unlock()
                if stop { break }
            }
        }
        try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS decisions (
          id INTEGER PRIMARY KEY,
          order_id TEXT NOT NULL,
          user_id INTEGER NOT NULL,
          kind TEXT NOT NULL,
          decided_ms INTEGER NOT NULL,
          event_ms INTEGER NOT NULL,
          score INTEGER NOT NULL,
          action TEXT NOT NULL,
          fraud INTEGER NOT NULL,
          probability REAL NOT NULL,
          amount REAL NOT NULL,
          currency TEXT NOT NULL,
          device TEXT NOT NULL,
          ip TEXT NOT NULL,
          instrument TEXT NOT NULL,
          channel TEXT NOT NULL,
          model_name TEXT NOT NULL,
          model_version INTEGER NOT NULL,
          rules_version INTEGER NOT NULL,
          degraded INTEGER NOT NULL,
          known_user INTEGER NOT NULL,
          latency_us INTEGER NOT NULL,
          reasons TEXT NOT NULL,
          feature_set INTEGER NOT NULL,
          features BLOB,
          request BLOB NOT NULL,
          label TEXT,
          label_source TEXT,
          label_note TEXT,
          labelled_ms INTEGER
        );
        CREATE INDEX IF NOT EXISTS decisions_order ON decisions(order_id);
        CREATE INDEX IF NOT EXISTS decisions_user ON decisions(user_id, id);
        CREATE INDEX IF NOT EXISTS decisions_time ON decisions(decided_ms);
        CREATE INDEX IF NOT EXISTS decisions_score ON decisions(score, id);
        CREATE INDEX IF NOT EXISTS decisions_device ON decisions(device, id);
        CREATE INDEX IF NOT EXISTS decisions_ip ON decisions(ip, id);
        CREATE INDEX IF NOT EXISTS decisions_labelled ON decisions(label) WHERE label IS NOT NULL;
        CREATE TABLE IF NOT EXISTS decision_reasons (
          code TEXT NOT NULL,
          decision INTEGER NOT NULL,
          PRIMARY KEY (code, decision)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS feature_sets (id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS rule_sets (
          version INTEGER PRIMARY KEY,
          source TEXT NOT NULL,
          shadow INTEGER NOT NULL,
          published_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS list_entries (
          list TEXT NOT NULL,
          field TEXT NOT NULL,
          value TEXT NOT NULL,
          reason TEXT NOT NULL,
          added_ms INTEGER NOT NULL,
          expires_ms INTEGER NOT NULL,
          PRIMARY KEY (list, field, value)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS log_offsets (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS view_state (id INTEGER PRIMARY KEY CHECK (id = 0), next INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS labels (
          order_id TEXT NOT NULL,
          label TEXT NOT NULL,
          source TEXT NOT NULL,
          note TEXT NOT NULL,
          labelled_ms INTEGER NOT NULL
        );
        """

    /// Stops the writer after what is queued is committed.
    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
        while thread?.isFinished == false || checkpointer?.isFinished == false { usleep(1000) }
    }

    // MARK: Writing

    /// Runs `body` inside the next group commit; returns once that commit is durable.
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            nonisolated(unsafe) var result: T?
            let job = Job(
                run: { db in result = try body(db) },
                done: { error in
                    if let error { c.resume(throwing: error) } else { c.resume(returning: result!) }
                })
            condition.lock()
            if closed {
                condition.unlock()
                c.resume(throwing: StoreClosed())
                return
            }
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }
    }

    struct StoreClosed: Error, CustomStringConvertible {
        var description: String { "the decision database is closed" }
    }

    private func writeLoop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !closed { condition.wait() }
            let batch = jobs
            jobs = []
            let stop = closed
            condition.unlock()
            if batch.isEmpty && stop { return }
            let start = ContinuousClock.now
            var errors: [(any Error)?] = []
            do {
                try writer.statement("BEGIN IMMEDIATE").run()
                let savepoint = try writer.statement("SAVEPOINT job"), release = try writer.statement("RELEASE job")
                for job in batch {
                    do {
                        try savepoint.run()
                        try job.run(writer)
                        try release.run()
                        errors.append(nil)
                    } catch {
                        try? writer.execute("ROLLBACK TO job; RELEASE job")
                        errors.append(error)
                    }
                }
                try writer.statement("COMMIT").run()
            } catch {
                try? writer.execute("ROLLBACK")
                errors = batch.map { _ in error }
            }
            let elapsed = start.duration(to: .now)
            condition.lock()
            let queued = jobs.count
            condition.unlock()
            onCommit(batch.count, Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds), queued)
            for (job, error) in zip(batch, errors) { job.done(error) }
        }
    }

    /// Inserts `d` (with the request it decided) at row `id`, with its label if it has one;
    /// a row already there is replaced (applying a record twice changes nothing).
    private func insert(_ d: Decision, requestBytes: [UInt8], id: Int64, _ db: SQLiteDatabase) throws {
        let set = try featureSet(d.featureNames, db)
        let labelled = d.label != .unspecified
        try db.statement(
            """
            INSERT OR REPLACE INTO decisions (id, order_id, user_id, kind, decided_ms, event_ms, score, action, fraud, probability,
              amount, currency, device, ip, instrument, channel, model_name, model_version, rules_version, degraded, known_user,
              latency_us, reasons, feature_set, features, request, label, label_source, label_note, labelled_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        ).run([
            .integer(id), .text(d.orderId), .integer(d.userId), .text(StoredNames.kind(d.kind)), .integer(d.decidedMs),
            .integer(d.eventMs), .integer(Int64(d.score)), .text(StoredNames.action(d.action)), .integer(d.fraud ? 1 : 0),
            .real(Double(d.probability)), .real(d.amount), .text(d.currency), .text(d.device), .text(d.ip), .text(d.instrument),
            .text(d.channel), .text(d.modelName), .integer(Int64(d.modelVersion)), .integer(Int64(d.rulesVersion)),
            .integer(d.degraded ? 1 : 0), .integer(d.knownUser ? 1 : 0), .integer(Int64(d.latencyUs)),
            .text(StoredNames.reasonsJSON(d.reasons)), .integer(set),
            d.features.isEmpty ? .null : .blob(StoredNames.floatBytes(d.features)),
            .blob(requestBytes), labelled ? .text(StoredNames.label(d.label)) : .null, labelled ? .text(d.labelSource) : .null,
            labelled ? .text(d.labelNote) : .null, labelled ? .integer(d.labelledMs) : .null,
        ])
        let reason = try db.statement("INSERT OR IGNORE INTO decision_reasons (code, decision) VALUES (?, ?)")
        for code in Set(d.reasons.map(\.code)) { try reason.run([.text(code), .integer(id)]) }
    }

    // MARK: The view of the decision log

    /// Where the view stands in the decision log: the offset after the last record applied
    /// (nil: it has applied none).
    func viewOffset() throws -> UInt64? {
        try read { db in
            var next: UInt64?
            try db.statement("SELECT next FROM view_state WHERE id = 0").query { next = UInt64($0.int(0)) }
            return next
        }
    }

    /// Applies decision-log records in order, in one commit with the offset after them, so a
    /// restart resumes exactly: decisions go in at their ids, labels onto their order's
    /// decisions, erasures replace the erased user's decisions with their pseudonymised copies.
    func apply(_ records: [(offset: UInt64, record: DecisionRecord)], next: UInt64) async throws {
        try await write { db in
            for (offset, record) in records {
                if let d = record.decision {
                    let id = DecisionLog.decisionID(offset: offset)
                    try self.insert(d, requestBytes: (record.request ?? ScoreRequest()).serializedBytes(), id: id, db)
                    if Self.opensCase(d.action) { try self.openCase(d, id: id, db) }
                }
                if let change = record.caseChange { try self.applyCaseChange(change, offset: offset, db) }
                if let l = record.label {
                    try self.applyLabel(orderID: l.orderId, kind: l.kind, source: l.source, note: l.note, atMs: record.atMs, db)
                }
                if let erasure = record.erasure {
                    try db.statement("DELETE FROM decisions WHERE user_id = ?").run([.integer(erasure.userId)])
                    try self.pseudonymiseCases(user: erasure.userId, pseudonym: erasure.pseudonym, db)
                    for copy in erasure.decisions {
                        guard let d = copy.decision, let id = Int64(d.decisionId) else { continue }
                        try self.insert(d, requestBytes: (copy.request ?? ScoreRequest()).serializedBytes(), id: id, db)
                    }
                }
            }
            try db.statement("INSERT OR REPLACE INTO view_state (id, next) VALUES (0, ?)").run([.integer(Int64(next))])
        }
        // No page of the file keeps an erased user's rows (secure_delete); the WAL must not either.
        if records.contains(where: { $0.record.erasure != nil }) { try truncateWAL() }
    }

    /// Every decision of `user` with the request it decided, as the view holds them.
    func decisions(ofUser user: Int64) throws -> [ErasedDecision] {
        try decisionsWithRequests(where: "user_id = ?", [.integer(user)]).map { d, request in
            var erased = ErasedDecision()
            erased.decision = d
            erased.request = request
            return erased
        }
    }

    /// Every decision stored before the decision log existed, oldest first (moved into the log at start).
    func legacyDecisions() throws -> [DecisionRecord] {
        try decisionsWithRequests().map { d, request in
            var record = DecisionRecord()
            record.decision = d
            record.request = request
            return record
        }
    }

    /// The decisions `filter` selects, oldest first, each with its stored request.
    private func decisionsWithRequests(where filter: String = "1", _ values: [SQLiteValue] = []) throws -> [(Decision, ScoreRequest?)] {
        try read { db in
            var out: [(Decision, ScoreRequest?)] = []
            try db.statement("SELECT \(Self.columns) FROM decisions WHERE \(filter) ORDER BY id").query(values) { r in
                out.append((decision(from: r), try? ScoreRequest(serializedBytes: r.blob(28))))
            }
            return out
        }
    }

    /// Removes the decisions moved into the decision log (their copies live in the view).
    func dropLegacyDecisions() async throws {
        try await write { db in try db.execute("DELETE FROM decision_reasons; DELETE FROM decisions;") }
    }

    // MARK: Erasure

    /// Where the erasure follower resumes in each partition (nil before its first start).
    func logOffsets() throws -> [UInt64]? {
        let rows = try read { db in
            var rows: [(Int64, Int64)] = []
            try db.statement("SELECT partition, next FROM log_offsets ORDER BY partition").query { rows.append(($0.int(0), $0.int(1))) }
            return rows
        }
        return rows.isEmpty ? nil : rows.map { UInt64($0.1) }
    }

    /// Records where the erasure follower starts (its first start: the log's end).
    func setLogOffsets(_ offsets: [UInt64]) async throws {
        try await write { db in
            let set = try db.statement("INSERT OR REPLACE INTO log_offsets (partition, next) VALUES (?, ?)")
            for (p, next) in offsets.enumerated() { try set.run([.integer(Int64(p)), .integer(Int64(next))]) }
        }
    }

    /// Removes the list entries naming erased users, with the erasure follower's new offset in
    /// the same commit, then truncates the WAL so that no file keeps the old rows (their
    /// decisions are pseudonymised through the decision log: `RiskControlService.eraseDecisions`).
    func forgetListed(_ users: [Int64], partition: Int, next: UInt64) async throws {
        try await write { db in
            let unlist = try db.statement("DELETE FROM list_entries WHERE field = ? AND value = ?")
            for user in users { try unlist.run([.text(StoredNames.field(.user)), .text(String(user))]) }
            try db.statement("INSERT OR REPLACE INTO log_offsets (partition, next) VALUES (?, ?)").run([
                .integer(Int64(partition)), .integer(Int64(next)),
            ])
        }
        try truncateWAL()
    }

    /// Checkpoints the WAL into the database and empties it: with secure_delete, rows deleted
    /// or replaced are then in no file.
    private func truncateWAL() throws {
        try SQLiteDatabase(path: path).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// The id of a feature-name list, added on first use (inside the caller's transaction).
    private func featureSet(_ names: [String], _ db: SQLiteDatabase) throws -> Int64 {
        // Decisions of one model and rule set share their names array: equal at once.
        if let last = lastSet, last.names == names { return last.id }
        let id = try featureSetID(names, db)
        lastSet = (names, id)
        return id
    }

    /// Only the writer thread reads and sets it.
    nonisolated(unsafe) private var lastSet: (names: [String], id: Int64)?

    private func featureSetID(_ names: [String], _ db: SQLiteDatabase) throws -> Int64 {
        let key = names.joined(separator: ",")
        if let id = featureSets.withLock({ $0.ids[key] }) { return id }
        try db.statement("INSERT INTO feature_sets (names) VALUES (?)").run([.text(key)])
        let id = db.lastInsertRowID
        featureSets.withLock {
            $0.ids[key] = id
            $0.names[id] = names
        }
        return id
    }

    /// Sets the label of every decision of `orderID` and keeps the label's history.
    private func applyLabel(orderID: String, kind: LabelKind, source: String, note: String, atMs: Int64, _ db: SQLiteDatabase) throws {
        try db.statement("UPDATE decisions SET label = ?, label_source = ?, label_note = ?, labelled_ms = ? WHERE order_id = ?")
            .run([.text(StoredNames.label(kind)), .text(source), .text(note), .integer(atMs), .text(orderID)])
        try db.statement("INSERT INTO labels (order_id, label, source, note, labelled_ms) VALUES (?, ?, ?, ?, ?)")
            .run([.text(orderID), .text(StoredNames.label(kind)), .text(source), .text(note), .integer(atMs)])
    }

    // MARK: Reading

    /// Runs `body` on a reader connection.
    func read<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T {
        let db = try readers.withLock { $0.popLast() } ?? SQLiteDatabase(path: path)
        defer { readers.withLock { if $0.count < 4 { $0.append(db) } } }
        return try body(db)
    }

    func featureNames(_ set: Int64) -> [String] { featureSets.withLock { $0.names[set] ?? [] } }

    /// The columns `decision(from:)` reads, in its order.
    static let columns = """
        id, order_id, user_id, kind, decided_ms, event_ms, score, action, fraud, probability, amount, currency, device, ip,
        instrument, channel, model_name, model_version, rules_version, degraded, latency_us, reasons, feature_set, features,
        label, label_source, label_note, labelled_ms, request, known_user
        """

    func decision(from r: SQLiteStatement, features: Bool = true) -> Decision {
        var d = Decision()
        d.decisionId = String(r.int(0))
        d.orderId = r.text(1)
        d.userId = r.int(2)
        d.kind = StoredNames.kind(r.text(3))
        d.decidedMs = r.int(4)
        d.eventMs = r.int(5)
        d.score = Int32(r.int(6))
        d.action = StoredNames.action(r.text(7))
        d.fraud = r.int(8) != 0
        d.probability = Float(r.double(9))
        d.amount = r.double(10)
        d.currency = r.text(11)
        d.device = r.text(12)
        d.ip = r.text(13)
        d.instrument = r.text(14)
        d.channel = r.text(15)
        d.modelName = r.text(16)
        d.modelVersion = UInt32(r.int(17))
        d.rulesVersion = UInt32(r.int(18))
        d.degraded = r.int(19) != 0
        d.latencyUs = UInt32(r.int(20))
        d.reasons = StoredNames.reasons(r.text(21))
        if features {
            d.featureNames = featureNames(r.int(22))
            d.features = StoredNames.floats(r.blob(23))
        }
        if !r.isNull(24) {
            d.label = StoredNames.label(r.text(24))
            d.labelSource = r.text(25)
            d.labelNote = r.text(26)
            d.labelledMs = r.int(27)
        }
        d.knownUser = r.int(29) != 0
        return d
    }

    // MARK: Rule sets and lists

    struct StoredRuleSet: Sendable {
        var version: UInt32
        var source: String
        var shadow: Bool
        var publishedMs: Int64
    }

    /// Every rule set published, oldest first.
    func ruleSets() throws -> [StoredRuleSet] {
        try read { db in
            var out: [StoredRuleSet] = []
            try db.statement("SELECT version, source, shadow, published_ms FROM rule_sets ORDER BY version").query { r in
                out.append(StoredRuleSet(version: UInt32(r.int(0)), source: r.text(1), shadow: r.int(2) != 0, publishedMs: r.int(3)))
            }
            return out
        }
    }

    /// Applies the rule sets and list changes among decision-log records (and drops the list
    /// entries of erased users), with the offset after them in the same commit; records
    /// before the stored offset were applied before and are passed over. A rule set's version
    /// is the count of rule sets before it plus one, so every replica on the log numbers them
    /// alike. Returns the versions given, by record offset.
    func applySettings(_ records: [(offset: UInt64, record: DecisionRecord)], next: UInt64) async throws -> [UInt64: UInt32] {
        let versions = try await write { db in
            var from: UInt64 = 0
            try db.statement("SELECT next FROM view_state WHERE id = 0").query { from = UInt64($0.int(0)) }
            var latest: Int64 = 0
            try db.statement("SELECT COALESCE(MAX(version), 0) FROM rule_sets").query { latest = $0.int(0) }
            var versions: [UInt64: UInt32] = [:]
            for (offset, record) in records where offset >= from {
                if let r = record.rules {
                    latest += 1
                    try db.statement("INSERT INTO rule_sets (version, source, shadow, published_ms) VALUES (?, ?, ?, ?)")
                        .run([.integer(latest), .text(r.source), .integer(r.shadow ? 1 : 0), .integer(r.publishedMs)])
                    versions[offset] = UInt32(latest)
                }
                if let e = record.listEntry {
                    if record.listRemoved {
                        try db.statement("DELETE FROM list_entries WHERE list = ? AND field = ? AND value = ?")
                            .run([.text(StoredNames.list(e.list)), .text(StoredNames.field(e.field)), .text(e.value)])
                    } else {
                        try db.statement(
                            """
                            INSERT OR REPLACE INTO list_entries (list, field, value, reason, added_ms, expires_ms)
                            VALUES (?, ?, ?, ?, ?, ?)
                            """
                        )
                        .run([
                            .text(StoredNames.list(e.list)), .text(StoredNames.field(e.field)), .text(e.value), .text(e.reason),
                            .integer(e.addedMs), .integer(e.expiresMs),
                        ])
                    }
                }
                if let erasure = record.erasure {
                    try db.statement("DELETE FROM list_entries WHERE field = ? AND value = ?")
                        .run([.text(StoredNames.field(.user)), .text(String(erasure.userId))])
                }
            }
            try db.statement("INSERT OR REPLACE INTO view_state (id, next) VALUES (0, ?)").run([.integer(Int64(max(next, from)))])
            return versions
        }
        if records.contains(where: { $0.record.erasure != nil }) { try truncateWAL() }
        return versions
    }

    func listEntries() throws -> [ListEntry] {
        try read { db in
            var out: [ListEntry] = []
            try db.statement("SELECT list, field, value, reason, added_ms, expires_ms FROM list_entries ORDER BY list, field, value").query
            { r in
                var e = ListEntry()
                e.list = StoredNames.list(r.text(0))
                e.field = StoredNames.field(r.text(1))
                e.value = r.text(2)
                e.reason = r.text(3)
                e.addedMs = r.int(4)
                e.expiresMs = r.int(5)
                out.append(e)
            }
            return out
        }
    }
}
