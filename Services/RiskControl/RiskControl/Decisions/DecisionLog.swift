import EventLog
import Foundation
import Store
import Wire

/// Risk-control's own log of what it decided: every decision (with the request it decided),
/// every label and every erasure, as `DecisionRecord`s in one ordered partition. A Score is
/// answered once its record is durable here (the file log's group commit, or a quorum of a
/// JetStream stream's replicas), not once a database has it: the queryable store
/// (`DecisionDatabase`) is a view built from this log off the request path, and rebuilt
/// from it when it is missing. A decision's id is its record's offset plus one.
final class DecisionLog: Sendable {
    let log: any EventLog

    /// The file log in `directory`, or the stream `persona-decisions` on JetStream.
    init(_ choice: LogChoice, directory: String, replicas: Int) throws {
        switch choice {
        case .file:
            log = try FileEventLog(directory: directory, partitions: 1)
        case .nats(let servers):
            var config = JetStreamLog.Config(servers: servers, partitions: 1)
            config.stream = "persona-decisions"
            config.subjectPrefix = "persona.decisions"
            config.replicas = replicas
            log = try JetStreamLog(config)
        }
    }

    var description: String { log.description }

    /// Appends `record` and returns its offset once it is durable. `id` names it for an
    /// engine that drops repeats (JetStream's message id).
    func append(_ record: DecisionRecord, id: String) async throws -> UInt64 {
        let offsets = try await log.append(Records([record.serializedBytes()]), messageID: { _ in id }, to: 0)
        return offsets[0]
    }

    /// Appends `records` as one batch (the file log stores it whole or not at all) and returns their offsets.
    @discardableResult
    func append(_ records: [DecisionRecord], id: String) async throws -> [UInt64] {
        try await log.append(Records(records.map { $0.serializedBytes() }), messageID: { "\(id)-\($0)" }, to: 0)
    }

    /// The records from `offset` on (at most `max`), and the offset after them; waits up to
    /// `wait` when there are none yet. A record that does not decode is passed over (and
    /// counted by `undecodable`).
    func read(from offset: UInt64, max: Int, wait: Duration, undecodable: () -> Void = {}) async throws -> (
        records: [(offset: UInt64, record: DecisionRecord)], next: UInt64
    ) {
        var records: [(UInt64, DecisionRecord)] = []
        var bad = 0
        let next = try await log.read(0, from: offset, maxRecords: max, maxBytes: 8 << 20, wait: wait) { at, bytes in
            // An erased record reads as empty: its decisions come back with the erasure's.
            guard !bytes.isEmpty else { return }
            guard let record = try? DecisionRecord(serializedBytes: bytes, limits: .trustedPeer) else {
                bad += 1
                return
            }
            records.append((at, record))
        }
        for _ in 0..<bad { undecodable() }
        return (records, next)
    }

    func end() async throws -> UInt64 { try await log.end(0) }

    /// Appends the erasure of `user` and removes every earlier record of a decision of
    /// theirs (the erasure record carries those decisions with the user pseudonymised) and
    /// every list entry naming them.
    func erase(_ erasure: DecisionErasure, id: String) async throws -> UInt64 {
        var record = DecisionRecord()
        record.erasure = erasure
        let user = erasure.userId
        return try await log.erase(appending: record.serializedBytes(), messageID: id, to: 0) { _, bytes in
            guard let r = try? DecisionRecord(serializedBytes: bytes, limits: .trustedPeer) else { return false }
            if let e = r.listEntry { return e.field == .user && e.value == String(user) }
            return r.decision?.userId == user
        }.offset
    }

    func close() async { await log.close() }

    /// A decision's id from its record's offset.
    static func decisionID(offset: UInt64) -> Int64 { Int64(offset) + 1 }
}
