import Feature
import Foundation
import Ingest
import RPC
import ServiceKit
import Store
import Synchronization
import Wire

/// The feature service: events folded per second on one core and memory per user at one
/// million synthetic users; GetFeatures and GetProfile latency over RPC at fixed rates
/// (open loop, `PacedClient`: latency counts from the scheduled send, so a stall is not hidden);
/// freshness (ack by ingest to visible in GetProfile) while ingest takes a full-speed import.
/// The read-path peer is Feast's published figure for its Redis online store (p99 under
/// 1.5 ms); it cannot run here, so it is quoted, not measured.
func featureBenchmark(output: String, seconds: Double) async throws {
    var lines: [String] = []
    let fold = foldBenchmark(users: 1_000_000, events: 5_000_000)
    say(
        String(
            format: "fold: %.0f events/s on one core, %.0f bytes per user (%d users)", fold.eventsPerSecond, fold.bytesPerUser, fold.users))
    // The same traffic over few users, each with a long history (100 events): no users are
    // created, but the per-user lists are long (distinct items, affinities, window buckets).
    let hot = foldBenchmark(users: 10_000, events: 1_000_000)
    say(String(format: "fold, 10,000 users: %.0f events/s", hot.eventsPerSecond))

    let taobao = try taobaoFoldBenchmark()
    say(String(format: "fold, Taobao slice: %.0f events/s", taobao.eventsPerSecond))

    let served = try await servedBenchmark(users: 50_000, seconds: seconds)
    lines += [
        "# Feature service benchmark", "",
        """
        Run: \(ISO8601DateFormatter().string(from: Date())), \(ProcessInfo.processInfo.activeProcessorCount) cores, \
        release build, loopback.
        """,
        "", "## Folding and memory", "",
        """
        Synthetic shop traffic folded straight into the state on one thread, in batches of \
        \(FeatureSettings().readEvents) (what the service reads from ingest at a time; generating a batch is not \
        timed; heap on huge pages, as the services run):
        """,
        "70% views, 10% carts, 5% favourites, 5% searches, 5% purchases, 5% logins; every event with a device, an IP and a channel.",
        "", "| measure | Persona | goal |", "| --- | --- | --- |",
        String(
            format: "| events folded per second, one core (%d users, %d events) | %.0f | 2,000,000 |", fold.users, fold.events,
            fold.eventsPerSecond),
        String(
            format: "| the same with %d users, %d events (100 events per user: no new users, long per-user lists) | %.0f | |", hot.users,
            hot.events, hot.eventsPerSecond),
        String(
            format: "| the real Taobao slice (%d events of %d users, into an empty state; best of 5) | %.0f | |", taobao.events,
            taobao.users, taobao.eventsPerSecond),
        String(
            format: "| memory per user (RSS growth / users, %d users, %d events) | %.0f bytes | 2,048 bytes |", fold.users, fold.events,
            fold.bytesPerUser),
        "",
        String(
            format:
                """
                Snapshot of that state: %.0f MB, encoded and streamed to its file in %.2f s (folding waits that \
                long, calls do not), fsynced and renamed in %.2f s, restored in %.2f s.
                """,
            Double(fold.snapshot.bytes) / 1e6, fold.snapshot.encodeSeconds, fold.snapshot.writeSeconds, fold.snapshot.restoreSeconds),
        "", "## Reads over RPC", "",
        """
        \(served.users) users with \(served.events) events folded; calls sent at a fixed rate for \(Int(seconds)) s \
        each over one connection by a
        """,
        "blocking client (`PacedClient`: a sender thread writes each ready-encoded request at its scheduled time, a receiver thread",
        "times each answer from that time, so a stall is not hidden; wrk2's method), in the same process as the service;",
        "GetFeatures asks for one user's 24 risk features (what risk-control asks per order).",
        "Peer: Feast with its Redis online store, published p99 under 1.5 ms (quoted, not run here).", "",
        "The last column is the service's own p99 (from its event loop decoding a request frame to writing the answer; time",
        "in socket queues and the client not included), read from its",
        "latency histogram (`persona_rpc_duration_seconds`), so it is a bucket bound: 0.05, 0.1, 0.25, 0.5, 1, 2, 5 ms...", "",
        "| call | rate (calls/s) | answered per s | failed | p50 ms | p99 ms | p99.9 ms | p99 / Feast-Redis 1.5 ms | service p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in served.rows {
        lines.append(
            String(
                format: "| %@ | %d | %.0f | %d | %.3f | %.3f | %.3f | %.2fx | ≤ %@ |", r.call, r.rate, r.achieved, r.failed, r.p50, r.p99,
                r.p999, r.p99 / 1.5,
                r.serverP99.map { String(format: "%g", $0) } ?? "?"))
    }
    lines += [
        "", "## Freshness", "",
        "A probe event appended every 20 ms while \(served.importers) producers import batches of 1,000 at full speed;",
        "delay from ingest's acknowledgement to the event showing in GetProfile.", "",
        "| probes | import rate (events/s) | p50 ms | p99 ms | max ms | goal p99 |", "| --- | --- | --- | --- | --- | --- |",
        String(
            format: "| %d | %.0f | %.1f | %.1f | %.1f | 1,000 ms |", served.freshness.count, served.importRate,
            percentile(served.freshness, 0.5), percentile(served.freshness, 0.99), served.freshness.max() ?? 0),
    ]
    lines += ["", "![latency distributions of the reads](\(URL(fileURLWithPath: output).deletingPathExtension().lastPathComponent).png)"]
    let text = lines.joined(separator: "\n") + "\n"
    try text.write(toFile: output, atomically: true, encoding: .utf8)
    print(text)
    try drawLatencies(
        served.rows.map { LatencyRow(group: $0.call, system: "\($0.rate) calls/s", throughput: $0.achieved, latencies: $0.latencies) },
        output: output,
        title: "Feature reads over RPC, open loop at fixed rates", peer: nil, throughput: "calls/s", latency: "ms per call",
        distributions: ["GetFeatures", "GetProfile"], reference: ("Feast-Redis p99, published", 1.5))
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// The synthetic traffic of `users` users; event `i` of a chunk.
func syntheticEvent(_ i: Int, users: Int, startMs: Int64) -> StoredEvent {
    var rng = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
    rng ^= rng >> 29
    let user = Int64(1 + Int(rng % UInt64(users)))
    var e = Event()
    e.eventId = "synthetic-\(i)"
    e.userId = user
    e.timestampMs = startMs + Int64(i) * 100
    e.deviceId = "p:d\(user % 700_000)"
    e.ip = "p:i\(user % 300_000)"
    e.channel = user % 3 == 0 ? "app" : "web"
    e.itemId = Int64(1 + (rng >> 20) % 200_000)
    e.categoryId = Int64(1 + (rng >> 40) % 500)
    switch rng >> 50 % 100 {
    case 0..<70: e.kind = .view
    case 70..<80: e.kind = .addToCart
    case 80..<85: e.kind = .favorite
    case 85..<90:
        e.kind = .search
        var s = Search()
        s.query = "q\(rng % 1000)"
        e.search = s
    case 90..<95:
        e.kind = .purchase
        var o = Order()
        o.orderId = "o-\(i)"
        var l = OrderLine()
        l.itemId = e.itemId
        l.quantity = 1
        l.unitPrice = Double(5 + rng % 300)
        o.lines = [l]
        o.total = l.unitPrice
        e.order = o
    default:
        e.kind = .login
        var l = Login()
        l.success = rng % 10 != 0
        e.login = l
    }
    var stored = StoredEvent()
    stored.offset = UInt64(i)
    stored.event = e
    return stored
}

struct FoldResult {
    var eventsPerSecond: Double
    var bytesPerUser: Double
    var users: Int
    var events: Int
    var snapshot: SnapshotTimes
}

struct SnapshotTimes {
    var bytes: Int
    var encodeSeconds: Double
    var writeSeconds: Double
    var restoreSeconds: Double
}

/// Folds `total` synthetic events of `users` users (`timedFold`), then writes and restores
/// the snapshot of that state.
func foldBenchmark(users: Int, events total: Int, batch: Int? = nil) -> FoldResult {
    let before = residentBytes()
    let store = LiveFeatures(partitions: 1)
    let folding = timedFold(into: store, total, batch: batch) { syntheticEvent($0, users: users, startMs: 1_700_000_000_000) }
    let after = residentBytes()
    let summary = store.summary
    // The snapshot the service writes every interval: streamed to its file under the read
    // lock (folding waits, calls do not), fsynced and renamed, and read back on start.
    let path = temporaryBenchDirectory("snapshot") + "/state.snapshot"
    let written = try! store.writeSnapshot(to: path)!
    let t2 = ContinuousClock.now
    let restored = try! LiveFeatures.restore(AtomicFile.read(path)!)
    let restoreSeconds = seconds(t2.duration(to: .now))
    precondition(restored.summary.users == summary.users)
    try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    return FoldResult(
        eventsPerSecond: Double(total) / seconds(folding), bytesPerUser: Double(after - before) / Double(summary.users),
        users: summary.users, events: total,
        snapshot: SnapshotTimes(
            bytes: written.bytes, encodeSeconds: seconds(written.encoding), writeSeconds: seconds(written.writing),
            restoreSeconds: restoreSeconds))
}

/// The time `store` takes to fold events `0..<total` (made by `event`), handed to it `batch`
/// at a time: by default the batch the service reads from ingest, made just before it is
/// folded, as the service decodes a batch just before folding it. Making them is not timed.
func timedFold(into store: LiveFeatures, _ total: Int, batch: Int? = nil, event: (Int) -> StoredEvent) -> Duration {
    let chunk = batch ?? FeatureSettings().readEvents
    var folding = Duration.zero
    var i = 0
    while i < total {
        let batch = (i..<min(total, i + chunk)).map(event)
        // The batch is freed after the clock stops: its deallocation is making, not folding.
        withExtendedLifetime(batch) {
            let t0 = ContinuousClock.now
            store.fold(batch, partition: 0, next: UInt64(i + batch.count))
            folding += t0.duration(to: .now)
        }
        i += batch.count
    }
    return folding
}

/// Events per second folding the real Taobao slice (the events `persona import --format
/// taobao` makes of it: 96,168 events of 58,732 users, most of them new to the state) into an
/// empty state; the best of `rounds` fresh states.
func taobaoFoldBenchmark(rounds: Int = 5) throws -> (eventsPerSecond: Double, events: Int, users: Int) {
    let events = try taobaoEvents()
    var best = 0.0
    var users = 0
    for _ in 0..<rounds {
        let store = LiveFeatures(partitions: 1)
        let folding = timedFold(into: store, events.count) { i in
            var stored = StoredEvent()
            stored.offset = UInt64(i)
            stored.event = events[i]
            return stored
        }
        best = max(best, Double(events.count) / seconds(folding))
        users = store.summary.users
    }
    return (best, events.count, users)
}

struct ServedRow {
    var call: String
    var rate: Int
    var achieved: Double
    var failed: Int
    var p50: Double
    var p99: Double
    var p999: Double
    /// The bucket bound (ms) under which the service itself answered 99% of the calls (from
    /// its event loop decoding the request to writing the answer).
    var serverP99: Double?
    /// Every answered call's latency, ms.
    var latencies: [Double]
}

/// The service's own histogram of `method`'s latency (`persona_rpc_duration_seconds`, from
/// its event loop decoding a request frame to writing the answer): cumulative counts by
/// upper bound in seconds.
func serverLatencyBuckets(_ metrics: ServiceMetrics, method: String) -> [(le: Double, count: Double)] {
    metrics.render().split(separator: "\n").compactMap { line -> (Double, Double)? in
        guard line.hasPrefix("persona_rpc_duration_seconds_bucket{"), line.contains("method=\"\(method)\""),
            let le = line.range(of: "le=\""), let close = line[le.upperBound...].firstIndex(of: "\""),
            let count = Double(line.split(separator: " ").last ?? "")
        else { return nil }
        let bound = line[le.upperBound..<close]
        return (bound == "+Inf" ? .infinity : Double(bound) ?? .infinity, count)
    }.sorted { $0.le < $1.le }
}

/// The smallest bucket bound holding fraction `q` of the calls counted between two
/// snapshots of `serverLatencyBuckets`.
func bucketQuantile(_ q: Double, from before: [(le: Double, count: Double)], to after: [(le: Double, count: Double)]) -> Double? {
    let delta = after.map { b in (b.le, b.count - (before.first { $0.le == b.le }?.count ?? 0)) }
    guard let total = delta.last?.1, total > 0 else { return nil }
    return delta.first { $0.1 >= q * total }?.0
}

struct ServedResult {
    var users: Int
    var events: Int
    var rows: [ServedRow]
    var freshness: [Double]
    var importRate: Double
    var importers: Int
}

func servedBenchmark(users: Int, seconds duration: Double) async throws -> ServedResult {
    var ingestSettings = IngestSettings()
    ingestSettings.partitions = 4
    let ingestService = try await HostedBenchService<IngestService>.start(settings: ingestSettings)
    let ingestPort = ingestService.port
    var featureSettings = FeatureSettings()
    featureSettings.ingestPort = ingestPort
    let featureService = try await HostedBenchService<FeatureService>.start(settings: featureSettings)
    let featurePort = featureService.port
    let ingest = RPCClient(host: "127.0.0.1", port: ingestPort)
    var featureConfig = RPCClient.Config.defaults(host: "127.0.0.1", port: featurePort)
    featureConfig.connections = 4
    let feature = RPCClient(config: featureConfig)

    // Load: 5 events per user on average, timestamps near now.
    let events = users * 5
    let now = Int64(Date().timeIntervalSince1970 * 1000) - Int64(events) * 100
    var i = 0
    while i < events {
        var request = AppendRequest()
        request.events = (i..<min(events, i + 5000)).map { syntheticEvent($0, users: users, startMs: now).event! }
        _ = try await ingest.call(IngestAPI.append, request)
        i += 5000
    }
    let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest())
    let ends = info.partitions.map { String($0.endOffset) }.joined(separator: ",")
    while try await feature.call(HealthAPI.check, HealthRequest()).checks.first(where: { $0.key == "offsets" })?.value != ends {
        try await Task.sleep(for: .milliseconds(50))
    }
    say("served: \(users) users, \(events) events consumed")

    let riskNames = [
        "account_age_days", "seconds_since_signup", "orders_1m", "orders_10m", "orders_1h", "orders_24h", "amount_1m", "amount_10m",
        "amount_1h", "amount_24h", "distinct_devices_24h", "distinct_devices_7d", "distinct_ips_24h", "distinct_ips_7d",
        "distinct_instruments_24h", "distinct_instruments_7d", "users_sharing_device", "users_sharing_ip", "failed_payments_1h",
        "failed_logins_1h", "amount_zscore", "first_purchase", "new_device", "ip_country_mismatch",
    ]
    var rows: [ServedRow] = []
    for rate in [1000, 10_000] {
        for call in ["GetFeatures", "GetProfile"] {
            let method = call == "GetFeatures" ? FeatureAPI.getFeatures.name : FeatureAPI.getProfile.name
            let serverBefore = serverLatencyBuckets(featureService.host.context.metrics, method: method)
            let payloads = (0..<Int(Double(rate) * duration)).map { n in
                let user = Int64(1 + (n &* 7919) % users)
                if call == "GetFeatures" {
                    var r = GetFeaturesRequest()
                    r.userIds = [user]
                    r.names = riskNames
                    return r.serializedBytes()
                }
                var r = GetProfileRequest()
                r.userId = user
                return r.serializedBytes()
            }
            let methodID = call == "GetFeatures" ? FeatureAPI.getFeatures.id : FeatureAPI.getProfile.id
            let outcome = try PacedClient.run(port: featurePort, method: methodID, rate: rate, payloads: payloads)
            let (latencies, achieved, failed) = (outcome.latencies, outcome.answeredPerSecond, outcome.failed)
            let server = bucketQuantile(
                0.99, from: serverBefore, to: serverLatencyBuckets(featureService.host.context.metrics, method: method))
            rows.append(
                ServedRow(
                    call: call, rate: rate, achieved: achieved, failed: failed, p50: percentile(latencies, 0.5),
                    p99: percentile(latencies, 0.99),
                    p999: percentile(latencies, 0.999), serverP99: server.map { $0 * 1000 }, latencies: latencies))
            say("\(call) at \(rate)/s: p50 \(percentile(latencies, 0.5)) ms, p99 \(percentile(latencies, 0.99)) ms, \(failed) failed")
        }
    }

    // Freshness under a full-speed import.
    let importers = 2
    let counters = ImportCounters()
    let importStart = ContinuousClock.now
    let load = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<importers {
                group.addTask {
                    let client = RPCClient(host: "127.0.0.1", port: ingestPort)
                    var serial = 0
                    while !counters.stop.load(ordering: .relaxed) {
                        var request = AppendRequest()
                        let base = Int64(Date().timeIntervalSince1970 * 1000)
                        request.events = (0..<1000).map { k in
                            var e = syntheticEvent(10_000_000 + p * 100_000_000 + serial * 1000 + k, users: users, startMs: base).event!
                            e.timestampMs = base
                            return e
                        }
                        serial += 1
                        _ = try await client.call(IngestAPI.append, request)
                        counters.imported.add(1000, ordering: .relaxed)
                    }
                    await client.shutdown()
                }
            }
            try await group.waitForAll()
        }
    }
    var freshness: [Double] = []
    let probeUser = Int64(users + 1)
    let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
    var probe = 0
    while ContinuousClock.now < end {
        var e = Event()
        e.eventId = "probe-\(probe)"
        e.kind = .search
        e.userId = probeUser
        e.timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
        var s = Search()
        s.query = "probe"
        e.search = s
        var request = AppendRequest()
        request.events = [e]
        _ = try await ingest.call(IngestAPI.append, request)
        let acked = ContinuousClock.now
        probe += 1
        var r = GetProfileRequest()
        r.userId = probeUser
        while try await feature.call(FeatureAPI.getProfile, r).profile?.counts.first(where: { $0.kind == .search })?.counts?.lifetime ?? 0
            < UInt64(probe)
        {
            try await Task.sleep(for: .milliseconds(1))
        }
        freshness.append(seconds(acked.duration(to: .now)) * 1000)
        try await Task.sleep(for: .milliseconds(20))
    }
    counters.stop.store(true, ordering: .relaxed)
    try await load.value
    let importRate = Double(counters.imported.load(ordering: .relaxed)) / seconds(importStart.duration(to: .now))

    await ingest.shutdown()
    await feature.shutdown()
    try await featureService.stop()
    try await ingestService.stop()
    return ServedResult(users: users, events: events, rows: rows, freshness: freshness, importRate: importRate, importers: importers)
}

final class ImportCounters: Sendable {
    let stop = Atomic<Bool>(false)
    let imported = Atomic<Int>(0)
}

/// Prints unbuffered, so progress shows even when stdout is a file.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
