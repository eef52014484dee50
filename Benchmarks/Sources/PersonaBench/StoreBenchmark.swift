import CSQLite
import Datasets
import Dispatch
import Foundation
import Ingest
import NIOCore
import RPC
import ServiceKit
import Store
import Synchronization
import Wire

/// Durable appends (acknowledged after fsync) of real Taobao events, as ingest stores them:
/// Persona's segmented log against SQLite in WAL mode with synchronous=FULL and one
/// transaction per batch, in the same run. Then sequential reads of everything written.
func storeBenchmark(output: String, seconds: Double) async throws {
    let events = try taobaoEvents()
    let records = events.map { e -> [UInt8] in
        var stored = StoredEvent()
        stored.ingestedAtMs = 1_700_000_000_000
        stored.event = e
        return stored.serializedBytes()
    }
    let meanBytes = records.reduce(0) { $0 + $1.count } / records.count
    print("\(records.count) Taobao events, \(meanBytes) bytes each on average (StoredEvent encoding)")
    var rows: [StoreResult] = []
    for batch in [100, 1000] {
        for producers in [1, 2, 4, 8] {
            let persona = try await appendPersona(records, batch: batch, producers: producers, seconds: seconds)
            let sqlite = try appendSQLite(records, batch: batch, producers: producers, seconds: seconds)
            // The largest log of the run is also restarted: how long until ingest answers again.
            let ingest = try await appendIngest(
                events, batch: batch, producers: producers, seconds: seconds, measureRestart: batch == 1000 && producers == 8)
            rows += [persona, sqlite, ingest]
            for r in [persona, sqlite, ingest] {
                print(
                    String(
                        format: "%-7@ batch %4d  producers %d: %10.0f events/s  p99 ack %7.2f ms  read %10.0f events/s",
                        r.system as NSString, batch, producers, r.eventsPerSecond, r.p99Millis, r.readEventsPerSecond))
            }
        }
    }
    var md = """
        # Store benchmark: durable appends, Persona segmented log vs SQLite

        \(ProcessInfo.processInfo.activeProcessorCount) cores; \(seconds) s per case; Taobao UserBehavior events encoded \
        as ingest stores them
        (\(meanBytes) B each on average). Every append is acknowledged only after fsync (Persona: fdatasync with group
        commit; SQLite: WAL, synchronous=FULL, one transaction per batch, producers share one connection).
        Reads: every event written in the case, read back in order. The "ingest" rows are the whole service
        path over loopback RPC: validation, pseudonymisation, duplicate check, LZ4 frames, then the same log.
        Its producers send ready-encoded batches (each event id rewritten per send, so every event is new) and
        decode every per-event status; they share the two cores with the service. Taobao events carry no IP or
        device, so ingest stores them as sent; events with identifiers are encoded again after pseudonymising.

        | batch | producers | system | events/s | p99 ack ms | read events/s | appends vs SQLite | reads vs SQLite |
        | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |

        """
    for r in rows {
        let peer = rows.first { $0.system == "sqlite" && $0.batch == r.batch && $0.producers == r.producers }!
        md += String(
            format: "| %d | %d | %@ | %.0f | %.2f | %.0f | %.2fx | %.2fx |\n", r.batch, r.producers, r.system as NSString,
            r.eventsPerSecond,
            r.p99Millis, r.readEventsPerSecond, r.eventsPerSecond / peer.eventsPerSecond, r.readEventsPerSecond / peer.readEventsPerSecond)
    }
    if let r = rows.first(where: { $0.restartSeconds != nil }), let restart = r.restartSeconds {
        md += String(
            format:
                """
                \nRestart: ingest on the log of the batch %d, %d producers case (%d events in %d partitions) is \
                ready again in %.2f s,\nrecovery and the duplicate-id memory (every stored event id read back) \
                included: %.0f stored events/s.\n
                """,
            r.batch, r.producers, r.events, ingestPartitions, restart, Double(r.events) / restart)
    }
    let crc = checksumSpeeds()
    md += String(
        format:
            """
            \nCRC-32C (every stored batch and snapshot): %.1f GB/s with the CPU's instruction, %.1f GB/s \
            table-driven (%.1fx); in use: %@.\n
            """,
        crc.instruction, crc.table, crc.instruction / crc.table, CRC32C.hardware ? "the instruction" : "the table")
    md +=
        """
        \n![appends against SQLite, and acknowledgement latency \
        distributions](\(URL(fileURLWithPath: output).deletingPathExtension().lastPathComponent).png)\n
        """
    print(md)
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    try drawLatencies(
        rows.map {
            LatencyRow(
                group: "batch \($0.batch), \($0.producers) producers", system: $0.system, throughput: $0.eventsPerSecond,
                latencies: $0.latenciesMillis)
        },
        output: output, title: "Durable appends (acknowledged after fsync): Persona's log and ingest against SQLite", peer: "sqlite",
        throughput: "events/s", latency: "ms to acknowledge a batch", distributions: ["batch 100, 4 producers", "batch 1000, 4 producers"])
    print("written to \(output)")
}

/// GB/s of the two CRC-32C implementations over the same 64 MB, best of three passes each.
func checksumSpeeds() -> (instruction: Double, table: Double) {
    let data = [UInt8](unsafeUninitializedCapacity: 64 << 20) { buffer, count in
        for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
        count = buffer.count
    }
    func speed(_ checksum: (UnsafeRawBufferPointer) -> UInt32) -> Double {
        var best = Double.infinity
        var sink: UInt32 = 0
        for _ in 0..<3 {
            let t0 = ContinuousClock.now
            sink ^= data.withUnsafeBytes(checksum)
            best = min(best, seconds(t0.duration(to: .now)))
        }
        precondition(sink != 1, "keeps the checksums from being optimised away")
        return Double(data.count) / best / 1e9
    }
    return (speed { CRC32C.checksum($0) }, speed { CRC32C.software($0) })
}

struct StoreResult {
    var system: String
    var batch: Int
    var producers: Int
    var events: Int
    var seconds: Double
    var latenciesMillis: [Double]
    var readSeconds: Double
    /// Ingest only: how long a restart on the written log took, to ready.
    var restartSeconds: Double? = nil

    var eventsPerSecond: Double { Double(events) / seconds }
    var readEventsPerSecond: Double { Double(events) / readSeconds }
    var p99Millis: Double {
        percentile(latenciesMillis, 0.99)
    }
}

func taobaoEvents() throws -> [Event] {
    let data = ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data"
    let text = try String(contentsOfFile: data + "/taobao/UserBehavior_2h_sample.csv", encoding: .utf8)
    var skips = DatasetFormat.Skips()
    // The events `persona import --format taobao` makes of the file.
    return DatasetFormat.taobao.events(lines: text.split(separator: "\n"), skips: &skips)
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// A port nothing listens on now (for a service another one must be told of before it starts).
func freeBenchPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

func temporaryBenchDirectory(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("persona-bench-\(name)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func appendPersona(_ records: [[UInt8]], batch: Int, producers: Int, seconds duration: Double) async throws -> StoreResult {
    let dir = temporaryBenchDirectory("log")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (log, _) = try SegmentedLog.open(.defaults(directory: dir))
    let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
    let start = ContinuousClock.now
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
        for p in 0..<producers {
            group.addTask {
                var own: [Double] = []
                var i = p * batch
                while ContinuousClock.now < end {
                    let slice = (0..<batch).map { records[(i + $0) % records.count] }
                    let t0 = ContinuousClock.now
                    _ = try await log.append(slice)
                    own.append(seconds(t0.duration(to: .now)) * 1000)
                    i += batch * producers
                }
                return own
            }
        }
        return try await group.reduce(into: [Double]()) { $0 += $1 }
    }
    let elapsed = seconds(start.duration(to: .now))
    let total = Int(log.endOffset)
    let readStart = ContinuousClock.now
    var next: UInt64 = 0
    var read = 0
    while true {
        let r = try log.read(from: next, maxRecords: 10_000, maxBytes: 8 << 20)
        if r.records.isEmpty { break }
        read += r.records.count
        next = r.nextOffset
    }
    precondition(read == total, "read \(read) of \(total)")
    let readSeconds = seconds(readStart.duration(to: .now))
    await log.close()
    return StoreResult(
        system: "persona", batch: batch, producers: producers, events: total, seconds: elapsed, latenciesMillis: latencies,
        readSeconds: readSeconds)
}

/// One SQLite connection shared by the producer threads (SQLite has one writer anyway).
final class SQLiteLog: @unchecked Sendable {
    private var db: OpaquePointer?
    private var insert: OpaquePointer?
    private let lock = NSLock()

    init(path: String) throws {
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw BenchError("sqlite3_open failed") }
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=FULL")
        try exec("CREATE TABLE events (offset INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        guard sqlite3_prepare_v2(db, "INSERT INTO events (data) VALUES (?)", -1, &insert, nil) == SQLITE_OK else {
            throw BenchError("prepare failed")
        }
    }

    deinit {
        sqlite3_finalize(insert)
        sqlite3_close(db)
    }

    func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw BenchError("\(sql): \(String(cString: sqlite3_errmsg(db)))") }
    }

    /// One transaction per batch; durable when COMMIT returns (synchronous=FULL).
    func append(_ batch: [[UInt8]]) throws {
        lock.lock()
        defer { lock.unlock() }
        try exec("BEGIN")
        for r in batch {
            _ = r.withUnsafeBytes { sqlite3_bind_blob(insert, 1, $0.baseAddress, Int32($0.count), nil) }
            guard sqlite3_step(insert) == SQLITE_DONE else { throw BenchError("insert failed") }
            sqlite3_reset(insert)
        }
        try exec("COMMIT")
    }

    func readAll() throws -> Int {
        var stmt: OpaquePointer?
        guard
            sqlite3_prepare_v2(db, "SELECT offset, data FROM events WHERE offset > ? ORDER BY offset LIMIT 10000", -1, &stmt, nil)
                == SQLITE_OK
        else {
            throw BenchError("prepare failed")
        }
        defer { sqlite3_finalize(stmt) }
        var last: Int64 = 0
        var count = 0
        while true {
            sqlite3_bind_int64(stmt, 1, last)
            var n = 0
            while sqlite3_step(stmt) == SQLITE_ROW {
                last = sqlite3_column_int64(stmt, 0)
                let bytes = Int(sqlite3_column_bytes(stmt, 1))
                if let p = sqlite3_column_blob(stmt, 1) { _ = [UInt8](UnsafeRawBufferPointer(start: p, count: bytes)) }
                n += 1
            }
            sqlite3_reset(stmt)
            if n == 0 { return count }
            count += n
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func appendSQLite(_ records: [[UInt8]], batch: Int, producers: Int, seconds duration: Double) throws -> StoreResult {
    let dir = temporaryBenchDirectory("sqlite")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let db = try SQLiteLog(path: dir + "/events.db")
    let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
    let latencies = Mutex<[Double]>([])
    let appended = Atomic<Int>(0)
    let failure = Mutex<(any Error)?>(nil)
    let start = ContinuousClock.now
    DispatchQueue.concurrentPerform(iterations: producers) { p in
        var own: [Double] = []
        var i = p * batch
        while ContinuousClock.now < end {
            let slice = (0..<batch).map { records[(i + $0) % records.count] }
            let t0 = ContinuousClock.now
            do { try db.append(slice) } catch {
                failure.withLock { $0 = error }
                return
            }
            own.append(seconds(t0.duration(to: .now)) * 1000)
            appended.add(batch, ordering: .relaxed)
            i += batch * producers
        }
        latencies.withLock { $0 += own }
    }
    if let error = failure.withLock({ $0 }) { throw error }
    let elapsed = seconds(start.duration(to: .now))
    let readStart = ContinuousClock.now
    let read = try db.readAll()
    precondition(read == appended.load(ordering: .relaxed))
    let readSeconds = seconds(readStart.duration(to: .now))
    return StoreResult(
        system: "sqlite", batch: batch, producers: producers, events: read, seconds: elapsed,
        latenciesMillis: latencies.withLock { $0 }, readSeconds: readSeconds)
}

/// Partitions of the benchmarked ingest log.
let ingestPartitions = 4

/// The ingest service in-process, fed over RPC by `producers` clients (one connection each);
/// every event gets a fresh id so none is a duplicate. Reads go through Ingest/Read.
///
/// Producers send ready-encoded batches, as a shop's event pipeline would: each encodes a few
/// batches once, and before every send writes the send's serial number into each event id
/// (a fixed-width field), so the server sees new events every time while the producers,
/// which share the machine's two cores with it, spend almost nothing.
func appendIngest(
    _ events: [Event], batch: Int, producers: Int, seconds duration: Double, measureRestart: Bool = false,
    settings configured: IngestSettings? = nil
) async throws -> StoreResult {
    var settings = configured ?? IngestSettings()
    settings.partitions = ingestPartitions
    let service = try await HostedBenchService<IngestService>.start(settings: settings)
    let port = service.port
    let templates = (0..<producers).map { p in (0..<8).map { t in BatchTemplate(events, producer: p, template: t, batch: batch) } }
    let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
    let start = ContinuousClock.now
    let (latencies, total) = try await withThrowingTaskGroup(of: ([Double], Int).self) { group in
        for p in 0..<producers {
            let own = templates[p]
            group.addTask {
                var own = own
                let client = RPCClient(host: "127.0.0.1", port: port)
                var latencies: [Double] = []
                var sent = 0
                var serial = 0
                while ContinuousClock.now < end {
                    let t = serial % own.count
                    own[t].stamp(serial: serial)
                    serial += 1
                    let t0 = ContinuousClock.now
                    let response = try await client.call(IngestAPI.append, encoded: ByteBuffer(bytes: own[t].bytes))
                    guard response.accepted == UInt32(batch) else {
                        throw BenchError("ingest rejected bench events: \(response.statuses.filter { $0.code != .accepted }.prefix(2))")
                    }
                    latencies.append(seconds(t0.duration(to: .now)) * 1000)
                    sent += batch
                }
                await client.shutdown()
                return (latencies, sent)
            }
        }
        return try await group.reduce(into: ([Double](), 0)) {
            $0.0 += $1.0; $0.1 += $1.1
        }
    }
    let elapsed = seconds(start.duration(to: .now))
    let client = RPCClient(host: "127.0.0.1", port: port)
    let readStart = ContinuousClock.now
    var read = 0
    for partition in 0..<UInt32(settings.partitions) {
        var next: UInt64 = 0
        while true {
            var r = ReadRequest()
            r.partition = partition
            r.fromOffset = next
            r.maxEvents = 10_000
            let response = try await client.call(IngestAPI.read, r)
            if response.events.isEmpty { break }
            read += response.events.count
            next = response.nextOffset
        }
    }
    let readSeconds = seconds(readStart.duration(to: .now))
    precondition(read == total, "read \(read) of \(total)")
    await client.shutdown()
    var restartSeconds: Double?
    if measureRestart {
        // A restart on the same log: recovery, then every stored event id read back.
        try await service.stop(keepingData: true)
        let t0 = ContinuousClock.now
        let again = try await HostedBenchService<IngestService>.start(settings: settings, directory: service.directory)
        restartSeconds = seconds(t0.duration(to: .now))
        try await again.stop()
    } else {
        try await service.stop()
    }
    return StoreResult(
        system: "ingest", batch: batch, producers: producers, events: total, seconds: elapsed, latenciesMillis: latencies,
        readSeconds: readSeconds,
        restartSeconds: restartSeconds)
}

/// An encoded AppendRequest of `batch` Taobao events whose ids are
/// `bench-P-SSSSSSSS-TT-KKKK` (producer, serial, template, index): `stamp` rewrites the
/// serial digits in place.
struct BatchTemplate {
    var bytes: [UInt8]
    /// Where each event's serial digits start in `bytes`.
    let serialPositions: [Int]

    init(_ events: [Event], producer: Int, template: Int, batch: Int) {
        var request = AppendRequest()
        request.events = (0..<batch).map { k in
            var e = events[((producer * 8 + template) * batch + k) % events.count]
            e.eventId = "bench-\(producer)-00000000-\(String(format: "%02d-%04d", template, k))"
            return e
        }
        bytes = request.serializedBytes()
        var positions: [Int] = []
        var from = 0
        for e in request.events {
            let id = Array(e.eventId.utf8)
            while !bytes[from..<(from + id.count)].elementsEqual(id) { from += 1 }
            positions.append(from + "bench-\(producer)-".utf8.count)
            from += id.count
        }
        serialPositions = positions
    }

    mutating func stamp(serial: Int) {
        let digits = Array(String(format: "%08d", serial).utf8)
        bytes.withUnsafeMutableBufferPointer { b in
            for p in serialPositions {
                for (j, d) in digits.enumerated() { b[p + j] = d }
            }
        }
    }
}

/// A service run in-process for a benchmark, on a free port and a temporary directory that
/// `stop()` removes.
struct HostedBenchService<S: PersonaService> {
    let host: ServiceHost<S>
    let port: Int
    let directory: String
    let running: Task<Void, any Error>

    /// Starts on `directory` (a new temporary one when nil), on `port` (a free one when 0).
    static func start(settings: S.Settings, directory: String? = nil, port: Int = 0) async throws -> HostedBenchService {
        let directory = directory ?? temporaryBenchDirectory(S.name)
        let options = ServiceOptions.Resolved(host: "127.0.0.1", port: port, metricsPort: 0, dataDir: directory, logLevel: .error)
        let host = try await ServiceHost<S>(options: options, settings: settings)
        let (port, _) = try await host.start()
        let running = Task { try await host.run(handleSignals: false) }
        return HostedBenchService(host: host, port: port, directory: directory, running: running)
    }

    /// Graceful stop, then the directory goes unless `keepingData`.
    func stop(keepingData: Bool = false) async throws {
        host.shutdown()
        try await running.value
        if !keepingData { try? FileManager.default.removeItem(atPath: directory) }
    }
}
