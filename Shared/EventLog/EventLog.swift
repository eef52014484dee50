import Foundation
public import Store

/// Where ingest keeps the events and where every consumer reads them: one interface, two
/// engines. `FileEventLog` is the embedded segmented log on this machine's disk (the
/// default); `JetStreamLog` is a replicated NATS JetStream stream. Above this interface
/// ingest and the consumers (which read through ingest's Read call) are the same on both.
///
/// A partition is an ordered sequence of records, each at an offset that only grows. The
/// file log's offsets are dense per partition; JetStream's are the stream's sequences, so a
/// partition's offsets have gaps where other partitions' records lie. A consumer keeps the
/// offset after the last record it read and starts its next read there.
public protocol EventLog: AnyObject, Sendable {
    /// How many partitions the log has (fixed once it holds data).
    var partitions: Int { get }
    /// The engine in words, for health checks: `file (...)` or `nats://... stream ...`.
    var description: String { get }
    /// Whether a partition's offsets count its records (the file log), so that end - start is
    /// how many it holds; JetStream's have gaps.
    var denseOffsets: Bool { get }

    /// Appends `records` to partition `p`, in order, and returns each one's offset once they
    /// are durable (the file log: on disk; JetStream: held by a quorum of replicas).
    /// `messageID(i)` names record `i` (an engine that de-duplicates asks for the ids it
    /// needs), so that a retried append stores nothing twice within its duplicate window.
    func append(_ records: Records, messageID: (Int) -> String, to p: Int) async throws -> [UInt64]

    /// Calls `body` with the records of partition `p` from `offset` on, in order (each
    /// record's bytes valid only during the call), at most `maxRecords` and about `maxBytes`,
    /// and returns the offset the next read starts at. When there is nothing at `offset`
    /// yet, waits up to `wait` for records to arrive.
    func read(
        _ p: Int, from offset: UInt64, maxRecords: Int, maxBytes: Int, wait: Duration,
        _ body: (UInt64, UnsafeRawBufferPointer) -> Void
    ) async throws -> UInt64

    /// The first offset still held and the offset after the last record, of partition `p`.
    func bounds(_ p: Int) async throws -> (start: UInt64, end: UInt64)

    /// The offset after the last record of partition `p` (what every Read answers with:
    /// cheaper than `bounds` where the start costs a call of its own).
    func end(_ p: Int) async throws -> UInt64

    /// Bytes and segment files of partition `p` (JetStream: the stream's bytes over all
    /// partitions, no segments).
    func stats(_ p: Int) async -> (bytes: Int, segments: Int)

    /// Appends the erasure `record` to partition `p`, then removes every earlier record of
    /// the partition that `erase` selects. Returns the erasure's offset and how many records
    /// (and segment files) were removed.
    func erase(
        appending record: [UInt8], messageID: String, to p: Int, _ erase: (UInt64, UnsafeRawBufferPointer) -> Bool
    ) async throws -> (offset: UInt64, records: Int, segments: Int)

    /// Drops what the retention limits no longer cover (JetStream enforces its own).
    func enforceRetention()

    func close() async
}

extension EventLog {
    public func end(_ p: Int) async throws -> UInt64 { try await bounds(p).end }
}

/// An erasure that failed: before its record was stored (`storedAt` nil: repeat the call),
/// or after, while removing the user's earlier records.
public struct EraseError: Error, CustomStringConvertible {
    public var storedAt: UInt64?
    public var underlying: any Error
    public var description: String { "\(underlying)" }
}

/// Which engine `--log` (env `PERSONA_LOG`) names: `file`, or `nats://host:port[,host:port...]`.
public enum LogChoice: Sendable, Equatable, CustomStringConvertible {
    case file
    case nats(servers: [String])

    public init(parsing text: String) throws {
        let text = text.trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text == "file" {
            self = .file
            return
        }
        guard text.hasPrefix("nats://") else {
            throw StoreError(.invalidArgument, "--log must be 'file' or nats://host:port[,host:port...], got '\(text)'")
        }
        let servers = text.dropFirst("nats://".count).split(separator: ",").map { part in
            part.hasPrefix("nats://") ? String(part) : "nats://" + part
        }
        guard !servers.isEmpty, servers.allSatisfy({ $0.count > "nats://".count && $0.contains(":") }) else {
            throw StoreError(.invalidArgument, "--log nats:// needs host:port of at least one server, got '\(text)'")
        }
        self = .nats(servers: servers)
    }

    public var description: String {
        switch self {
        case .file: "file"
        case .nats(let servers): servers.joined(separator: ",")
        }
    }
}

extension Records {
    /// Each record's bytes, in order (valid only during `each`).
    public func forEach(_ each: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try body.withUnsafeBytes { try Self.forEach(in: $0, each) }
    }

    /// Each record of an encoded `body` (lengths and bytes), in order; a truncated tail is
    /// left out.
    public static func forEach(in body: UnsafeRawBufferPointer, _ each: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var at = 0
        while at + 4 <= body.count {
            let length = Int(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            guard at + 4 + length <= body.count else { return }
            try each(UnsafeRawBufferPointer(rebasing: body[(at + 4)..<(at + 4 + length)]))
            at += 4 + length
        }
    }
}
