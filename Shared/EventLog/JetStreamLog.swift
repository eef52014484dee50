internal import CNATS
import Dispatch
import Foundation
public import Store
import Synchronization

/// The replicated engine: one NATS JetStream stream (file storage, `replicas` copies in a
/// RAFT group), a subject per partition (`persona.events.<p>`), through libnats.
///
/// - An append publishes each partition's records as one message (several past the payload
///   limit) with a message id (JetStream drops a repeat within the duplicate window) and
///   answers once each is acknowledged, that is held by a quorum of the replicas; a record's
///   offset is its message's stream sequence and its place in the message.
/// - A read is an ordered consumer of the partition's subject from the asked sequence, kept
///   for the next read that starts where this one ended (a consumer polling its partition
///   reads on without a new consumer each time).
/// - Retention (`maxAge`, `maxBytes`) is the stream's own: a consumer that falls behind it
///   finds its next offset gone and reads on from the oldest record still held.
///
/// Calls into libnats that may wait on the network run on a thread of their own, never on
/// the caller's task.
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
        /// Largest message published (nats-server's default payload limit is 1 MiB).
        public var maxMessageBytes = 900 << 10

        public init(servers: [String], partitions: Int) {
            self.servers = servers
            self.partitions = partitions
        }
    }

    public let config: Config
    public var partitions: Int { config.partitions }
    public var denseOffsets: Bool { false }
    public var description: String {
        "\(config.servers.joined(separator: ",")) stream \(config.stream), R\(config.replicas)"
    }

    private let connection: OpaquePointer
    private let js: OpaquePointer
    private let router: AckRouter
    private let readers = Mutex<[Int: [Reader]]>([:])

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

    /// A record's offset: its message's stream sequence, then its place in the message.
    static func offset(sequence: UInt64, index: Int) -> UInt64 { sequence << 16 | UInt64(index) }
    static func sequence(of offset: UInt64) -> UInt64 { offset >> 16 }
    static func index(of offset: UInt64) -> Int { Int(offset & 0xFFFF) }

    /// Publishes the records as few messages (each a run of consecutive records up to
    /// `maxMessageBytes`, the server's payload limit, and 65,535 records), one after
    /// another, and answers once each is acknowledged. A message is stored whole or not at
    /// all, so the partition keeps the records' order even when a publish fails.
    ///
    /// While a server is down the stream may be without a leader for a second or two: a
    /// publish that found none is sent again until `ackTimeout` has passed. A message's id
    /// (its first record's id and its length) makes that safe: JetStream answers a message
    /// it already holds with its sequence, and stores nothing again.
    public func append(_ records: Records, messageID: (Int) -> String, to p: Int) async throws -> [UInt64] {
        // Runs of consecutive records, each one message: its records and its first's index.
        var messages: [(records: Records, first: Int)] = []
        if records.body.count <= config.maxMessageBytes && records.count <= 0xFFFF {
            messages = [(records, 0)]
        } else {
            var k = 0
            records.forEach { bytes in
                if let last = messages.last, last.records.body.count + 4 + bytes.count <= config.maxMessageBytes,
                    last.records.count < 0xFFFF
                {
                    messages[messages.count - 1].records.append { $0.append(contentsOf: bytes) }
                } else {
                    var message = Records()
                    message.append { $0.append(contentsOf: bytes) }
                    messages.append((message, k))
                }
                k += 1
            }
        }
        var offsets: [UInt64] = []
        offsets.reserveCapacity(records.count)
        for (message, first) in messages where !message.isEmpty {
            let id = "\(messageID(first))+\(message.count)", timeout = config.ackTimeout
            let sequence = try await retrying { try await self.publish(message.body, id: id, to: p, timeout: timeout) }
            offsets += (0..<message.count).map { Self.offset(sequence: sequence, index: $0) }
        }
        return offsets
    }

    /// Publishes one message and returns its sequence once JetStream acknowledged it.
    private func publish(_ body: [UInt8], id: String, to p: Int, timeout: Duration) async throws -> UInt64 {
        let ack = PendingAck()
        let subject = subject(p)
        let router = router, js = js
        return try await withCheckedThrowingContinuation { continuation in
            ack.start(continuation)
            var msg: OpaquePointer?
            let made = body.withUnsafeBytes { natsMsg_Create(&msg, subject, nil, $0.baseAddress, Int32($0.count)) }
            guard made == NATS_OK, let created = msg else {
                ack.settle(sequence: nil, error: "message: \(String(cString: natsStatus_GetText(made)))")
                return
            }
            // Known to the router before the acknowledgement can arrive.
            router.expect(created, ack)
            var options = jsPubOptions()
            jsPubOptions_Init(&options)
            let status = id.withCString { id in
                options.MsgId = id
                return js_PublishMsgAsync(js, &msg, &options)
            }
            if status != NATS_OK {
                router.forget(created)
                natsMsg_Destroy(msg)
                ack.settle(sequence: nil, error: "publish: \(String(cString: natsStatus_GetText(status)))")
            }
            ack.setTimer(
                Task {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    if ack.fail("no acknowledgement from JetStream within \(timeout)") { router.forget(ack) }
                })
        }
    }

    // MARK: Reading

    /// An ordered consumer of one partition, positioned at `next`.
    final class Reader: @unchecked Sendable {
        let subscription: OpaquePointer
        var next: UInt64
        /// Messages on the subject after the last one read (nil before the first).
        var pending: UInt64?
        /// The rest of a message a read stopped in (its byte budget was spent).
        var held: (sequence: UInt64, records: [[UInt8]], from: Int)?

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
        // A consumer that stopped delivering (its servers restarted under it) is dropped, and
        // the read tried again on a new one from the same offset.
        let (reader, records, next) = try await retrying { () async throws -> (Reader, [(UInt64, [UInt8])], UInt64) in
            let reader = try await self.takeReader(p, at: offset)
            do {
                // Caught up at its last read: whether records came since, the partition's end
                // says (a read that may wait instead waits for the consumer's next delivery).
                if reader.pending == 0, wait == .zero, reader.held == nil, try await self.end(p) > reader.next {
                    reader.pending = nil
                }
                let (records, next) = try await self.blocking { [self] in
                    try self.read(reader, maxRecords: maxRecords, maxBytes: maxBytes, wait: wait)
                }
                return (reader, records, next)
            } catch {
                reader.destroy()
                throw error
            }
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
        let end = try await end(p)
        return try await blocking { [self] in
            var options = jsSubOptions()
            jsSubOptions_Init(&options)
            options.Ordered = true
            let sequence = Self.sequence(of: offset)
            if sequence > 1 {
                options.Config.DeliverPolicy = js_DeliverByStartSequence
                options.Config.OptStartSeq = sequence
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

    /// Reads on from `reader.next` (blocking: run through `blocking`).
    private func read(_ reader: Reader, maxRecords: Int, maxBytes: Int, wait: Duration) throws -> ([(UInt64, [UInt8])], UInt64) {
        var out: [(UInt64, [UInt8])] = []
        var bytes = 0
        var next = reader.next
        /// Hands out the records of message `sequence` from `from` on, while the budget lasts.
        func take(_ sequence: UInt64, _ records: [[UInt8]], from: Int) -> Bool {
            for i in from..<records.count {
                if !out.isEmpty, out.count >= maxRecords || bytes + records[i].count > maxBytes {
                    reader.held = (sequence, records, i)
                    return false
                }
                out.append((Self.offset(sequence: sequence, index: i), records[i]))
                bytes += records[i].count
                next = i + 1 < records.count ? Self.offset(sequence: sequence, index: i + 1) : Self.offset(sequence: sequence + 1, index: 0)
            }
            return true
        }
        if let held = reader.held {
            reader.held = nil
            guard take(held.sequence, held.records, from: held.from) else { return (out, next) }
        }
        while out.count < maxRecords {
            // Caught up: wait only when asked to and nothing was read yet.
            let timeout: Duration
            if reader.pending == 0 {
                guard out.isEmpty, wait > .zero else { break }
                timeout = wait
            } else {
                timeout = .seconds(2)
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
            var records: [[UInt8]] = []
            if let data = natsMsg_GetData(msg) {
                Records.forEach(in: UnsafeRawBufferPointer(start: data, count: length)) { records.append(Array($0)) }
            }
            // The first message of a read that starts inside it: from that record on.
            let from = sequence == Self.sequence(of: next) ? Self.index(of: next) : 0
            if from >= records.count {
                next = Self.offset(sequence: sequence + 1, index: 0)
                continue
            }
            if !take(sequence, records, from: from) { break }
        }
        return (out, next)
    }

    public func bounds(_ p: Int) async throws -> (start: UInt64, end: UInt64) {
        let first = try await retrying { try await self.blocking { [self] in try streamState().FirstSeq } }
        return (Self.offset(sequence: first, index: 0), try await end(p))
    }

    /// After the partition's last message (its subject's last sequence + 1), 0 while empty.
    public func end(_ p: Int) async throws -> UInt64 {
        let subject = subject(p)
        return try await retrying {
            try await self.blocking { [self] in
                var last: OpaquePointer?
                var code = jsErrCode(rawValue: 0)
                let found = js_GetLastMsg(&last, js, config.stream, subject, nil, &code)
                if found == NATS_OK, let last {
                    defer { natsMsg_Destroy(last) }
                    return Self.offset(sequence: natsMsg_GetSequence(last) + 1, index: 0)
                }
                guard code == JSNoMessageFoundErr || found == NATS_NOT_FOUND else {
                    throw Self.failure(found, code, "reading the end of \(subject)")
                }
                return 0
            }
        }
    }

    /// The stream's state now (one JetStream API call; blocking).
    private func streamState() throws -> jsStreamState {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        let status = js_GetStreamInfo(&info, js, config.stream, nil, &code)
        guard status == NATS_OK, let info else { throw Self.failure(status, code, "reading stream \(config.stream)") }
        defer { jsStreamInfo_Destroy(info) }
        return info.pointee.State
    }

    public func stats(_ p: Int) async -> (bytes: Int, segments: Int) {
        let bytes = try? await blocking { [self] in try streamState().Bytes }
        return (Int(bytes ?? 0), 0)
    }

    /// Appends the erasure, then erases (overwrites and removes, on every replica) each
    /// earlier message of the partition whose records `erase` all selects. A message that
    /// also holds other users' records cannot be rewritten in place: it stays until the
    /// stream's retention drops it, and ingest leaves its erased records out of every read
    /// meanwhile. Returns the records selected.
    public func erase(
        appending record: [UInt8], messageID: String, to p: Int, _ erase: (UInt64, UnsafeRawBufferPointer) -> Bool
    ) async throws -> (offset: UInt64, records: Int, segments: Int) {
        let offset: UInt64
        do {
            offset = try await append(Records([record]), messageID: { _ in messageID }, to: p)[0]
        } catch {
            throw EraseError(storedAt: nil, underlying: error)
        }
        do {
            // Per message: how many records it holds, how many are the user's.
            var messages: [UInt64: (records: Int, selected: Int)] = [:]
            var from = try await bounds(p).start
            while from < offset {
                let before = from
                from = try await read(p, from: from, maxRecords: 10_000, maxBytes: 16 << 20, wait: .zero) { at, bytes in
                    guard at < offset else { return }
                    messages[Self.sequence(of: at), default: (0, 0)].records += 1
                    if erase(at, bytes) { messages[Self.sequence(of: at), default: (0, 0)].selected += 1 }
                }
                if from == before { break }
            }
            let whole = messages.filter { $0.value.selected > 0 && $0.value.selected == $0.value.records }.keys.sorted()
            let stream = config.stream
            try await blocking { [self] in
                for sequence in whole {
                    var code = jsErrCode(rawValue: 0)
                    let status = js_EraseMsg(js, stream, sequence, nil, &code)
                    guard status == NATS_OK else { throw Self.failure(status, code, "erasing message \(sequence)") }
                }
            }
            return (offset, messages.values.reduce(0) { $0 + $1.selected }, 0)
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

    /// `work`, tried again while it fails as unavailable (a server down, a leader being
    /// elected: a second or two), for up to `ackTimeout`.
    private func retrying<T>(_ work: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + config.ackTimeout
        while true {
            do {
                return try await work()
            } catch let error as StoreError where error.code == .unavailable && ContinuousClock.now + .milliseconds(200) < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Runs `work`, which may wait on the network (a long poll waits seconds), on a thread of
    /// its own: a serial queue gets a thread whenever it has work, where a concurrent queue
    /// runs at most about one call a core and would queue every other call behind long polls.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "persona.jetstream.call").async { continuation.resume(with: Result { try work() }) }
        }
    }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue(label: "persona.jetstream.call").async { continuation.resume(returning: work()) }
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
/// published message) to the publish that is waiting for them, by the message's address.
final class AckRouter: Sendable {
    private let waiting = Mutex<[UInt: PendingAck]>([:])

    private static func key(_ msg: OpaquePointer) -> UInt { UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(msg))) }

    func expect(_ msg: OpaquePointer, _ ack: PendingAck) {
        waiting.withLock { $0[Self.key(msg)] = ack }
    }

    func forget(_ msg: OpaquePointer) {
        _ = waiting.withLock { $0.removeValue(forKey: Self.key(msg)) }
    }

    /// Forgets `ack`'s message (it timed out; a late acknowledgement is dropped).
    func forget(_ ack: PendingAck) {
        waiting.withLock { all in
            for (key, waiting) in all where waiting === ack { all.removeValue(forKey: key) }
        }
    }

    func settle(_ msg: OpaquePointer, sequence: UInt64?, error: String?) {
        waiting.withLock { $0.removeValue(forKey: Self.key(msg)) }?.settle(sequence: sequence, error: error)
    }
}

/// One publish waiting for its acknowledgement: the message's sequence, or why none came.
final class PendingAck: Sendable {
    private struct State {
        var continuation: CheckedContinuation<UInt64, any Error>?
        var timer: Task<Void, Never>?
        var done = false
    }
    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<UInt64, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// The task that fails the publish when its acknowledgement is late (cancelled once it
    /// came).
    func setTimer(_ timer: Task<Void, Never>) {
        let cancel = state.withLock { s -> Bool in
            s.timer = timer
            return s.done
        }
        if cancel { timer.cancel() }
    }

    func settle(sequence: UInt64?, error: String?) {
        let waiting = state.withLock { s -> (CheckedContinuation<UInt64, any Error>, Task<Void, Never>?)? in
            guard let continuation = s.continuation else { return nil }
            s.continuation = nil
            s.done = true
            return (continuation, s.timer)
        }
        guard let (continuation, timer) = waiting else { return }
        timer?.cancel()
        if let sequence {
            continuation.resume(returning: sequence)
        } else {
            continuation.resume(throwing: StoreError(.unavailable, "JetStream: \(error ?? "not acknowledged")"))
        }
    }

    /// Fails the publish if it is still waiting; true when it was.
    func fail(_ reason: String) -> Bool {
        let continuation = state.withLock { s -> CheckedContinuation<UInt64, any Error>? in
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
