import Synchronization
import Wire

/// The block and allow lists, held in memory for Score, as the decision log's list records left them.
/// Values compare pseudonymised (device, IP, instrument, email), as ingest stores them;
/// users by their id. An entry past its expiry no longer matches.
final class RiskLists: Sendable {
    private struct Key: Hashable {
        var list: Int32
        var field: Int32
        var value: String
    }

    private let entries = Mutex<[Key: ListEntry]>([:])

    func replace(_ all: [ListEntry]) {
        entries.withLock { e in
            e = [:]
            for x in all { e[Self.key(x)] = x }
        }
    }

    /// How many of `candidates` (distinct ones) are entries now, expired or not.
    func present(_ candidates: [ListEntry]) -> Int {
        let keys = Set(candidates.map(Self.key))
        return entries.withLock { e in keys.filter { e[$0] != nil }.count }
    }

    var count: Int { entries.withLock { $0.count } }

    func all(includeExpired: Bool, nowMs: Int64) -> [ListEntry] {
        entries.withLock { e in
            e.values.filter { includeExpired || !Self.expired($0, nowMs) }
                .sorted { ($0.list.rawValue, $0.field.rawValue, $0.value) < ($1.list.rawValue, $1.field.rawValue, $1.value) }
        }
    }

    private static func key(_ e: ListEntry) -> Key { Key(list: e.list.rawValue, field: e.field.rawValue, value: e.value) }

    private static func expired(_ e: ListEntry, _ nowMs: Int64) -> Bool { e.expiresMs != 0 && e.expiresMs <= nowMs }

    /// The first live entry matching the request's identifiers (pseudonyms), block lists
    /// before allow lists, in the order user, device, IP, instrument, email.
    func match(user: Int64, device: String, ip: String, instrument: String, email: String, nowMs: Int64) -> ListEntry? {
        let fields: [(ListField, String)] = [
            (.user, user > 0 ? String(user) : ""), (.device, device), (.ip, ip), (.instrument, instrument), (.email, email),
        ]
        return entries.withLock { e in
            guard !e.isEmpty else { return nil }
            for list in [ListKind.block, .allow] {
                for (field, value) in fields where !value.isEmpty {
                    if let hit = e[Key(list: list.rawValue, field: field.rawValue, value: value)], !Self.expired(hit, nowMs) { return hit }
                }
            }
            return nil
        }
    }
}
