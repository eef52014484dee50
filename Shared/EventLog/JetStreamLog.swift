internal import CNATS
import Dispatch
import Foundation
public import Store
import Synchronization

/// The replicated engine: one NATS JetStream stream (file storage, `replicas` copies in a
/// RAFT group), a subject per partition (`persona.events.<p>`), through libnats.
///
/// - An append publishes every record asynchronously with its message id (JetStream drops a
///   repeat within the duplicate window) and answers once each is acknowledged, that is held
///   by a quorum of the replicas; a record's offset is its stream sequence.
/// - A read is an ordered consumer of the partition's subject from the asked sequence, kept
///   for the next read that starts where this one ended (a consumer polling its partition
///   reads on without a new consumer each time).
/// - Retention (`maxAge`, `maxBytes`) is the stream's own: a consumer that falls behind it
///   finds its next offset gone and reads on from the oldest record still held.
///
/// Calls into libnats that may wait on the network run on a dispatch queue, never on the
/// caller's task.
public final class JetStreamLog: EventLog, @unchecked Sendable {
    public struct Config: Sendable {
        public var servers: [String]
        public var partitions: Int
        public var stream = "persona"
        public var subjectPrefix = "persona.events"
        /// Copies of every record (a RAFT group of this many servers; 1, 3 or 5).
        public var replicas = 3
        public var maxAge: Duration?
        public var maxBytes: Int?
        /// How long JetStream remembers message ids to drop repeats.
        public var duplicateWindow: Duration = .seconds(120)
        /// How long an append waits for its acknowledgements.
        public var ackTimeout: Duration = .seconds(10)

        public init(servers: [String], partitions: Int) {
            self.servers = servers
            self.partitions = partitions
        }
    }

    public let config: Config
    public var partitions: Int { config.partitions }
    public var usesMessageIDs: Bool { true }
    public var description: String {
        "\(config.servers.joined(separator: ",")) stream \(config.stream), R\(config.replicas)"
    }

    private let connection: OpaquePointer
    private let js: OpaquePointer
    private let router: AckRouter
    private let readers = Mutex<[Int: [Reader]]>([:])
    private let queue = DispatchQueue(label: "persona.jetstream", attributes: .concurrent)

    /// Connects (retrying while the servers come up, for `connectTimeout`) and creates the
    /// stream, or checks that the one there has this many partitions.
    public init(_ config: Config, connectTimeout: Duration = .seconds(30)) throws {
        self.config = config
        var options: OpaquePointer?
        try Self.check(natsOptions_Create(&options), "creating connection options")
        defer { natsOptions_Destroy(options) }
        var servers = config.servers.map { strdup($0) }
        defer { servers.forEach { free($0) } }
        try servers.withUnsafeMutableBufferPointer { buffer in
            try buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { list in
                try Self.check(natsOptions_SetServers(options, list.baseAddress, Int32(list.count)), "setting servers")
            }
        }
        // Reconnect for ever, quickly: a server of the cluster may come back at any time.
        _ = natsOptions_SetMaxReconnect(options, -1)
        _ = natsOptions_SetReconnectWait(options, 100)
        _ = natsOptions_SetTimeout(options, 2000)
        var nc: OpaquePointer?
        let deadline = ContinuousClock.now + connectTimeout
        var status = natsConnection_Connect(&nc, options)
        while status != NATS_OK, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            status = natsConnection_Connect(&nc, options)
        }
        try Self.check(status, "connecting to \(config.servers.joined(separator: ","))")
        connection = nc!

        router = AckRouter()
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        // JetStream API calls (stream info, last record, erase) give up after 2 s: a retry then
        // meets a leader elected meanwhile.
        jsOptions.Wait = 2000
        jsOptions.PublishAsync.MaxPending = 1 << 20
        jsOptions.PublishAsync.AckHandler = { _, msg, ack, error, closure in
            let router = Unmanaged<AckRouter>.fromOpaque(closure!).takeUnretainedValue()
            if let msg {
                router.settle(
                    msg, sequence: ack?.pointee.Sequence,
                    error: error.map { e in
                        e.pointee.ErrText.map { String(cString: $0) } ?? String(cString: natsStatus_GetText(e.pointee.Err))
                    })
            }
            natsMsg_Destroy(msg)
        }
        jsOptions.PublishAsync.AckHandlerClosure = Unmanaged.passUnretained(router).toOpaque()
        var context: OpaquePointer?
        let made = natsConnection_JetStream(&context, connection, &jsOptions)
        guard made == NATS_OK, let context else {
            natsConnection_Destroy(connection)
            throw StoreError(.unavailable, "JetStream context: \(String(cString: natsStatus_GetText(made)))")
        }
        js = context
        // Every property is set: a throw from here on runs deinit, which frees both. A cluster
        // just started answers JetStream calls once it has elected its leader: retried.
        while true {
            do {
                try ensureStream()
                break
            } catch let error as StoreError where error.code == .unavailable && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
    }

    deinit {
        readers.withLock { all in all.values.joined().forEach { $0.destroy() } }
        jsCtx_Destroy(js)
        natsConnection_Destroy(connection)
    }

    private func subject(_ p: Int) -> String { "\(config.subjectPrefix).\(p)" }

    private var streamDescription: String { "persona event log, \(config.partitions) partitions" }

    private func ensureStream() throws {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        let found = js_GetStreamInfo(&info, js, config.stream, nil, &code)
        if found == NATS_OK, let info {
            defer { jsStreamInfo_Destroy(info) }
            let existing = info.pointee.Config?.pointee.Description.map { String(cString: $0) } ?? ""
            guard existing == streamDescription else {
                throw StoreError(
                    .invalidArgument,
                    """
                    stream \(config.stream) holds "\(existing)"; started with \(config.partitions) partitions. \
                    Partition count cannot change once data exists.
                    """)
            }
            return
        }
        guard code == JSStreamNotFoundErr else { throw Self.failure(found, code, "reading stream \(config.stream)") }
        var stream = jsStreamConfig()
        jsStreamConfig_Init(&stream)
        let name = strdup(config.stream), description = strdup(streamDescription)
        var subjects: [UnsafePointer<CChar>?] = [UnsafePointer(strdup(config.subjectPrefix + ".*"))]
        defer {
            free(name)
            free(description)
            free(UnsafeMutablePointer(mutating: subjects[0]))
        }
        stream.Name = UnsafePointer(name)
        stream.Description = UnsafePointer(description)
        stream.Storage = js_FileStorage
        stream.Retention = js_LimitsPolicy
        stream.Replicas = Int64(config.replicas)
        stream.Duplicates = Int64(config.duplicateWindow / .nanoseconds(1))
        if let age = config.maxAge { stream.MaxAge = Int64(age / .nanoseconds(1)) }
        if let bytes = config.maxBytes { stream.MaxBytes = Int64(bytes) }
        var created: UnsafeMutablePointer<jsStreamInfo>?
        let status = subjects.withUnsafeMutableBufferPointer { list in
            stream.Subjects = UnsafeMutablePointer(list.baseAddress)
            stream.SubjectsLen = 1
            return js_AddStream(&created, js, &stream, nil, &code)
        }
        guard status == NATS_OK else {
            throw Self.failure(status, code, "creating stream \(config.stream) with \(config.replicas) replicas")
        }
        jsStreamInfo_Destroy(created)
    }

    // MARK: Appending

    /// Publishes the records and waits for every acknowledgement. While a server is down the
    /// stream's leader may move (a second or two without one): a publish that found none is
    /// sent again, whole, until `ackTimeout` has passed. The message ids make that safe: a
    /// record already stored is answered with its sequence, not stored again.
    public func append(_ records: Records, messageIDs: [String], to p: Int) async throws -> [UInt64] {
        precondition(messageIDs.count == records.count, "one message id per record")
        guard !records.isEmpty else { return [] }
        let deadline = ContinuousClock.now + config.ackTimeout
        while true {
            do {
                return try await publish(records, messageIDs: messageIDs, to: p, timeout: deadline - ContinuousClock.now)
            } catch let error as StoreError where error.code == .unavailable && ContinuousClock.now + .milliseconds(200) < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func publish(_ records: Records, messageIDs: [String], to p: Int, timeout: Duration) async throws -> [UInt64] {
        let batch = PendingBatch(count: records.count)
        let subject = subject(p)
        let router = router, js = js
        return try await withCheckedThrowingContinuation { continuation in
            batch.start(continuation)
            var k = 0
            records.forEach { bytes in
                defer { k += 1 }
                var msg: OpaquePointer?
                let made = natsMsg_Create(&msg, subject, nil, bytes.baseAddress, Int32(bytes.count))
                guard made == NATS_OK, let created = msg else {
                    batch.settle(k, sequence: nil, error: "message: \(String(cString: natsStatus_GetText(made)))")
                    return
                }
                // Known to the router before the acknowledgement can arrive.
                router.expect(created, batch, k)
                var options = jsPubOptions()
                jsPubOptions_Init(&options)
                let status = messageIDs[k].withCString { id in
                    options.MsgId = id
                    return js_PublishMsgAsync(js, &msg, &options)
                }
                if status != NATS_OK {
                    router.forget(created)
                    natsMsg_Destroy(msg)
                    batch.settle(k, sequence: nil, error: "publish: \(String(cString: natsStatus_GetText(status)))")
                }
            }
            batch.setTimer(
                Task {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    if batch.fail("no acknowledgement from JetStream within \(timeout)") { router.forget(batch) }
                })
        }
    }

    // MARK: Reading

    /// An ordered consumer of one partition, positioned at `next`.
    final class Reader: @unchecked Sendable {
        let subscription: OpaquePointer
        var next: UInt64
        /// Records on the subject after the last one read (nil before the first).
        var pending: UInt64?
        /// A record read but not handed out (it would have passed a read's byte budget).
        var held: (UInt64, [UInt8])?

        init(subscription: OpaquePointer, next: UInt64) {
            self.subscription = subscription
            self.next = next
        }

        func destroy() {
            _ = natsSubscription_Unsubscribe(subscription)
            natsSubscription_Destroy(subscription)
        }
    }

    public func read(
        _ p: Int, from offset: UInt64, maxRecords: Int, maxBytes: Int, wait: Duration,
        _ body: (UInt64, UnsafeRawBufferPointer) -> Void
    ) async throws -> UInt64 {
        let reader = try await takeReader(p, at: offset)
        // Caught up at its last read: whether records came since, the partition's end says
        // (a read that may wait instead waits for the consumer's next delivery).
        if reader.pending == 0, wait == .zero, reader.held == nil, try await bounds(p).end > reader.next { reader.pending = nil }
        let (records, next) = try await blocking { [self] in
            try self.read(reader, maxRecords: maxRecords, maxBytes: maxBytes, wait: wait)
        }
        reader.next = next
        giveBack(reader, p)
        for (offset, bytes) in records { bytes.withUnsafeBytes { body(offset, $0) } }
        return next
    }

    /// A reader at `offset`: the one a previous read left there, or a new ordered consumer.
    private func takeReader(_ p: Int, at offset: UInt64) async throws -> Reader {
        if let reader = readers.withLock({ all -> Reader? in
            guard let i = all[p]?.firstIndex(where: { $0.next == offset }) else { return nil }
            return all[p]!.remove(at: i)
        }) {
            return reader
        }
        let subject = subject(p)
        let end = try await bounds(p).end
        return try await blocking { [self] in
            var options = jsSubOptions()
            jsSubOptions_Init(&options)
            options.Ordered = true
            if offset > 1 {
                options.Config.DeliverPolicy = js_DeliverByStartSequence
                options.Config.OptStartSeq = offset
            } else {
                options.Config.DeliverPolicy = js_DeliverAll
            }
            var subscription: OpaquePointer?
            var code = jsErrCode(rawValue: 0)
            let status = js_SubscribeSync(&subscription, js, subject, nil, &options, &code)
            guard status == NATS_OK, let subscription else { throw Self.failure(status, code, "reading \(subject)") }
            let reader = Reader(subscription: subscription, next: offset)
            if end <= offset { reader.pending = 0 }
            return reader
        }
    }

    /// Keeps `reader` for the next read from where it stopped (a few per partition).
    private func giveBack(_ reader: Reader, _ p: Int) {
        let dropped = readers.withLock { all -> Reader? in
            all[p, default: []].append(reader)
            return all[p]!.count > 4 ? all[p]!.removeFirst() : nil
        }
        dropped?.destroy()
    }

    /// Reads on from `reader.next` (blocking; on the dispatch queue).
    private func read(_ reader: Reader, maxRecords: Int, maxBytes: Int, wait: Duration) throws -> ([(UInt64, [UInt8])], UInt64) {
        var out: [(UInt64, [UInt8])] = []
        var bytes = 0
        var next = reader.next
        func take(_ record: (UInt64, [UInt8])) -> Bool {
            if !out.isEmpty, bytes + record.1.count > maxBytes {
                reader.held = record
                return false
            }
            out.append(record)
            bytes += record.1.count
            next = record.0 + 1
            return true
        }
        if let held = reader.held {
            reader.held = nil
            _ = take(held)
        }
        while out.count < maxRecords, reader.held == nil {
            // Caught up: wait only when asked to and nothing was read yet.
            let timeout: Duration
            if reader.pending == 0 {
                guard out.isEmpty, wait > .zero else { break }
                timeout = wait
            } else {
                timeout = .seconds(5)
            }
            var msg: OpaquePointer?
            let status = natsSubscription_NextMsg(&msg, reader.subscription, Int64(timeout / .milliseconds(1)))
            if status == NATS_TIMEOUT {
                if reader.pending == 0 { break }
                throw StoreError(.unavailable, "JetStream did not deliver the next record within \(timeout)")
            }
            guard status == NATS_OK, let msg else {
                throw StoreError(.unavailable, "reading: \(String(cString: natsStatus_GetText(status)))")
            }
            defer { natsMsg_Destroy(msg) }
            var meta: UnsafeMutablePointer<jsMsgMetaData>?
            guard natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta else { continue }
            let sequence = meta.pointee.Sequence.Stream
            reader.pending = meta.pointee.NumPending
            jsMsgMetaData_Destroy(meta)
            let length = Int(natsMsg_GetDataLength(msg))
            let data = natsMsg_GetData(msg).map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
            if !take((sequence, data)) { break }
        }
        return (out, next)
    }

    public func bounds(_ p: Int) async throws -> (start: UInt64, end: UInt64) {
        let subject = subject(p)
        return try await blocking { [self] in
            var info: UnsafeMutablePointer<jsStreamInfo>?
            var code = jsErrCode(rawValue: 0)
            let status = js_GetStreamInfo(&info, js, config.stream, nil, &code)
            guard status == NATS_OK, let info else { throw Self.failure(status, code, "reading stream \(config.stream)") }
            let first = info.pointee.State.FirstSeq
            jsStreamInfo_Destroy(info)
            var last: OpaquePointer?
            let found = js_GetLastMsg(&last, js, config.stream, subject, nil, &code)
            if found == NATS_OK, let last {
                defer { natsMsg_Destroy(last) }
                return (first, natsMsg_GetSequence(last) + 1)
            }
            guard code == JSNoMessageFoundErr || found == NATS_NOT_FOUND else {
                throw Self.failure(found, code, "reading the end of \(subject)")
            }
            return (first, 0)
        }
    }

    public func stats(_ p: Int) -> (bytes: Int, segments: Int) {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        guard js_GetStreamInfo(&info, js, config.stream, nil, nil) == NATS_OK, let info else { return (0, 0) }
        defer { jsStreamInfo_Destroy(info) }
        return (Int(info.pointee.State.Bytes), 0)
    }

    /// Appends the erasure, then erases (overwrites and removes, on every replica) each
    /// earlier record of the partition that `erase` selects.
    public func erase(
        appending record: [UInt8], messageID: String, to p: Int, _ erase: (UInt64, UnsafeRawBufferPointer) -> Bool
    ) async throws -> (offset: UInt64, records: Int, segments: Int) {
        let offset: UInt64
        do {
            offset = try await append(Records([record]), messageIDs: [messageID], to: p)[0]
        } catch {
            throw EraseError(storedAt: nil, underlying: error)
        }
        do {
            var doomed: [UInt64] = []
            var from = try await bounds(p).start
            while from < offset {
                let before = from
                from = try await read(p, from: from, maxRecords: 10_000, maxBytes: 16 << 20, wait: .zero) { at, bytes in
                    if at < offset, erase(at, bytes) { doomed.append(at) }
                }
                if from == before { break }
            }
            let stream = config.stream, sequences = doomed
            try await blocking { [self] in
                for sequence in sequences {
                    var code = jsErrCode(rawValue: 0)
                    let status = js_EraseMsg(js, stream, sequence, nil, &code)
                    guard status == NATS_OK else { throw Self.failure(status, code, "erasing record \(sequence)") }
                }
            }
            return (offset, doomed.count, 0)
        } catch {
            throw EraseError(storedAt: offset, underlying: error)
        }
    }

    public func enforceRetention() {}

    public func close() async {
        readers.withLock { all in
            all.values.joined().forEach { $0.destroy() }
            all.removeAll()
        }
        _ = await blocking { [self] in natsConnection_Close(connection) }
    }

    // MARK: Helpers

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }

    private static func check(_ status: natsStatus, _ what: String) throws {
        guard status != NATS_OK else { return }
        throw StoreError(.unavailable, "NATS, \(what): \(String(cString: natsStatus_GetText(status)))")
    }

    private static func failure(_ status: natsStatus, _ code: jsErrCode, _ what: String) -> StoreError {
        var last = NATS_OK
        let text = nats_GetLastError(&last).map { String(cString: $0) } ?? String(cString: natsStatus_GetText(status))
        return StoreError(.unavailable, "JetStream, \(what): \(text) (error \(code.rawValue))")
    }
}

/// Routes JetStream's acknowledgements (which arrive on libnats's threads, one per
/// published message) to the append that is waiting for them, by the message's address.
final class AckRouter: Sendable {
    private struct Waiting {
        let batch: PendingBatch
        let index: Int
    }
    private let waiting = Mutex<[UInt: Waiting]>([:])

    func expect(_ msg: OpaquePointer, _ batch: PendingBatch, _ index: Int) {
        waiting.withLock { $0[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(msg)))] = Waiting(batch: batch, index: index) }
    }

    func forget(_ msg: OpaquePointer) {
        _ = waiting.withLock { $0.removeValue(forKey: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(msg)))) }
    }

    /// Forgets every message of `batch` (it timed out; late acknowledgements are dropped).
    func forget(_ batch: PendingBatch) {
        waiting.withLock { all in
            for (key, w) in all where w.batch === batch { all.removeValue(forKey: key) }
        }
    }

    func settle(_ msg: OpaquePointer, sequence: UInt64?, error: String?) {
        let w = waiting.withLock { $0.removeValue(forKey: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(msg)))) }
        w?.batch.settle(w!.index, sequence: sequence, error: error)
    }
}

/// One append's acknowledgements: each record's sequence, answered when all are in.
final class PendingBatch: Sendable {
    private struct State {
        var sequences: [UInt64]
        var left: Int
        var error: String?
        var continuation: CheckedContinuation<[UInt64], any Error>?
        var timer: Task<Void, Never>?
        var done = false
    }
    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(sequences: Array(repeating: 0, count: count), left: count))
    }

    func start(_ continuation: CheckedContinuation<[UInt64], any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// The task that fails the append when its acknowledgements are late (cancelled once
    /// they are all in).
    func setTimer(_ timer: Task<Void, Never>) {
        let cancel = state.withLock { s -> Bool in
            s.timer = timer
            return s.done
        }
        if cancel { timer.cancel() }
    }

    func settle(_ index: Int, sequence: UInt64?, error: String?) {
        typealias Finished = (CheckedContinuation<[UInt64], any Error>, Result<[UInt64], any Error>, Task<Void, Never>?)
        let finished = state.withLock { s -> Finished? in
            guard let continuation = s.continuation else { return nil }
            if let sequence { s.sequences[index] = sequence } else { s.error = s.error ?? error ?? "not acknowledged" }
            s.left -= 1
            guard s.left == 0 else { return nil }
            s.continuation = nil
            s.done = true
            if let error = s.error { return (continuation, .failure(StoreError(.unavailable, "JetStream: \(error)")), s.timer) }
            return (continuation, .success(s.sequences), s.timer)
        }
        if let (continuation, result, timer) = finished {
            timer?.cancel()
            continuation.resume(with: result)
        }
    }

    /// Fails the append if it is still waiting; true when it was.
    func fail(_ reason: String) -> Bool {
        let continuation = state.withLock { s -> CheckedContinuation<[UInt64], any Error>? in
            defer {
                s.continuation = nil
                s.done = true
            }
            return s.continuation
        }
        continuation?.resume(throwing: StoreError(.unavailable, reason))
        return continuation != nil
    }
}
