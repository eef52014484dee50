// persona-bench: Persona's binary RPC against grpc-swift-2 on loopback, same process, same
// messages, same codec (our protobuf-c codec plugged into gRPC as its serializer), so the
// transport is the only difference. `codec` times Wire against libprotobuf-c alone.
//
//   persona-bench [--output FILE] [--seconds S] [--producers N]
import Datasets
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import RPC
import ServiceKit
import Wire

// MARK: Workload

/// ~100-byte request: a risk score call.
func smallRequest(_ i: Int) -> ScoreRequest {
    var r = ScoreRequest()
    r.orderId = "order-\(100_000 + i)"
    r.userId = Int64(10_000 + i % 5000)
    r.amount = 59.90
    r.currency = "EUR"
    r.deviceId = "d1f6e2a9c0b44e7f"
    r.ip = "203.0.113.\(i % 250)"
    r.paymentInstrument = "card-4c1d9e"
    r.channel = "app"
    r.timestampMs = 1_511_654_400_000 + Int64(i)
    return r
}

func scoreResponse(_ r: ScoreRequest) -> ScoreResponse {
    var d = Decision()
    d.orderId = r.orderId
    d.userId = r.userId
    d.score = Int32(r.userId % 1000)
    d.action = d.score > 800 ? .decline : .allow
    var out = ScoreResponse()
    out.decision = d
    return out
}

/// An event batch of about `bytes` encoded bytes, built from Taobao-like rows.
func eventBatch(events: Int) -> AppendRequest {
    var batch = AppendRequest()
    batch.events = (0..<events).map { i in
        var e = Event()
        e.eventId = "taobao-\(1_000_000 + i)"
        e.kind = [.view, .addToCart, .favorite, .purchase][i % 4]
        e.userId = Int64(1 + i % 977)
        e.timestampMs = 1_511_654_400_000 + Int64(i * 1000)
        e.sessionId = "s-\(i / 20)"
        e.deviceId = String(format: "%016llx", UInt64(i % 977) &* 0x9E37_79B9_7F4A_7C15)
        e.ip = "198.51.100.\(i % 250)"
        e.channel = "web"
        e.itemId = Int64(2_000_000 + (i * 7919) % 500_000)
        e.categoryId = Int64(4_000 + i % 300)
        return e
    }
    return batch
}

func appendResponse(_ r: AppendRequest) -> AppendResponse {
    var out = AppendResponse()
    out.accepted = UInt32(r.events.count)
    return out
}

// MARK: gRPC plumbing with our codec

struct WireSerializer<M: WireMessage>: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: M) throws -> Bytes { Bytes(message.serializedBytes()) }
}

struct WireDeserializer<M: WireMessage>: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> M {
        try bytes.withUnsafeBytes { try M(serializedBytes: $0, limits: .default) }
    }
}

let scoreDescriptor = MethodDescriptor(fullyQualifiedService: "persona.v1.Risk", method: "Score")
let appendDescriptor = MethodDescriptor(fullyQualifiedService: "persona.v1.Ingest", method: "Append")

struct BenchService: RegistrableRPCService {
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: scoreDescriptor, deserializer: WireDeserializer<ScoreRequest>(),
            serializer: WireSerializer<ScoreResponse>()
        ) { request, _ in
            var last: ScoreRequest?
            for try await m in request.messages { last = m }
            return StreamingServerResponse(single: ServerResponse(message: scoreResponse(last ?? ScoreRequest())))
        }
        router.registerHandler(
            forMethod: appendDescriptor, deserializer: WireDeserializer<AppendRequest>(),
            serializer: WireSerializer<AppendResponse>()
        ) { request, _ in
            var last: AppendRequest?
            for try await m in request.messages { last = m }
            return StreamingServerResponse(single: ServerResponse(message: appendResponse(last ?? AppendRequest())))
        }
    }
}

// MARK: Measurement

struct Result {
    var system: String
    var payload: String
    var inFlight: Int
    var calls: Int
    var seconds: Double
    var latenciesMicros: [Double]

    var callsPerSecond: Double { Double(calls) / seconds }
    func percentile(_ p: Double) -> Double { PersonaBench.percentile(latenciesMicros, p) }
}

/// One case of a transport benchmark for `plot_latency.py`: its throughput and its latency
/// quantiles.
struct LatencyRow: Encodable {
    var group: String
    var system: String
    var throughput: Double
    var quantiles: [String: Double]

    init(group: String, system: String, throughput: Double, latencies: [Double]) {
        self.group = group
        self.system = system
        self.throughput = throughput
        let sorted = latencies.sorted()
        quantiles =
            sorted.isEmpty
            ? [:]
            : Dictionary(
                uniqueKeysWithValues: [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999].map { (String($0), percentile(sorted: sorted, $0)) })
    }
}

/// Writes the figures of a transport benchmark beside its results file (`.json`) and draws
/// them (`.png`): throughput against `peer` for every case (when one ran), the distributions
/// of `distributions`, and a `reference` latency (a published figure) as a line.
func drawLatencies(
    _ rows: [LatencyRow], output: String, title: String, peer: String?, throughput: String, latency: String, distributions: [String],
    reference: (label: String, value: Double)? = nil
) throws {
    struct Figures: Encodable {
        var title: String, peer: String?
        var throughput_label: String, latency_label: String
        var distributions: [String]
        var reference_label: String?, reference_value: Double?
        var rows: [LatencyRow]
    }
    let json = output.replacingOccurrences(of: ".md", with: ".json")
    let figures = Figures(
        title: title, peer: peer, throughput_label: throughput, latency_label: latency, distributions: distributions,
        reference_label: reference?.label,
        reference_value: reference?.value, rows: rows)
    try JSONEncoder().encode(figures).write(to: URL(fileURLWithPath: json))
    try run(try peerPython(), ["Benchmarks/peers/plot_latency.py", json, output.replacingOccurrences(of: ".md", with: ".png")])
}

/// The `p` quantile (0...1) of `values`, nearest rank; NaN when there are none.
func percentile(_ values: [Double], _ p: Double) -> Double { percentile(sorted: values.sorted(), p) }

/// The `p` quantile of values already in ascending order.
func percentile(sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Runs `inFlight` workers calling `call` back to back for `seconds` (after a short warm-up).
func measure(system: String, payload: String, inFlight: Int, seconds: Double, _ call: @escaping @Sendable (Int) async throws -> Void)
    async throws -> Result
{
    // Warm-up: connections, caches, allocator.
    let warmEnd = ContinuousClock.now + .milliseconds(300)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<inFlight {
            group.addTask {
                var i = w; while ContinuousClock.now < warmEnd { try await call(i); i += inFlight }
            }
        }
        try await group.waitForAll()
    }
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
        for w in 0..<inFlight {
            group.addTask {
                var own: [Double] = []
                var i = w
                while ContinuousClock.now < end {
                    let t0 = ContinuousClock.now
                    try await call(i)
                    let d = t0.duration(to: .now)
                    own.append(Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12)
                    i += inFlight
                }
                return own
            }
        }
        return try await group.reduce(into: [Double]()) { $0 += $1 }
    }
    let elapsed = start.duration(to: .now)
    let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Result(system: system, payload: payload, inFlight: inFlight, calls: latencies.count, seconds: secs, latenciesMicros: latencies)
}

// MARK: Main

// Heap on huge pages, as the services run (see HugePages).
HugePages.adoptForHeap()

var mode = "rpc"
var output: String?
var seconds = 3.0
var producers = 1
var users = 1_000_000
var events: Int?
var batch: Int?
var taobao = false
var items: Int?
var noPeers = false
var decisions = 10_000_000
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let a = arguments.next() {
    switch a {
    case "rpc", "codec", "log", "codec-pack-profile", "codec-unpack-profile", "store", "ingest-profile", "fold-profile", "feature",
        "models",
        "sequence", "deep", "topk", "recommend", "classifiers",
        "risk", "interactions-profile", "calls":
        mode = a
    case "--decisions": decisions = Int(arguments.next() ?? "") ?? decisions
    case "--output": output = arguments.next()
    case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
    case "--producers": producers = Int(arguments.next() ?? "") ?? producers
    case "--users": users = Int(arguments.next() ?? "") ?? users
    case "--events": events = Int(arguments.next() ?? "")
    case "--batch": batch = Int(arguments.next() ?? "")
    case "--taobao": taobao = true
    case "--items": items = Int(arguments.next() ?? "")
    case "--no-peers": noPeers = true
    default:
        print(
            """
            usage: persona-bench \
            [rpc|codec|log|store|feature|models|sequence|deep|topk|recommend|classifiers|risk|calls] \
            [ingest-profile|fold-profile|interactions-profile|codec-pack-profile|codec-unpack-profile] \
            [--output FILE] [--seconds S] [--producers N] [--users N] [--events N] [--batch N] [--taobao] [--items \
            N] [--no-peers] [--decisions N]
            """
        ); exit(2)
    }
}
switch mode {
case "ingest-profile":
    // Only the ingest path, for profilers: batches of 1000.
    let r = try await appendIngest(try taobaoEvents(), batch: 1000, producers: producers, seconds: seconds, measureRestart: true)
    print("ingest: \(Int(r.eventsPerSecond)) events/s; restart on \(r.events) stored events: \(r.restartSeconds!) s")
case "fold-profile" where taobao:
    // Only the fold of the real Taobao slice, for profilers: 40 fresh states.
    let r = try taobaoFoldBenchmark(rounds: 40)
    print("fold, Taobao slice: \(Int(r.eventsPerSecond)) events/s (best of 40)")
case "fold-profile":
    // Only the fold, for profilers: 1 million users and 5 events per user unless told.
    let r = foldBenchmark(users: users, events: events ?? 5 * users, batch: batch)
    print(
        """
        fold: \(Int(r.eventsPerSecond)) events/s, \(Int(r.bytesPerUser)) bytes per user; snapshot \
        \(r.snapshot.bytes / 1_000_000) MB: encoded in \(r.snapshot.encodeSeconds) s, written in \
        \(r.snapshot.writeSeconds) s, restored in \(r.snapshot.restoreSeconds) s
        """
    )
case "feature":
    try await featureBenchmark(output: output ?? "Benchmarks/results/feature.md", seconds: seconds)
case "interactions-profile":
    // Only the model service's interaction store, for profilers: the Online Retail invoices.
    let path =
        (ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data")
        + "/online-retail/Online_Retail_2010-12_to_2011-10.csv"
    var skips = DatasetFormat.Skips()
    let f = storeFigures(
        DatasetFormat.onlineRetail.events(
            lines: try String(contentsOfFile: path, encoding: .utf8).split(whereSeparator: \.isNewline), skips: &skips))
    print("interaction store, Online Retail: \(Int(f.eventsPerSecond)) events/s, \(String(format: "%.1f", f.bytesPerPair)) bytes per pair")
case "classifiers":
    try await classifierBenchmark(
        output: output ?? "Benchmarks/results/classifiers.md",
        sharedData: ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data")
case "risk":
    try await riskBenchmark(
        output: output ?? "Benchmarks/results/risk.md",
        sharedData: ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data",
        stored: decisions, seconds: max(seconds, 5))
case "calls":
    try await callCostBenchmark(
        output: output ?? "Benchmarks/results/calls.md",
        sharedData: ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data", calls: events ?? 2_000)
case "recommend":
    try await recommendBenchmark(
        output: output ?? "Benchmarks/results/recommend.md",
        configurations: items.map { n in [(n, false), (n, true)] } ?? recommendConfigurations, seconds: seconds)
case "topk":
    try topKBenchmark(output: output ?? "Benchmarks/results/topk.md", items: items.map { [$0] } ?? [100_000, 1_000_000], peers: !noPeers)
case "deep":
    try sequenceDeepBenchmark(
        output: output ?? "Benchmarks/results/sequence-deep.md",
        sharedData: ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data", epochs: events ?? 20)
case "sequence":
    try sequenceBenchmark(
        output: output ?? "Benchmarks/results/sequence.md",
        sharedData: ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data")
case "models":
    try modelBenchmark(
        output: output ?? "Benchmarks/results/models.md",
        sharedData: ProcessInfo.processInfo.environment["PERSONA_SHARED_DATA"] ?? "../shared/data")
case "codec-pack-profile", "codec-unpack-profile":
    // Only Wire's pack or unpack of the 10,000-event batch, 300 times, for profilers.
    let batch = events.map { eventBatch(events: $0) } ?? purchaseBatch(events: 10_000)
    let bytes = batch.serializedBytes()
    for _ in 0..<300 {
        if mode == "codec-pack-profile" { _ = batch.serializedBytes() } else { _ = try AppendRequest(serializedBytes: bytes) }
    }
case "log":
    try await logBenchmark(output: output ?? "Benchmarks/results/log.md", seconds: seconds)
case "codec":
    try codecBenchmark(output: output ?? "Benchmarks/results/codec.md", events: events ?? 10_000)
case "store":
    try await storeBenchmark(output: output ?? "Benchmarks/results/store.md", seconds: seconds)
default:
    try await rpcBenchmark(output: output ?? "Benchmarks/results/rpc.md", seconds: seconds)
}
