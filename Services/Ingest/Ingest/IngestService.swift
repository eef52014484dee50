import DataStructures
import EventLog
import Foundation
import Logging
import PersonalData
import Prometheus
public import RPC
public import ServiceKit
import Store
import Synchronization
import Wire

/// The ingest service: owns the durable event log. Producers append batches of events;
/// each event is validated, pseudonymised, checked against the ids already seen, and
/// appended to its user's partition of the event log (`EventLog`: the embedded segmented
/// log, or a replicated JetStream stream). An Append is answered only once the log holds
/// its events durably. Consumers (feature, model, ...) read each partition by offset here.
public final class IngestService: PersonaService {
    public static let peer = Peer.ingest

    let context: ServiceContext
    let settings: IngestSettings
    let log: any EventLog
    let validator: EventValidator
    let pseudonymizer: Pseudonymizer
    let seen: SeenEventIDs
    let metrics: IngestMetrics
    /// Per erased user, the offset of their erasure in their partition: reads leave out the
    /// user's records before it (a log that cannot remove them at once, JetStream's mixed
    /// messages, still holds them until retention drops them).
    let erased = Mutex<[Int64: UInt64]>([:])

    public init(context: ServiceContext, settings: IngestSettings) async throws {
        self.context = context
        self.settings = settings
        let data = context.dataDirectory
        switch settings.log {
        case .file:
            try Self.checkPartitionCount(settings.partitions, metaPath: data.file("partitions"))
            log = try FileEventLog(
                directory: data.path, partitions: settings.partitions,
                configure: { config in
                    config.segmentBytes = settings.segmentBytes
                    config.retentionBytes = settings.retentionBytes
                    config.retentionAge = settings.retentionAge
                },
                recovered: { p, report in
                    let level: Logger.Level = report.corruptBatches.isEmpty && report.truncatedBytes == 0 ? .info : .warning
                    context.logger.log(level: level, "partition \(p) recovered: \(report)")
                })
        case .nats(let servers):
            var config = JetStreamLog.Config(servers: servers, partitions: settings.partitions)
            config.replicas = settings.logReplicas
            config.maxAge = settings.retentionAge
            config.maxBytes = settings.retentionBytes.map { $0 * settings.partitions }
            log = try JetStreamLog(config)
            context.logger.info("event log: \(log.description)")
        }
        self.validator = EventValidator(rules: settings.rules)
        self.pseudonymizer = Pseudonymizer(
            key: try Pseudonymizer.loadKey(
                environment: ProcessInfo.processInfo.environment, keyFile: settings.pseudonymKeyFile, dataDirectory: data.path))
        self.seen = SeenEventIDs(capacity: settings.dedupCapacity, maxAgeMs: settings.dedupAge.map { Int64($0.components.seconds * 1000) })
        self.metrics = IngestMetrics(context.metrics)
        try await rebuildSeenIDs()
    }

    private static func checkPartitionCount(_ partitions: Int, metaPath: String) throws {
        if let stored = try AtomicFile.read(metaPath) {
            let text = String(decoding: stored, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard Int(text) == partitions else {
                throw ServiceError(
                    "this log has \(text) partitions; started with \(partitions). Partition count cannot change once data exists.")
            }
        } else {
            try AtomicFile.write(Array("\(partitions)\n".utf8), to: metaPath)
        }
    }

    /// Duplicate detection survives restarts: every stored event's id is read back.
    private func rebuildSeenIDs() async throws {
        let start = ContinuousClock.now
        for p in 0..<log.partitions {
            var next = try await log.bounds(p).start
            var ids: [SeenEventIDs.ID] = []
            var times: [Int64] = []
            while true {
                ids.removeAll(keepingCapacity: true)
                times.removeAll(keepingCapacity: true)
                let from = next
                next = try await log.read(p, from: from, maxRecords: 10_000, maxBytes: 32 << 20, wait: .zero) { offset, bytes in
                    // Only the id, ingestion time, kind and user are read, not the whole event.
                    if let (kind, user) = StoredEvent.kindAndUser(of: bytes), kind == .erasure {
                        noteErasure(of: user, at: offset)
                    }
                    guard let (id, at) = StoredEvent.idAndIngestionTime(of: bytes) else { return }
                    ids.append(SeenEventIDs.ID(id))
                    times.append(at)
                }
                if next == from { break }
                seen.insert(ids, atMs: times)
            }
        }
        context.logger.info("duplicate detection primed with \(seen.count) event ids in \(start.duration(to: .now))")
    }

    public func register(in router: inout Router) {
        router.register(IngestAPI.append, decodingWith: { try EventBatch(appendRequest: $0, limits: $1) }) { try await self.append($0) }
        router.register(IngestAPI.read) { try await self.read($0) }
        router.register(IngestAPI.logInfo) { _ in try await self.logInfo() }
        router.register(IngestAPI.erase) { try await self.erase($0) }
    }

    /// Reads leave out `user`'s events before `offset`, where their erasure is.
    private func noteErasure(of user: Int64, at offset: UInt64) {
        erased.withLock { $0[user] = max($0[user] ?? 0, offset) }
    }

    /// Stable partition of a user: per-user order is preserved within it.
    func partition(of userID: Int64) -> Int {
        StableHash.partition(of: userID, among: log.partitions)
    }

    func append(_ batch: EventBatch) async throws -> Encoded<AppendResponse> {
        guard batch.count <= settings.maxBatchEvents else {
            metrics.rejectedBatch()
            throw RPCError(.invalidArgument, "batch of \(batch.count) events exceeds the limit of \(settings.maxBatchEvents)")
        }
        let now = context.clock.nowMs
        var statuses = AppendStatuses(count: batch.count)
        // 1. Check each event: plain ones in place, the rest as Event values, put back
        //    normalised and with their identifiers replaced.
        var admitted: [Int] = []
        var ids: [SeenEventIDs.ID] = []
        admitted.reserveCapacity(batch.count)
        ids.reserveCapacity(batch.count)
        for i in 0..<batch.count {
            let checked: EventValidator.Rejection?
            if let plain = validator.validatePlain(batch, i, nowMs: now) {
                if case .failure(let rejection) = plain { checked = rejection } else { checked = nil }
            } else {
                switch validator.validate(batch.event(i), nowMs: now) {
                case .failure(let rejection): checked = rejection
                case .success(var event):
                    if event.kind == .audience || event.kind == .campaign, let role = RPCContext.current?.caller?.role,
                        role != .service && role != .admin
                    {
                        // Checked by Feature/DefineAudience or Model/DefineCampaign before they are appended.
                        let what = event.kind == .audience ? "audience" : "campaign"
                        checked = EventValidator.Rejection(
                            reason: .notAllowed, detail: "\(what) events are appended by their Define call, not by a \(role.rawValue) token"
                        )
                    } else {
                        protect(&event)
                        batch.replace(i, with: event)
                        checked = nil
                    }
                }
            }
            if let rejection = checked {
                statuses.reject(i, rejection.reason, detail: rejection.detail)
                metrics.rejected(rejection.reason)
            } else {
                admitted.append(i)
                ids.append(batch.withText(i, .eventID) { SeenEventIDs.ID($0) })
            }
        }
        // 2. Duplicates, the whole batch under one lock.
        let fresh = seen.insert(ids, atMs: now)
        // 3. Identifiers replaced, then each event encoded into its partition's batch.
        var groups: [PartitionGroup?] = Array(repeating: nil, count: log.partitions)
        let expected = batch.count / log.partitions + 1
        for (k, i) in admitted.enumerated() {
            guard fresh[k] else {
                statuses.duplicate(i)
                continue
            }
            if !batch.isReplaced(i) { protect(batch, i) }
            let p = partition(of: batch.header(i).userId)
            if groups[p] == nil { groups[p] = PartitionGroup(partition: p, expected: expected) }
            groups[p]!.add(index: i, id: ids[k]) { batch.appendStored(i, ingestedAtMs: now, to: &$0) }
        }
        if statuses.duplicates > 0 { metrics.duplicates(Int(statuses.duplicates)) }
        // One batch per partition, appended concurrently; each answer carries its index.
        let batches = groups.compactMap { $0 }
        let log = log
        let results = await withTaskGroup(of: PartitionAppend.self) { group in
            for (k, batch) in batches.enumerated() {
                let records = batch.records, ids = batch.ids
                group.addTask {
                    do {
                        let offsets = try await log.append(records, messageID: { ids[$0].messageID }, to: batch.partition)
                        return PartitionAppend(index: k, result: .success(offsets))
                    } catch {
                        return PartitionAppend(index: k, result: .failure(error))
                    }
                }
            }
            var all: [PartitionAppend] = []
            for await r in group { all.append(r) }
            return all
        }
        var failure: (any Error)?
        for appended in results {
            let batch = batches[appended.index]
            switch appended.result {
            case .success(let offsets):
                statuses.accept(batch.indexes, partition: UInt32(batch.partition), offsets: offsets)
                metrics.accepted(batch.indexes.count)
            case .failure(let error):
                seen.remove(batch.ids)
                failure = error
            }
        }
        if let failure {
            context.logger.error("append failed", metadata: ["error": "\(failure)"])
            throw RPCError(
                .unavailable,
                "could not write the log: \(failure); events of other partitions may be stored, retry the batch (duplicates are detected)")
        }
        return statuses.encoded()
    }

    /// Sets the IP's country, then replaces every personal identifier by its pseudonym.
    private func protect(_ event: inout Event) {
        if event.ipCountry.isEmpty, let table = settings.ipCountries, let country = table.country(of: event.ip) {
            event.ipCountry = country
        }
        event.deviceId = pseudonymizer.pseudonym(event.deviceId)
        event.ip = pseudonymizer.pseudonym(event.ip)
        if event.register != nil { event.register!.email = pseudonymizer.pseudonym(event.register!.email) }
        if event.payment != nil { event.payment!.instrument = pseudonymizer.pseudonym(event.payment!.instrument) }
    }

    /// `protect` for a plain event in its batch (it has only the top-level identifiers).
    private func protect(_ batch: EventBatch, _ i: Int) {
        if let table = settings.ipCountries, batch.withText(i, .ipCountry, { $0.isEmpty }),
            let country = batch.withText(i, .ip, { table.country(of: String(decoding: $0, as: UTF8.self)) })
        {
            var country = country
            country.withUTF8 { batch.setText(i, .ipCountry, UnsafeRawBufferPointer($0)) }
        }
        pseudonymize(batch, i, .deviceID)
        pseudonymize(batch, i, .ip)
    }

    private func pseudonymize(_ batch: EventBatch, _ i: Int, _ field: EventBatch.Text) {
        if let pseudonym = batch.withText(i, field, { pseudonymizer.pseudonym($0) }) {
            pseudonym.withUnsafeBytes { batch.setText(i, field, $0) }
        }
    }

    func read(_ request: ReadRequest) async throws -> Encoded<ReadResponse> {
        guard Int(request.partition) < log.partitions else {
            throw RPCError(.invalidArgument, "partition \(request.partition) does not exist (there are \(log.partitions))")
        }
        let p = Int(request.partition)
        let maxEvents = request.maxEvents == 0 ? 1000 : min(Int(request.maxEvents), 10_000)
        let maxBytes = request.maxBytes == 0 ? 4 << 20 : min(Int(request.maxBytes), 16 << 20)
        // Records go out as stored: each is a StoredEvent ingest encoded.
        var response = ReadResponseWriter(expectedBytes: min(maxBytes, maxEvents * 128))
        // With `kinds` (or `user_id`), only events of those kinds (or that user) go out; the rest
        // are read past, as are an erased user's events from before their erasure.
        let kinds = Set(request.kinds)
        let erased = erased.withLock { $0 }
        var wait = Duration.milliseconds(Int(request.waitMs))
        if let remaining = RPCContext.current?.remaining { wait = min(wait, remaining - .milliseconds(5)) }
        do {
            let next = try await log.read(p, from: request.fromOffset, maxRecords: maxEvents, maxBytes: maxBytes, wait: max(wait, .zero)) {
                let event = StoredEvent.kindAndUser(of: $1)
                if let (kind, user) = event, kind != .erasure, let before = erased[user], $0 < before { return }
                if request.userId != 0 && event?.userID != request.userId { return }
                if kinds.isEmpty || event.map({ kinds.contains($0.kind) }) == true {
                    response.append(offset: $0, record: $1)
                }
            }
            return response.finish(nextOffset: next, endOffset: try await log.end(p))
        } catch let error as StoreError {
            metrics.readError()
            throw RPCError(error.code == .corrupt ? .dataLoss : error.code == .unavailable ? .unavailable : .internal, error.description)
        }
    }

    /// Erases a user: the erasure event goes into their partition like any event (every
    /// consumer folds it by forgetting them), then the partition's active segment is sealed
    /// and every earlier event of the user is emptied from its segments. Answered once both
    /// are on disk, so the bound on how long the log holds an erased user's events is this
    /// call's own duration (one read and rewrite of the segments holding them).
    func erase(_ request: EraseRequest) async throws -> EraseResponse {
        guard request.userId > 0 else { throw RPCError(.invalidArgument, "user id must be positive, got \(request.userId)") }
        let p = partition(of: request.userId)
        let now = context.clock.nowMs
        var event = Event()
        event.eventId = "erasure:\(request.userId):\(now)"
        event.kind = .erasure
        event.userId = request.userId
        event.timestampMs = now
        var stored = StoredEvent()
        stored.ingestedAtMs = now
        stored.event = event
        let user = request.userId
        /// The erasure is stored: its id is seen, and reads leave out the user's events before it.
        func remember(erasureAt offset: UInt64) {
            _ = seen.insert(SeenEventIDs.ID(event.eventId), atMs: now)
            noteErasure(of: user, at: offset)
        }
        let report: (offset: UInt64, records: Int, segments: Int)
        do {
            report = try await log.erase(appending: stored.serializedBytes(), messageID: SeenEventIDs.ID(event.eventId).messageID, to: p) {
                _, bytes in StoredEvent.kindAndUser(of: bytes)?.userID == user
            }
        } catch let error as EraseError {
            guard let offset = error.storedAt else {
                context.logger.error("erasure of a user failed", metadata: ["error": "\(error)"])
                throw RPCError(.unavailable, "could not write the erasure: \(error); repeat the call")
            }
            remember(erasureAt: offset)
            context.logger.error("rewriting the log for an erasure failed", metadata: ["error": "\(error)"])
            throw RPCError(
                .internal,
                """
                the erasure event is stored (offset \(offset)) but the user's earlier events could not be removed: \
                \(error); repeat the call
                """
            )
        }
        let offset = report.offset
        remember(erasureAt: offset)
        metrics.erased(events: report.records)
        RPCContext.current?.audit(
            """
            erased user \(user): erasure at partition \(p) offset \(offset), \(report.records) events removed from \
            \(report.segments) segments
            """
        )
        var response = EraseResponse()
        response.partition = UInt32(p)
        response.offset = offset
        response.segmentsRewritten = UInt32(report.segments)
        response.eventsRemoved = UInt64(report.records)
        return response
    }

    func logInfo() async throws -> LogInfoResponse {
        var response = LogInfoResponse()
        for p in 0..<log.partitions {
            var info = PartitionInfo()
            info.partition = UInt32(p)
            let (start, end) = try await log.bounds(p)
            info.startOffset = start
            info.endOffset = end
            let stats = await log.stats(p)
            info.bytes = UInt64(stats.bytes)
            info.segments = UInt32(stats.segments)
            response.partitions.append(info)
        }
        return response
    }

    public func runBackground() async throws {
        // Retention runs once a minute.
        while !Task.isCancelled {
            log.enforceRetention()
            try await Task.sleep(for: .seconds(60))
        }
    }

    public func close() async throws {
        await log.close()
    }

    public func healthChecks() async -> [(String, String)] {
        var checks = [("log", log.description), ("partitions", "\(log.partitions)")]
        do {
            var events: UInt64 = 0
            for p in 0..<log.partitions {
                let (start, end) = try await log.bounds(p)
                events += end - min(start, end)
            }
            // The file log's offsets count events; JetStream's are the stream's sequences.
            if log.denseOffsets { checks.append(("events", "\(events)")) }
        } catch {
            checks.append(("log_unreachable", "\(error)"))
        }
        checks.append(("dedup_ids", "\(seen.count)"))
        return checks
    }
}

/// The accepted events of one Append that go to one partition, with their places in the
/// request (for the per-event statuses) and their ids (to forget if the write fails).
struct PartitionGroup {
    let partition: Int
    var indexes: [Int] = []
    var records: Records
    var ids: [SeenEventIDs.ID] = []

    /// `expected`: about how many events will join (room is reserved for them).
    init(partition: Int, expected: Int) {
        self.partition = partition
        indexes.reserveCapacity(expected)
        ids.reserveCapacity(expected)
        records = Records(reservingCapacity: expected * 128)
    }

    mutating func add(index: Int, id: SeenEventIDs.ID, writing record: (inout [UInt8]) -> Void) {
        indexes.append(index)
        records.append(writing: record)
        ids.append(id)
    }
}

/// The outcome of one partition's part of an Append: each event's offset.
struct PartitionAppend: Sendable {
    let index: Int
    let result: Result<[UInt64], any Error>
}

extension SeenEventIDs.ID {
    /// The id's hash in hex: the message id JetStream de-duplicates by (the same for the
    /// same event id, whatever its length).
    var messageID: String {
        String(a, radix: 16) + "-" + String(b, radix: 16)
    }
}
