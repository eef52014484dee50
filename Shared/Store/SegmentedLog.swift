import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A durable append-only log of byte records, numbered by offset from 0.
///
/// Records are written in batches (checksummed, LZ4-compressed) to segment files named by
/// their first offset. `append` returns only after the batch is on disk (fdatasync); appends
/// that arrive while a sync is in progress are written and synced together by the next one
/// (group commit). Readers see only synced records. Opening the log verifies every batch,
/// truncates a torn tail and reports batches that fail their checksum; those are never
/// served.
public final class SegmentedLog: Sendable {
    public struct Config: Sendable {
        public var directory: String
        /// A new segment starts once the active one is this large.
        public var segmentBytes: Int
        /// Oldest segments are deleted while the log is larger than this (nil: keep all).
        public var retentionBytes: Int?
        /// Segments whose newest record is older than this are deleted (nil: keep all).
        public var retentionAge: Duration?
        /// One sparse-index entry per this many bytes of segment.
        public var indexInterval: Int
        public var compress: Bool
        /// Largest batch (uncompressed) accepted or read back.
        public var maxBatchBytes: Int

        public static func defaults(directory: String) -> Config {
            Config(
                directory: directory, segmentBytes: 128 << 20, retentionBytes: nil, retentionAge: nil,
                indexInterval: 64 << 10, compress: true, maxBatchBytes: 64 << 20)
        }
    }

    /// What opening the log found and did.
    public struct RecoveryReport: Sendable, CustomStringConvertible {
        public var segments = 0
        public var batches = 0
        public var records: UInt64 = 0
        /// Bytes cut from the end of the last segment (an append interrupted by a crash).
        public var truncatedBytes = 0
        /// Batches that failed their checksum: (segment file, byte position, first offset
        /// if readable). Their records are skipped by reads.
        public var corruptBatches: [(segment: String, position: Int, reason: String)] = []

        public var description: String {
            var s = "\(segments) segments, \(batches) batches, \(records) records verified"
            if truncatedBytes > 0 { s += "; truncated a torn tail of \(truncatedBytes) bytes" }
            for c in corruptBatches { s += "; CORRUPT batch in \(c.segment) at byte \(c.position): \(c.reason)" }
            return s
        }
    }

    public struct ReadResult: Sendable {
        public var records: [(offset: UInt64, bytes: [UInt8])]
        /// Where the next read should start.
        public var nextOffset: UInt64
    }

    final class Segment: @unchecked Sendable {
        let baseOffset: UInt64
        let path: String
        let fd: Int32
        /// Synced bytes. Guarded by the log's state lock.
        var size: Int
        /// (first offset of a batch, its byte position), every `indexInterval` bytes.
        var index: [(offset: UInt64, position: Int)] = []
        /// Byte ranges that failed verification: skipped by reads.
        var corrupt: [Range<Int>] = []
        var lastWrite: ContinuousClock.Instant = .now

        init(baseOffset: UInt64, path: String, fd: Int32, size: Int) {
            self.baseOffset = baseOffset
            self.path = path
            self.fd = fd
            self.size = size
        }

        deinit { Glibc.close(fd) }
    }

    private struct Pending {
        var batch: Batch
        var continuation: CheckedContinuation<UInt64, any Error>
    }

    private struct State {
        var segments: [Segment]
        var nextOffset: UInt64
        var pending: [Pending] = []
        var writing = false
        var closed = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        /// Waiters whose timeout passed before they were registered: they do not wait.
        var expired: Set<Int> = []
        var nextWaiter = 0
        var lastIndexedPosition = 0
    }

    public let config: Config
    private let state: Mutex<State>
    private let writer: DispatchQueue
    /// Held by retention and `scrub`, which replace or delete sealed segments.
    private let maintenance = Mutex<Void>(())

    /// Opens (or creates) the log in `config.directory`, verifying it.
    public static func open(_ config: Config) throws -> (SegmentedLog, RecoveryReport) {
        try FileIO.makeDirectory(config.directory)
        var report = RecoveryReport()
        var segments: [Segment] = []
        var nextOffset: UInt64 = 0
        let names = try FileIO.list(config.directory).filter { $0.hasSuffix(".log") }
        for (i, name) in names.enumerated() {
            guard let base = UInt64(name.dropLast(4)) else { continue }
            let path = config.directory + "/" + name
            let fd = try FileIO.open(path, flags: O_RDWR)
            let segment = Segment(baseOffset: base, path: path, fd: fd, size: try FileIO.size(fd, path: path))
            nextOffset = try recover(
                segment, isLast: i == names.count - 1, config: config, expected: max(nextOffset, base), report: &report)
            segments.append(segment)
        }
        report.segments = segments.count
        if segments.isEmpty {
            segments.append(try createSegment(baseOffset: 0, config: config))
        }
        let log = SegmentedLog(
            config: config,
            state: State(segments: segments, nextOffset: nextOffset, lastIndexedPosition: segments.last!.index.last?.position ?? 0))
        return (log, report)
    }

    private init(config: Config, state: State) {
        self.config = config
        self.state = Mutex(state)
        self.writer = DispatchQueue(label: "persona.store.writer")
    }

    private static func createSegment(baseOffset: UInt64, config: Config) throws -> Segment {
        let path =
            config.directory + "/" + String(repeating: "0", count: max(0, 20 - String(baseOffset).count)) + String(baseOffset) + ".log"
        let fd = try FileIO.open(path, flags: O_RDWR | O_CREAT)
        try FileIO.syncDirectory(config.directory)
        return Segment(baseOffset: baseOffset, path: path, fd: fd, size: 0)
    }

    /// Scans one segment: builds its index, verifies every batch, cuts a torn tail of the
    /// last segment. Returns the offset after its last good batch.
    private static func recover(_ segment: Segment, isLast: Bool, config: Config, expected: UInt64, report: inout RecoveryReport) throws
        -> UInt64
    {
        let bytes = try FileIO.read(segment.fd, count: segment.size, at: 0, path: segment.path)
        var position = 0
        var next = expected
        var lastIndexed = -config.indexInterval
        try bytes.withUnsafeBytes { all in
            while position < all.count {
                let rest = UnsafeRawBufferPointer(rebasing: all[position...])
                if let header = Batch.Header(rest), header.totalLength <= rest.count, header.rawLength <= config.maxBatchBytes,
                    Batch.verify(UnsafeRawBufferPointer(rebasing: rest[..<header.totalLength]), header: header)
                {
                    if position - lastIndexed >= config.indexInterval {
                        segment.index.append((header.baseOffset, position))
                        lastIndexed = position
                    }
                    report.batches += 1
                    report.records += UInt64(header.count)
                    next = header.baseOffset + UInt64(header.count)
                    position += header.totalLength
                    continue
                }
                // Not a good batch here. Look for the next good one after it.
                let resume = nextGoodBatch(all, after: position, minOffset: next, config: config)
                if let resume {
                    report.corruptBatches.append(
                        (segment.path, position, "checksum or header mismatch; \(resume - position) bytes skipped"))
                    segment.corrupt.append(position..<resume)
                    position = resume
                } else if isLast {
                    // An append cut short by a crash (or garbage after it): nothing after it
                    // was acknowledged, so cut it off.
                    report.truncatedBytes += all.count - position
                    try FileIO.truncate(segment.fd, to: position, path: segment.path)
                    try FileIO.sync(segment.fd, path: segment.path)
                    segment.size = position
                    break
                } else {
                    report.corruptBatches.append(
                        (segment.path, position, "unreadable to the end of the segment (\(all.count - position) bytes)"))
                    segment.corrupt.append(position..<all.count)
                    break
                }
            }
        }
        return next
    }

    private static func nextGoodBatch(_ all: UnsafeRawBufferPointer, after position: Int, minOffset: UInt64, config: Config) -> Int? {
        var p = position + 1
        while p + Batch.headerSize <= all.count {
            if all[p] == 0x50, all[p + 1] == 0x53, all[p + 2] == 0x42, all[p + 3] == 0x31 {
                let rest = UnsafeRawBufferPointer(rebasing: all[p...])
                if let h = Batch.Header(rest), h.totalLength <= rest.count, h.baseOffset >= minOffset,
                    Batch.verify(UnsafeRawBufferPointer(rebasing: rest[..<h.totalLength]), header: h)
                {
                    return p
                }
            }
            p += 1
        }
        return nil
    }

    // MARK: Appending

    /// Appends `records` as one batch and returns the offset of the first, once they are
    /// durable.
    public func append(_ records: [[UInt8]]) async throws -> UInt64 {
        try await append(Records(records))
    }

    /// Appends `records` as one batch and returns the offset of the first, once they are
    /// durable.
    public func append(_ records: Records) async throws -> UInt64 {
        precondition(!records.isEmpty)
        let batch = Batch(records: records, compress: config.compress)
        guard batch.bytes.count <= config.maxBatchBytes else {
            throw StoreError(.tooLarge, "batch of \(batch.bytes.count) bytes exceeds \(config.maxBatchBytes)")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { s -> Bool? in
                if s.closed { return nil }
                s.pending.append(Pending(batch: batch, continuation: continuation))
                if s.writing { return false }
                s.writing = true
                return true
            }
            switch start {
            case nil: continuation.resume(throwing: StoreError(.closed, "log is closed"))
            case true?: writer.async { self.writePending() }
            case false?: break
            }
        }
    }

    /// The writer: takes everything queued, writes it with one write and one fdatasync,
    /// then answers every appender. Loops while more arrived meanwhile.
    private func writePending() {
        while true {
            let (work, segment, base, position) = state.withLock { s -> ([Pending], Segment, UInt64, Int) in
                let work = s.pending
                s.pending.removeAll(keepingCapacity: true)
                if work.isEmpty { s.writing = false }
                return (work, s.segments.last!, s.nextOffset, s.segments.last!.size)
            }
            if work.isEmpty { return }
            do {
                var target = segment
                var writePosition = position
                if position > 0, position >= config.segmentBytes {
                    target = try Self.createSegment(baseOffset: base, config: config)
                    writePosition = 0
                    let newSegment = target
                    state.withLock {
                        $0.segments.append(newSegment)
                        $0.lastIndexedPosition = 0
                    }
                }
                var offsets: [UInt64] = []
                var buffer: [UInt8] = []
                buffer.reserveCapacity(work.reduce(0) { $0 + $1.batch.bytes.count })
                var next = base
                var newIndex: [(UInt64, Int)] = []
                var lastIndexed = state.withLock { $0.lastIndexedPosition }
                if writePosition == 0 { lastIndexed = -config.indexInterval }
                for var item in work {
                    item.batch.seal(baseOffset: next)
                    let at = writePosition + buffer.count
                    if at - lastIndexed >= config.indexInterval {
                        newIndex.append((next, at))
                        lastIndexed = at
                    }
                    offsets.append(next)
                    next += UInt64(item.batch.count)
                    buffer += item.batch.bytes
                }
                try buffer.withUnsafeBytes { try FileIO.write(target.fd, $0, at: writePosition, path: target.path) }
                try FileIO.sync(target.fd, path: target.path)
                let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    target.size = writePosition + buffer.count
                    target.index += newIndex
                    target.lastWrite = .now
                    s.lastIndexedPosition = lastIndexed
                    s.nextOffset = next
                    let w = Array(s.waiters.values)
                    s.waiters.removeAll()
                    return w
                }
                for (item, offset) in zip(work, offsets) { item.continuation.resume(returning: offset) }
                for w in waiters { w.resume() }
            } catch {
                // Nothing of this round is acknowledged; cut the file back so a partial
                // write cannot be read as data.
                try? FileIO.truncate(segment.fd, to: position, path: segment.path)
                for item in work { item.continuation.resume(throwing: error) }
            }
        }
    }

    // MARK: Reading

    /// Offset the next appended record will get (everything below it is durable).
    public var endOffset: UInt64 { state.withLock { $0.nextOffset } }

    /// Oldest offset still stored (retention deletes whole segments).
    public var startOffset: UInt64 { state.withLock { $0.segments.first!.baseOffset } }

    /// Bytes on disk and segment count.
    public var stats: (bytes: Int, segments: Int) {
        state.withLock { s in (s.segments.reduce(0) { $0 + $1.size }, s.segments.count) }
    }

    /// Reads durable records from `offset` on, up to `maxRecords` and about `maxBytes`
    /// (at least one record when any is there). Offsets below `startOffset` are answered
    /// from `startOffset`; corrupt batches are skipped.
    public func read(from offset: UInt64, maxRecords: Int, maxBytes: Int) throws -> ReadResult {
        var records: [(offset: UInt64, bytes: [UInt8])] = []
        let next = try forEachRecord(from: offset, maxRecords: maxRecords, maxBytes: maxBytes) { records.append(($0, Array($1))) }
        return ReadResult(records: records, nextOffset: next)
    }

    /// `read` without an array per record: calls `body` with each record's offset and bytes
    /// (valid only during the call), in order, and returns where the next read should start.
    /// The records stop before the first one that would pass `maxBytes` (unless it is the
    /// first), so the next read starts exactly there.
    public func forEachRecord(
        from offset: UInt64, maxRecords: Int, maxBytes: Int, _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void
    ) throws -> UInt64 {
        let (segments, end) = state.withLock { s in (s.segments.map { ($0, $0.size) }, s.nextOffset) }
        var from = max(offset, segments.first!.0.baseOffset)
        var count = 0
        var bytes = 0
        guard from < end else { return max(from, offset) }
        var index = segments.lastIndex { $0.0.baseOffset <= from } ?? 0
        var full = false
        while index < segments.count, !full {
            let (segment, size) = segments[index]
            let sparse = state.withLock { _ in segment.index }
            var position = sparse.last { $0.offset <= from }?.position ?? 0
            let corrupt = state.withLock { _ in segment.corrupt }
            while position < size, !full {
                if let bad = corrupt.first(where: { $0.contains(position) }) {
                    position = bad.upperBound
                    continue
                }
                let head = try FileIO.read(segment.fd, count: Batch.headerSize, at: position, path: segment.path)
                guard let header = head.withUnsafeBytes({ Batch.Header($0) }), position + header.totalLength <= size else {
                    throw StoreError(.corrupt, "\(segment.path): no batch header at byte \(position)")
                }
                if header.baseOffset + UInt64(header.count) <= from {
                    position += header.totalLength
                    continue
                }
                let whole = try FileIO.read(segment.fd, count: header.totalLength, at: position, path: segment.path)
                try whole.withUnsafeBytes { b in
                    guard Batch.verify(b, header: header) else {
                        throw StoreError(
                            .corrupt, "\(segment.path): batch at byte \(position) (offset \(header.baseOffset)) fails its checksum")
                    }
                    try Batch.forEachRecord(b, header: header, maxRawLength: config.maxBatchBytes) { i, record in
                        let o = header.baseOffset + UInt64(i)
                        guard !full, o >= from else { return }
                        guard count < maxRecords, count == 0 || bytes + record.count <= maxBytes else {
                            full = true
                            return
                        }
                        // An empty record is one `scrub` erased: its offset is passed over.
                        if record.count > 0 {
                            try body(o, record)
                            count += 1
                            bytes += record.count
                        }
                        from = o + 1
                    }
                }
                if count >= maxRecords || bytes >= maxBytes { full = true }
                if !full {
                    from = max(from, header.baseOffset + UInt64(header.count))
                    position += header.totalLength
                }
            }
            index += 1
        }
        return min(from, end)
    }

    /// Waits until the log has records at or beyond `offset`, or `timeout` passes.
    public func waitForRecords(from offset: UInt64, timeout: Duration) async {
        let id = state.withLock { s -> Int? in
            guard s.nextOffset <= offset, !s.closed else { return nil }
            s.nextWaiter += 1
            return s.nextWaiter
        }
        guard let id else { return }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.state.withLock { s -> CheckedContinuation<Void, Never>? in
                // Not registered yet: it must not start waiting once it is.
                guard let waiter = s.waiters.removeValue(forKey: id) else {
                    s.expired.insert(id)
                    return nil
                }
                return waiter
            }?.resume()
        }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { s -> Bool in
                if s.nextOffset > offset || s.closed || s.expired.remove(id) != nil { return true }
                s.waiters[id] = continuation
                return false
            }
            if ready { continuation.resume() }
        }
        timer.cancel()
        // A timer that fired after the waiter was woken (or cancelled late) leaves its mark: drop it.
        await timer.value
        state.withLock { _ = $0.expired.remove(id) }
    }

    // MARK: Erasure

    /// What one `scrub` did.
    public struct ScrubReport: Sendable, Equatable {
        /// Segment files rewritten.
        public var segments = 0
        /// Records emptied.
        public var records = 0
    }

    /// Starts a new active segment at the end of the log when the active one holds records,
    /// so that everything stored so far lies in sealed segments, which `scrub` rewrites.
    /// Runs on the writer's queue, between group commits.
    public func roll() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            writer.async {
                do {
                    let (size, next) = self.state.withLock { ($0.segments.last!.size, $0.nextOffset) }
                    if size > 0 {
                        let segment = try Self.createSegment(baseOffset: next, config: self.config)
                        self.state.withLock {
                            $0.segments.append(segment)
                            $0.lastIndexedPosition = 0
                        }
                    }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Empties every record below `offset` in the sealed segments that `erase` selects
    /// (called with each record's offset and bytes). Offsets stay as they were: reads pass
    /// over an emptied record, so consumers follow `nextOffset` across it. Each segment that
    /// holds a selected record is rewritten whole (batches re-encoded and checksummed where
    /// a record changed, copied where none did) to a temporary file that is synced and
    /// renamed over it; readers holding the old file finish on it. The active segment is
    /// never touched: `roll` first to seal it. Batches that failed verification at open
    /// cannot be read and are copied as they are.
    @discardableResult
    public func scrub(below offset: UInt64, _ erase: (UInt64, UnsafeRawBufferPointer) -> Bool) throws -> ScrubReport {
        try maintenance.withLock { _ in
            var report = ScrubReport()
            let sealed = state.withLock { s in s.segments.dropLast().filter { $0.baseOffset < offset } }
            for segment in sealed {
                let bytes = try FileIO.read(segment.fd, count: segment.size, at: 0, path: segment.path)
                var out: [UInt8] = []
                out.reserveCapacity(bytes.count)
                var index: [(offset: UInt64, position: Int)] = []
                var corrupt: [Range<Int>] = []
                var lastIndexed = -config.indexInterval
                var emptied = 0
                try bytes.withUnsafeBytes { all in
                    var position = 0
                    while position < all.count {
                        if let bad = segment.corrupt.first(where: { $0.contains(position) }) {
                            corrupt.append(out.count..<(out.count + bad.count))
                            out += all[bad]
                            position = bad.upperBound
                            continue
                        }
                        guard let header = Batch.Header(UnsafeRawBufferPointer(rebasing: all[position...])),
                            position + header.totalLength <= all.count
                        else { throw StoreError(.corrupt, "\(segment.path): no batch header at byte \(position)") }
                        let whole = UnsafeRawBufferPointer(rebasing: all[position..<(position + header.totalLength)])
                        guard Batch.verify(whole, header: header) else {
                            throw StoreError(.corrupt, "\(segment.path): batch at byte \(position) fails its checksum")
                        }
                        var records = Records(reservingCapacity: header.rawLength)
                        var changed = 0
                        try Batch.forEachRecord(whole, header: header, maxRawLength: config.maxBatchBytes) { i, record in
                            let o = header.baseOffset + UInt64(i)
                            if o < offset, record.count > 0, erase(o, record) {
                                changed += 1
                                records.append { _ in }
                            } else {
                                records.append { $0 += record }
                            }
                        }
                        if out.count - lastIndexed >= config.indexInterval {
                            index.append((header.baseOffset, out.count))
                            lastIndexed = out.count
                        }
                        if changed > 0 {
                            var batch = Batch(records: records, compress: config.compress)
                            batch.seal(baseOffset: header.baseOffset)
                            out += batch.bytes
                            emptied += changed
                        } else {
                            out += whole
                        }
                        position += header.totalLength
                    }
                }
                guard emptied > 0 else { continue }
                try AtomicFile.write(out, to: segment.path)
                let fd = try FileIO.open(segment.path, flags: O_RDWR)
                let replacement = Segment(baseOffset: segment.baseOffset, path: segment.path, fd: fd, size: out.count)
                replacement.index = index
                replacement.corrupt = corrupt
                replacement.lastWrite = segment.lastWrite
                state.withLock { s in
                    if let i = s.segments.firstIndex(where: { $0 === segment }) { s.segments[i] = replacement }
                }
                report.segments += 1
                report.records += emptied
            }
            return report
        }
    }

    // MARK: Retention and shutdown

    /// Deletes the oldest segments (never the active one) past the retention limits.
    /// Returns how many were deleted.
    @discardableResult
    public func enforceRetention() throws -> Int {
        try maintenance.withLock { _ in try deleteOldSegments() }
    }

    private func deleteOldSegments() throws -> Int {
        let victims = state.withLock { s -> [Segment] in
            var victims: [Segment] = []
            var total = s.segments.reduce(0) { $0 + $1.size }
            while s.segments.count > 1 {
                let oldest = s.segments[0]
                let tooBig = config.retentionBytes.map { total > $0 } ?? false
                let tooOld = config.retentionAge.map { oldest.lastWrite.duration(to: .now) > $0 } ?? false
                guard tooBig || tooOld else { break }
                total -= oldest.size
                victims.append(s.segments.removeFirst())
            }
            return victims
        }
        for v in victims { unlink(v.path) }
        if !victims.isEmpty { try FileIO.syncDirectory(config.directory) }
        return victims.count
    }

    /// Waits for queued appends, then refuses new ones.
    public func close() async {
        while state.withLock({ $0.writing }) {
            try? await Task.sleep(for: .milliseconds(1))
        }
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }
}
