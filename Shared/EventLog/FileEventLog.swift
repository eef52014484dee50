import Foundation
public import Store

/// The embedded engine: one segmented log (`Shared/Store`) per partition, in
/// `directory/partition-NNN`, with group commit and fsync. What `make run` uses.
public final class FileEventLog: EventLog {
    public let logs: [SegmentedLog]
    public let description: String
    public var partitions: Int { logs.count }
    public var denseOffsets: Bool { true }

    /// Opens (recovering) every partition's log; `recovered` hears each partition's report.
    public init(
        directory: String, partitions: Int, configure: (inout SegmentedLog.Config) -> Void = { _ in },
        recovered: (Int, SegmentedLog.RecoveryReport) -> Void = { _, _ in }
    ) throws {
        var logs: [SegmentedLog] = []
        for p in 0..<partitions {
            var config = SegmentedLog.Config.defaults(directory: directory + String(format: "/partition-%03d", p))
            configure(&config)
            let (log, report) = try SegmentedLog.open(config)
            recovered(p, report)
            logs.append(log)
        }
        self.logs = logs
        description = "file (\(directory))"
    }

    public func append(_ records: Records, messageID: (Int) -> String, to p: Int) async throws -> [UInt64] {
        let first = try await logs[p].append(records)
        return (0..<UInt64(records.count)).map { first + $0 }
    }

    public func read(
        _ p: Int, from offset: UInt64, maxRecords: Int, maxBytes: Int, wait: Duration,
        _ body: (UInt64, UnsafeRawBufferPointer) -> Void
    ) async throws -> UInt64 {
        let log = logs[p]
        var read = 0
        let next = try log.forEachRecord(from: offset, maxRecords: maxRecords, maxBytes: maxBytes) {
            read += 1
            body($0, $1)
        }
        guard read == 0, wait > .zero else { return next }
        await log.waitForRecords(from: offset, timeout: wait)
        return try log.forEachRecord(from: offset, maxRecords: maxRecords, maxBytes: maxBytes, body)
    }

    public func bounds(_ p: Int) async throws -> (start: UInt64, end: UInt64) {
        (logs[p].startOffset, logs[p].endOffset)
    }

    public func stats(_ p: Int) async -> (bytes: Int, segments: Int) { logs[p].stats }

    /// The erasure is appended, the active segment sealed, and the user's earlier records
    /// emptied from the segments holding them.
    public func erase(
        appending record: [UInt8], messageID: String, to p: Int, _ erase: (UInt64, UnsafeRawBufferPointer) -> Bool
    ) async throws -> (offset: UInt64, records: Int, segments: Int) {
        let log = logs[p]
        let offset: UInt64
        do {
            offset = try await log.append([record])
            try await log.roll()
        } catch {
            throw EraseError(storedAt: nil, underlying: error)
        }
        do {
            let report = try log.scrub(below: offset, erase)
            return (offset, report.records, report.segments)
        } catch {
            throw EraseError(storedAt: offset, underlying: error)
        }
    }

    public func enforceRetention() {
        for log in logs { _ = try? log.enforceRetention() }
    }

    public func close() async {
        for log in logs { await log.close() }
    }
}
