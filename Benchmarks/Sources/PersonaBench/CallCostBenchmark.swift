// The CPU of one call on the two paths a shop calls on every checkout and every page: Score
// (feature read, model, reasons, rules, durable decision, the view built beside it) and
// Recommend (profile read, exact scoring of 100,000 items, blend), every
// service of the path in this process on loopback, one call in flight. Two measures:
// - CPU time a call, user and system (getrusage of the whole process over the calls);
// - the user-space instructions of a call by where they run, counted by callgrind: the
//   benchmark runs itself again under `valgrind --tool=callgrind` with counting off, switches
//   it on for the measured calls only (callgrind's client requests, `CCallgrind`) and reads
//   the dumps. Instruction counts repeat from run to run, where times on this machine do not.
import CCallgrind
import Datasets
import Feature
import Foundation
import Ingest
import Math
import Model
import RPC
import Recommend
import Recommenders
import RiskControl
import ServiceKit
import Wire

/// What one path costs a call, natively.
struct CallCPU {
    var path: String
    var calls: Int
    var userMicros: Double
    var systemMicros: Double
    var wallMicros: Double
}

func callCostBenchmark(output: String, sharedData: String, calls: Int) async throws {
    let counting = persona_callgrind_running() != 0
    let native = try await measureCallPaths(sharedData: sharedData, calls: counting ? min(calls, 400) : calls)
    if counting { return }  // the run under callgrind: its dumps are what the outer run reads

    let dir = temporaryBenchDirectory("callgrind")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    say("calls: counting instructions under callgrind (a few minutes)")
    // Valgrind 3.19 cannot read the Swift compiler's DWARF 5: it runs a copy without the debug
    // information (the symbol table, all that names a function, stays).
    let binary = dir + "/PersonaBench"
    try run("/usr/bin/env", ["objcopy", "--strip-debug", CommandLine.arguments[0], binary])
    try run(
        "/usr/bin/env",
        [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=\(dir)/callgrind.out",
            binary, "calls", "--events", "\(min(calls, 400))",
        ])
    var dumps: [String: CallgrindDump] = [:]
    for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasPrefix("callgrind.out") {
        let dump = try CallgrindDump(contentsOf: dir + "/" + file)
        if !dump.trigger.isEmpty { dumps[dump.trigger] = dump }
    }

    let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    var md = """
        # The CPU of one call

        Run: \(ISO8601DateFormatter().string(from: Date())), \(machine), release build; every service of the path in one \
        process on loopback, one call in flight, after 200 calls to warm.

        - **Score**: risk-control with the fraud model trained on ../shared/data/fraud (the risk benchmark's), a \
        feature read (RequestFeatures), the trees' margin, TreeSHAP for flagged decisions, the rules, the append to the \
        decision log with its fdatasync, and the SQLite view built beside the calls.
        - **Recommend**: 100,000 items x 64 served exactly (the default below `--index-above`), the lean profile read \
        from the feature service, the blend (trending lists and catalogue entries kept in recommend, read again in \
        the background once older than 2 s); for users with 5 recent views and for users with \
        1,000 items in their history.

        ## CPU time a call

        getrusage of the process over the calls, divided by the calls: the client's side of each call included. \
        "Calls/s on 2 cores" is what that CPU allows if both cores did nothing else.

        | path | calls | user µs | system µs | CPU µs | wall µs | calls/s on 2 cores |
        | --- | ---: | ---: | ---: | ---: | ---: | ---: |

        """
    for c in native {
        let cpu = c.userMicros + c.systemMicros
        md += String(
            format: "| %@ | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n", c.path as NSString, c.calls, c.userMicros, c.systemMicros,
            cpu, c.wallMicros, 2e6 / cpu)
    }
    md += """

        ## Instructions a call, by where they run

        callgrind's count of user-space instructions (the kernel's share, the system time above, is not in it) over \
        \(min(calls, 400)) calls, divided by the calls, grouped by the library or the Swift module the instruction's \
        function belongs to. Thousands of instructions a call; the client's side of each call is in the rows it \
        shares with the services (RPC, SwiftNIO, Wire, LZ4). Work on timers (the feature service's snapshots, \
        caches refreshed every few seconds) counts as far as it falls among the calls; recommend's 2 s age \
        for trending lists and catalogue entries is stretched 50-fold under callgrind, which runs \
        code about that much slower. "Math" holds \
        the kernels, top-K and TreeSHAP.

        """
    for path in native.map(\.path) {
        guard let dump = dumps[path] else {
            md += "\n(no callgrind dump for \(path): is valgrind installed?)\n"
            continue
        }
        let perCall = Double(dump.total) / Double(min(calls, 400))
        md += "\n### \(path): \(String(format: "%.0f", perCall / 1000)) thousand instructions a call\n\n"
        md += "| where | k instructions | share |\n| --- | ---: | ---: |\n"
        var byPart: [String: UInt64] = [:]
        for f in dump.functions { byPart[callPart(object: f.object, function: f.function), default: 0] += f.instructions }
        for (part, n) in byPart.sorted(by: { $0.value > $1.value }) where Double(n) / Double(dump.total) >= 0.005 {
            md += String(
                format: "| %@ | %.1f | %.1f%% |\n", part as NSString, Double(n) / Double(min(calls, 400)) / 1000,
                100 * Double(n) / Double(dump.total))
        }
        md += "\nThe costliest functions:\n\n| function | k instructions | share |\n| --- | ---: | ---: |\n"
        let top = dump.functions.sorted { $0.instructions > $1.instructions }.prefix(12)
        let names = demangled(top.map(\.function))
        for (f, name) in zip(top, names) {
            let shown = name.count > 110 ? String(name.prefix(107)) + "..." : name
            md += String(
                format: "| `%@` | %.1f | %.1f%% |\n", shown.replacingOccurrences(of: "|", with: "/") as NSString,
                Double(f.instructions) / Double(min(calls, 400)) / 1000, 100 * Double(f.instructions) / Double(dump.total))
        }
    }
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    say("wrote \(output)")
}

/// Sets up both paths, then times `calls` of each (and, under callgrind, counts them).
func measureCallPaths(sharedData: String, calls: Int) async throws -> [CallCPU] {
    var results: [CallCPU] = []
    results.append(try await scoreCalls(sharedData: sharedData, calls: calls))
    results += try await recommendCalls(calls: calls)
    return results
}

/// Runs 200 calls to warm, then `calls` measured ones; under callgrind the measured ones are
/// counted and dumped as `path`.
func measureCalls(_ path: String, calls: Int, _ call: (Int) async throws -> Void) async throws -> CallCPU {
    for i in 0..<200 { try await call(i) }
    let counting = persona_callgrind_running() != 0
    if counting { persona_callgrind_start() }
    var before = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &before)
    let start = ContinuousClock.now
    for i in 0..<calls { try await call(200 + i) }
    let wall = start.duration(to: .now) / .microseconds(1)
    var after = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &after)
    if counting { persona_callgrind_stop_and_dump(path) }
    func micros(_ t: timeval) -> Double { Double(t.tv_sec) * 1e6 + Double(t.tv_usec) }
    let result = CallCPU(
        path: path, calls: calls, userMicros: (micros(after.ru_utime) - micros(before.ru_utime)) / Double(calls),
        systemMicros: (micros(after.ru_stime) - micros(before.ru_stime)) / Double(calls), wallMicros: wall / Double(calls))
    say(
        String(
            format: "calls: %@: %.0f µs user, %.0f µs system, %.0f µs wall a call", path as NSString, result.userMicros,
            result.systemMicros, result.wallMicros))
    return result
}

/// Score: the fraud rows imported with their labels, the fraud model trained and published,
/// risk-control following it; each call scores one of the rows' purchases again.
func scoreCalls(sharedData: String, calls: Int) async throws -> CallCPU {
    let path = sharedData + "/fraud/Fraud_Data_train.csv"
    var skips = DatasetFormat.Skips()
    let events = DatasetFormat.fraud.events(lines: try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n"), skips: &skips)
        .sorted { $0.timestampMs < $1.timestampMs }
    let purchases = events.filter { $0.kind == .purchase }
    let work = temporaryBenchDirectory("calls-score")
    defer { try? FileManager.default.removeItem(atPath: work) }
    let keyFile = work + "/pseudonym.key"
    try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: keyFile))
    let trainer = try await FraudTrainingSuite.start(keyFile: keyFile, countries: nil)
    let (ingest, feature, model) = (trainer.ingest, trainer.feature, trainer.model)
    try await appendAndFold(events, ingest: trainer.ingestClient, feature: trainer.featureClient)
    _ = try await trainer.trainFraud()

    var riskSettings = RiskSettings()
    (riskSettings.featurePort, riskSettings.ingestPort, riskSettings.modelPort) = (feature.port, ingest.port, model.port)
    riskSettings.pseudonymKeyFile = keyFile
    riskSettings.featureTimeout = .seconds(10)  // callgrind runs the calls 50 to 100 times slower
    let risk = try await HostedBenchService<RiskControlService>.start(settings: riskSettings, directory: work + "/risk-control")
    var riskConfig = RPCClient.Config.defaults(host: "127.0.0.1", port: risk.port)
    riskConfig.defaultTimeout = .seconds(60)
    let riskClient = RPCClient(config: riskConfig)
    while try await riskClient.call(HealthAPI.check, HealthRequest()).checks.first(where: { $0.key == "model" })?.value.hasPrefix("fraud=")
        != true
    {
        try await Task.sleep(for: .milliseconds(100))
    }
    let result = try await measureCalls("Score", calls: calls) { i in
        let r = scoreRequest(for: purchases[i % purchases.count], orderID: "call-\(i)")
        guard let d = try await riskClient.call(RiskAPI.score, r).decision, !d.degraded else {
            throw ServiceError("Score answered without the model or features")
        }
    }
    await riskClient.shutdown()
    try await risk.stop()
    try await trainer.stop()
    return result
}

/// Recommend over 100,000 items served exactly: 10,000 users with five recent views and 100
/// users with 1,000 distinct items each in their history.
func recommendCalls(calls: Int) async throws -> [CallCPU] {
    let n = 100_000, dim = 64, users = 10_000, longUsers = 100
    let dir = temporaryBenchDirectory("calls-recommend")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var rng = SplitMix(seed: 11)
    try publishRandomALS(registry: dir + "/model/registry", items: n, users: users + longUsers, dim: dim, rng: &rng)

    let ingest = try await HostedBenchService<IngestService>.start(settings: IngestSettings())
    var consumer = ConsumerSettings()
    consumer.ingestPort = ingest.port
    let feature = try await HostedBenchService<FeatureService>.start(settings: FeatureSettings(consumer))
    let modelService = try await HostedBenchService<ModelService>.start(settings: ModelSettings(consumer), directory: dir + "/model")
    var settings = RecommendSettings()
    (settings.ingestPort, settings.featurePort, settings.modelPort) = (ingest.port, feature.port, modelService.port)
    settings.featureTimeout = .seconds(10)  // as for Score
    // Callgrind runs code some 50 times slower: the 2 s age at which the trending lists and
    // catalogue entries are read again is stretched as much, so they are read about as often per
    // call as in a native run.
    if persona_callgrind_running() != 0 { settings.liveTTL = settings.liveTTL * 50 }
    let recommend = try await HostedBenchService<RecommendService>.start(settings: settings)
    var config = RPCClient.Config.defaults(host: "127.0.0.1", port: recommend.port)
    config.defaultTimeout = .seconds(60)
    let client = RPCClient(config: config)
    let ingestClient = RPCClient(host: "127.0.0.1", port: ingest.port)
    var featureConfig = RPCClient.Config.defaults(host: "127.0.0.1", port: feature.port)
    featureConfig.defaultTimeout = .seconds(600)
    let featureClient = RPCClient(config: featureConfig)

    let now = Int64(Date().timeIntervalSince1970 * 1000)
    var events: [Event] = []
    func view(_ user: Int, _ k: Int, item: Int, ageMs: Int64) {
        var e = Event()
        e.eventId = "c-\(user)-\(k)"
        e.kind = .view
        e.userId = Int64(user)
        e.itemId = Int64(item)
        e.categoryId = Int64(1 + (item - 1) % 100)
        e.timestampMs = now - ageMs
        events.append(e)
    }
    for u in 1...users {
        for k in 0..<5 { view(u, k, item: 1 + rng.below(n), ageMs: Int64(5 - k) * 1000) }
    }
    for u in users + 1...users + longUsers {
        let start = rng.below(n - 1_000)
        for k in 0..<1_000 { view(u, k, item: 1 + start + k, ageMs: Int64(1_000 - k) * 60_000) }
    }
    try await appendAndFold(events, ingest: ingestClient, feature: featureClient)
    while try await client.call(HealthAPI.check, HealthRequest()).checks.first(where: { $0.key == "models" })?.value != "als=1" {
        try await Task.sleep(for: .milliseconds(200))
    }
    func call(_ user: Int) async throws {
        var request = RecommendRequest()
        request.userId = Int64(user)
        request.n = 10
        request.surface = "calls"
        guard try await client.call(RecommendAPI.recommend, request).items.count == 10 else {
            throw ServiceError("Recommend answered fewer than 10 items for user \(user)")
        }
    }
    let short = try await measureCalls("Recommend, 5 recent views", calls: calls) { i in try await call(1 + (i &* 7919) % users) }
    let long = try await measureCalls("Recommend, 1,000 items in the history", calls: calls) { i in
        try await call(users + 1 + i % longUsers)
    }
    for c in [client, ingestClient, featureClient] { await c.shutdown() }
    try await recommend.stop()
    try await modelService.stop()
    try await feature.stop()
    try await ingest.stop()
    return [short, long]
}

/// Self instructions per function of one callgrind dump.
struct CallgrindDump {
    var trigger = ""
    var total: UInt64 = 0
    var functions: [(object: String, function: String, instructions: UInt64)] = []

    /// Reads callgrind's format: names compressed as `(id) name` on first use and `(id)`
    /// after; a cost line after `calls=` is the call's inclusive cost, not the function's own.
    init(contentsOf path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var objects: [String: String] = [:], names: [String: String] = [:]
        var object = "", function = ""
        var selfCost: [String: UInt64] = [:]
        var objectOf: [String: String] = [:]
        var skipNext = false
        func named(_ value: Substring, in table: inout [String: String]) -> String {
            guard value.hasPrefix("("), let close = value.firstIndex(of: ")") else { return String(value) }
            let id = String(value[...close])
            let rest = value[value.index(after: close)...].trimmingCharacters(in: .whitespaces)
            if !rest.isEmpty { table[id] = rest }
            return table[id] ?? id
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let first = line.first else { continue }
            if first.isNumber || first == "+" || first == "-" || first == "*" {
                if skipNext {
                    skipNext = false
                    continue
                }
                let parts = line.split(separator: " ")
                if parts.count > 1, let n = UInt64(parts[1]) {
                    selfCost[function, default: 0] += n
                    objectOf[function] = object
                }
            } else if line.hasPrefix("ob=") {
                object = named(line.dropFirst(3), in: &objects)
            } else if line.hasPrefix("cob=") {
                _ = named(line.dropFirst(4), in: &objects)
            } else if line.hasPrefix("fn=") {
                function = named(line.dropFirst(3), in: &names)
            } else if line.hasPrefix("cfn=") {
                _ = named(line.dropFirst(4), in: &names)
            } else if line.hasPrefix("calls=") {
                skipNext = true
            } else if line.hasPrefix("desc: Trigger: Client Request: ") {
                trigger = String(line.dropFirst("desc: Trigger: Client Request: ".count))
            } else if line.hasPrefix("summary:") || line.hasPrefix("totals:") {
                total = UInt64(line.split(separator: " ").last ?? "") ?? total
            }
        }
        functions = selfCost.map { (object: objectOf[$0.key] ?? "", function: $0.key, instructions: $0.value) }
        if total == 0 { total = functions.reduce(0) { $0 + $1.instructions } }
    }
}

/// Which part of the path a function is: its library, or for Swift code linked into the
/// benchmark, its module (read from the mangled name) mapped to the service or layer.
func callPart(object: String, function: String) -> String {
    let library = URL(fileURLWithPath: object).lastPathComponent
    let f = function
    if library.hasPrefix("libprotobuf-c") { return "libprotobuf-c (encoding, decoding)" }
    if library.hasPrefix("liblz4") { return "LZ4 (RPC frames)" }
    if library.hasPrefix("libsqlite3") { return "SQLite (the decision view)" }
    if library.hasPrefix("libopenblas") { return "OpenBLAS" }
    if library.hasPrefix("libc.so") || library.hasPrefix("libc-") {
        if ["malloc", "free", "calloc", "realloc", "_int_", "tcache", "unlink_chunk", "sysmalloc", "malloc_consolidate", "cfree"]
            .contains(where: { f.contains($0) })
        {
            return "malloc and free"
        }
        if f.hasPrefix("__mem") || f.hasPrefix("mem") || f.hasPrefix("__str") || f.hasPrefix("str") { return "memcpy, memset" }
        return "libc (system call wrappers, locks, clocks)"
    }
    if library.hasPrefix("libswiftCore") {
        if f.contains("etain") || f.contains("elease") { return "reference counting (retain, release)" }
        if f.contains("lloc") { return "Swift object allocation" }
        if f.contains("Access") { return "exclusivity checks" }
        return "Swift standard library and runtime"
    }
    if library.hasPrefix("libswift_Concurrency") { return "Swift concurrency (tasks, executors)" }
    if library.hasPrefix("libdispatch") || library.hasPrefix("libFoundation") || library.hasPrefix("lib_Foundation")
        || library.hasPrefix("libswiftDispatch")
    {
        return "Foundation and Dispatch"
    }
    if library.hasPrefix("ld-linux") { return "dynamic linker" }
    if !library.hasPrefix("PersonaBench") { return library }
    // Linked in: C targets by prefix, Swift by the module in the mangled name.
    if f.hasPrefix("c_nio") || f.hasPrefix("CNIO") { return "SwiftNIO (sockets, event loops, buffers)" }
    if f.hasPrefix("persona__") || f.hasPrefix("wire_") { return "Wire (Swift values to and from protobuf-c)" }
    if f.hasPrefix("crc32c") || f.hasPrefix("persona_crc") { return "Store (the log's group commit, CRC-32C, snapshots)" }
    guard f.hasPrefix("$s") else { return "other C code" }
    let body = f.dropFirst(2)
    if body.hasPrefix("S") || body.hasPrefix("s") { return "Swift standard library (specialised here)" }
    let digits = body.prefix { $0.isNumber }
    guard let length = Int(digits) else { return "other Swift code" }
    let module = String(body.dropFirst(digits.count).prefix(length))
    switch module {
    case _ where module.hasPrefix("NIO") || module.hasPrefix("_NIO") || module == "Atomics":
        return "SwiftNIO (sockets, event loops, buffers)"
    case "RPC": return "RPC (framing, dispatch, deadlines)"
    case "Wire": return "Wire (Swift values to and from protobuf-c)"
    case "Feature": return "feature service"
    case "RiskControl": return "risk-control service"
    case "Recommend": return "recommend service"
    case "Classifiers": return "Classifiers (trees, calibration, TreeSHAP)"
    case "Math": return "Math (kernels, top-K, TreeSHAP)"
    case "Store", "EventLog": return "Store (the log's group commit, CRC-32C, snapshots)"
    case "ServiceKit": return "ServiceKit (hosting, metrics, callers)"
    case "PersonaBench": return "the benchmark's client"
    default: return module
    }
}

/// Swift names as `swift demangle --simplified` writes them (the names as given when it is missing).
func demangled(_ names: [String]) -> [String] {
    guard let out = try? run("/usr/bin/env", ["swift", "demangle", "--simplified", "--compact"] + names) else { return names }
    let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    return lines.count >= names.count ? Array(lines.prefix(names.count)) : names
}
