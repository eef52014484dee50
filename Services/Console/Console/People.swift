import Foundation
import HummingbirdBcrypt
import SQLite

/// What a person may do in the console.
public enum ConsoleRole: String, CaseIterable, Sendable, Comparable {
    /// Reads decisions, labels them, works cases.
    case analyst
    /// An analyst who also drafts, backtests and publishes rules and edits lists.
    case ruleAuthor = "rule-author"
    /// Everything, people included.
    case admin

    public static func < (a: ConsoleRole, b: ConsoleRole) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// A signed-in person's session: the cookie's random token, and the token every form of the
/// session must carry back (CSRF).
public struct ConsoleSession: Sendable {
    public var token: String
    public var name: String
    public var role: ConsoleRole
    public var csrf: String
    public var expiresMs: Int64
}

/// The console's own state: people (name, role, bcrypt hash of the password, wrong
/// passwords in a row, locked until) and their sessions, in `<data dir>/console.db`.
/// Everything else the console shows it asks of the services.
public final class People: @unchecked Sendable {
    private let db: SQLiteDatabase
    private let lock = NSLock()
    /// bcrypt's cost (log2 of its rounds): 12 by default, about a quarter second a password.
    let cost: UInt8
    /// Wrong passwords in a row before an account is locked, and for how long.
    let lockAfter = 5
    let lockFor: Int64 = 15 * 60_000
    /// How long a session lasts without use.
    let sessionMs: Int64 = 8 * 3_600_000

    /// A hash no password is checked against for real (for unknown names).
    private let decoyHash: String

    public init(path: String, bcryptCost: UInt8 = 12) throws {
        db = try SQLiteDatabase(path: path)
        cost = bcryptCost
        decoyHash = Bcrypt.hash(People.random(), cost: bcryptCost)
        try db.execute(
            """
            PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
            CREATE TABLE IF NOT EXISTS people (
              name TEXT PRIMARY KEY,
              role TEXT NOT NULL,
              hash TEXT NOT NULL,
              failed INTEGER NOT NULL DEFAULT 0,
              locked_until_ms INTEGER NOT NULL DEFAULT 0,
              created_ms INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS drafts (
              id INTEGER PRIMARY KEY,
              source TEXT NOT NULL,
              shadow INTEGER NOT NULL,
              author TEXT NOT NULL,
              created_ms INTEGER NOT NULL,
              state TEXT NOT NULL DEFAULT 'pending',
              reviewer TEXT,
              reviewed_ms INTEGER
            );
            CREATE TABLE IF NOT EXISTS sessions (
              token TEXT PRIMARY KEY,
              name TEXT NOT NULL,
              csrf TEXT NOT NULL,
              expires_ms INTEGER NOT NULL
            );
            """)
    }

    public struct Refused: Error, CustomStringConvertible {
        public var description: String
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Adds `name` with `role`, or replaces their role and password.
    public func add(name: String, role: ConsoleRole, password: String, nowMs: Int64) throws {
        guard name.range(of: #"^[A-Za-z0-9._@-]{1,64}$"#, options: .regularExpression) != nil else {
            throw Refused(description: "a name is 1-64 letters, digits, '.', '_', '@' or '-'")
        }
        guard password.count >= 10 else { throw Refused(description: "a password has at least 10 characters") }
        let hash = Bcrypt.hash(password, cost: cost)
        try locked {
            try db.statement(
                """
                INSERT INTO people (name, role, hash, created_ms) VALUES (?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET role = excluded.role, hash = excluded.hash, failed = 0, locked_until_ms = 0
                """
            ).run([.text(name), .text(role.rawValue), .text(hash), .integer(nowMs)])
            // A new password ends the person's sessions.
            try db.statement("DELETE FROM sessions WHERE name = ?").run([.text(name)])
        }
    }

    public func list() throws -> [(name: String, role: ConsoleRole)] {
        try locked {
            var out: [(String, ConsoleRole)] = []
            try db.statement("SELECT name, role FROM people ORDER BY name").query { r in
                out.append((r.text(0), ConsoleRole(rawValue: r.text(1)) ?? .analyst))
            }
            return out
        }
    }

    public enum SignIn: Sendable, Equatable {
        case signedIn(token: String)
        /// Wrong name or password (the two are not told apart).
        case refused
        /// Too many wrong passwords: refused, even the right one, until then.
        case locked(untilMs: Int64)
    }

    /// Checks `password` (bcrypt, outside the lock) and opens a session when it is right.
    public func signIn(name: String, password: String, nowMs: Int64) throws -> SignIn {
        let found: (hash: String, lockedUntil: Int64)? = try locked {
            var row: (String, Int64)?
            try db.statement("SELECT hash, locked_until_ms FROM people WHERE name = ?").query([.text(name)]) { r in
                row = (r.text(0), r.int(1))
            }
            return row
        }
        guard let found else {
            // As long as a wrong password takes, so a name's existence does not show in the time.
            _ = Bcrypt.verify(password, hash: decoyHash)
            return .refused
        }
        if found.lockedUntil > nowMs { return .locked(untilMs: found.lockedUntil) }
        guard Bcrypt.verify(password, hash: found.hash) else {
            return try locked {
                try db.statement("UPDATE people SET failed = failed + 1 WHERE name = ?").run([.text(name)])
                var failed: Int64 = 0
                try db.statement("SELECT failed FROM people WHERE name = ?").query([.text(name)]) { failed = $0.int(0) }
                guard failed >= lockAfter else { return .refused }
                let until = nowMs + lockFor
                try db.statement("UPDATE people SET failed = 0, locked_until_ms = ? WHERE name = ?").run([.integer(until), .text(name)])
                return .locked(untilMs: until)
            }
        }
        let token = Self.random(), csrf = Self.random()
        try locked {
            try db.statement("UPDATE people SET failed = 0 WHERE name = ?").run([.text(name)])
            try db.statement("DELETE FROM sessions WHERE expires_ms <= ?").run([.integer(nowMs)])
            try db.statement("INSERT INTO sessions (token, name, csrf, expires_ms) VALUES (?, ?, ?, ?)").run([
                .text(token), .text(name), .text(csrf), .integer(nowMs + sessionMs),
            ])
        }
        return .signedIn(token: token)
    }

    /// The live session of `token`, its expiry pushed on by use.
    public func session(_ token: String, nowMs: Int64) throws -> ConsoleSession? {
        try locked {
            var found: ConsoleSession?
            try db.statement(
                "SELECT s.name, p.role, s.csrf, s.expires_ms FROM sessions s JOIN people p ON p.name = s.name WHERE s.token = ?"
            ).query([.text(token)]) { r in
                guard let role = ConsoleRole(rawValue: r.text(1)), r.int(3) > nowMs else { return }
                found = ConsoleSession(token: token, name: r.text(0), role: role, csrf: r.text(2), expiresMs: nowMs + sessionMs)
            }
            if let found {
                try db.statement("UPDATE sessions SET expires_ms = ? WHERE token = ?").run([.integer(found.expiresMs), .text(token)])
            }
            return found
        }
    }

    public func signOut(_ token: String) throws {
        try locked { try db.statement("DELETE FROM sessions WHERE token = ?").run([.text(token)]) }
    }

    // MARK: Rule drafts awaiting a second person (four-eyes)

    public struct Draft: Sendable {
        public var id: Int64
        public var source: String
        public var shadow: Bool
        public var author: String
        public var createdMs: Int64
    }

    /// Keeps a draft for another person to approve; returns its id.
    public func submit(source: String, shadow: Bool, author: String, nowMs: Int64) throws -> Int64 {
        try locked {
            try db.statement("INSERT INTO drafts (source, shadow, author, created_ms) VALUES (?, ?, ?, ?)").run([
                .text(source), .integer(shadow ? 1 : 0), .text(author), .integer(nowMs),
            ])
            return db.lastInsertRowID
        }
    }

    public func pendingDrafts() throws -> [Draft] {
        try locked {
            var out: [Draft] = []
            try db.statement("SELECT id, source, shadow, author, created_ms FROM drafts WHERE state = 'pending' ORDER BY id").query { r in
                out.append(Draft(id: r.int(0), source: r.text(1), shadow: r.int(2) != 0, author: r.text(3), createdMs: r.int(4)))
            }
            return out
        }
    }

    /// Marks a pending draft approved or rejected by `reviewer` and returns it; nil when it is
    /// not pending. The author may not review their own draft.
    public func review(_ id: Int64, approved: Bool, reviewer: String, nowMs: Int64) throws -> Draft? {
        try locked {
            var found: Draft?
            try db.statement("SELECT id, source, shadow, author, created_ms FROM drafts WHERE id = ? AND state = 'pending'").query([
                .integer(id)
            ]) { r in found = Draft(id: r.int(0), source: r.text(1), shadow: r.int(2) != 0, author: r.text(3), createdMs: r.int(4)) }
            guard let draft = found else { return nil }
            guard draft.author != reviewer else {
                throw Refused(description: "a draft needs a second person: its author may not review it")
            }
            try db.statement("UPDATE drafts SET state = ?, reviewer = ?, reviewed_ms = ? WHERE id = ?").run([
                .text(approved ? "approved" : "rejected"), .text(reviewer), .integer(nowMs), .integer(id),
            ])
            return draft
        }
    }

    /// 32 random bytes as 64 hex digits.
    static func random() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

}
