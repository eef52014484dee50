// persona-bench: Persona's binary RPC against grpc-swift-2 on loopback, same process, same
// messages, same codec (our protobuf-c codec plugged into gRPC as its serializer), so the
// transport is the only difference. Also times the codec on a 10,000-event batch.
//
//   persona-bench [--output FILE] [--seconds S]
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import RPC
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
    func percentile(_ p: Double) -> Double {
        let sorted = latenciesMicros.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}

/// Runs `inFlight` workers calling `call` back to back for `seconds` (after a short warm-up).
func measure(system: String, payload: String, inFlight: Int, seconds: Double, _ call: @escaping @Sendable (Int) async throws -> Void) async throws -> Result {
    // Warm-up: connections, caches, allocator.
    let warmEnd = ContinuousClock.now + .milliseconds(300)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<inFlight {
            group.addTask { var i = w; while ContinuousClock.now < warmEnd { try await call(i); i += inFlight } }
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

var output = "Benchmarks/results/rpc.md"
var seconds = 3.0
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let a = arguments.next() {
    switch a {
    case "--output": output = arguments.next() ?? output
    case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
    default: print("usage: persona-bench [--output FILE] [--seconds S]"); exit(2)
    }
}

let small = (0..<1024).map(smallRequest)
let large = eventBatch(events: 4_000)
let largeBytes = large.serializedBytes().count
let smallBytes = small[0].serializedBytes().count
print("request sizes: small \(smallBytes) B, batch \(largeBytes) B (\(large.events.count) events)")

var logger = Logger(label: "bench")
logger.logLevel = .warning

// Persona RPC server (and a second one with compression off, to show what LZ4 buys).
var router = Router()
router.register(RiskAPI.score) { scoreResponse($0) }
router.register(IngestAPI.append) { appendResponse($0) }
let personaServer = RPCServer(config: .defaults, router: router, logger: logger)
let personaPort = try await personaServer.start().port!
let personaTask = Task { try await personaServer.run() }

// gRPC server and client.
let grpcServer = GRPCServer(
    transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
    services: [BenchService()])
let grpcServerTask = Task { try await grpcServer.serve() }
guard let grpcAddress = try await grpcServer.listeningAddress?.ipv4 else { fatalError("gRPC server did not bind") }
var clientConfig = HTTP2ClientTransport.Posix.Config.defaults
clientConfig.http2.maxFrameSize = 1 << 20
let grpcClient = GRPCClient(
    transport: try HTTP2ClientTransport.Posix(
        target: .ipv4(host: "127.0.0.1", port: grpcAddress.port), transportSecurity: .plaintext, config: clientConfig))
let grpcClientTask = Task { try await grpcClient.runConnections() }

func personaClient(compression: Bool) -> RPCClient {
    var config = RPCClient.Config.defaults(host: "127.0.0.1", port: personaPort)
    if !compression { config.frameLimits.compressionThreshold = .max }
    return RPCClient(config: config)
}

var results: [Result] = []
for (payload, inFlights) in [("small", [1, 16, 64]), ("batch", [1, 16, 64])] {
    for n in inFlights {
        let persona = personaClient(compression: true)
        let r1: Result
        if payload == "small" {
            r1 = try await measure(system: "persona", payload: payload, inFlight: n, seconds: seconds) { i in
                _ = try await persona.call(RiskAPI.score, small[i % small.count], timeout: .seconds(10))
            }
        } else {
            r1 = try await measure(system: "persona", payload: payload, inFlight: n, seconds: seconds) { _ in
                _ = try await persona.call(IngestAPI.append, large, timeout: .seconds(30))
            }
        }
        await persona.shutdown()
        results.append(r1)
        if payload == "batch" {
            let raw = personaClient(compression: false)
            results.append(try await measure(system: "persona (no LZ4)", payload: payload, inFlight: n, seconds: seconds) { _ in
                _ = try await raw.call(IngestAPI.append, large, timeout: .seconds(30))
            })
            await raw.shutdown()
        }
        let r2: Result
        if payload == "small" {
            r2 = try await measure(system: "grpc-swift-2", payload: payload, inFlight: n, seconds: seconds) { i in
                _ = try await grpcClient.unary(
                    request: ClientRequest(message: small[i % small.count]), descriptor: scoreDescriptor,
                    serializer: WireSerializer<ScoreRequest>(), deserializer: WireDeserializer<ScoreResponse>(),
                    options: .defaults
                ) { try $0.message }
            }
        } else {
            r2 = try await measure(system: "grpc-swift-2", payload: payload, inFlight: n, seconds: seconds) { _ in
                _ = try await grpcClient.unary(
                    request: ClientRequest(message: large), descriptor: appendDescriptor,
                    serializer: WireSerializer<AppendRequest>(), deserializer: WireDeserializer<AppendResponse>(),
                    options: .defaults
                ) { try $0.message }
            }
        }
        results.append(r2)
        for r in results.suffix(payload == "batch" ? 3 : 2) {
            print(String(format: "%-18@ %-6@ in-flight %3d: %9.0f calls/s  p50 %8.0f µs  p99 %8.0f µs", r.system as NSString, r.payload as NSString, r.inFlight, r.callsPerSecond, r.percentile(0.5), r.percentile(0.99)))
        }
    }
}

grpcClient.beginGracefulShutdown()
grpcServer.beginGracefulShutdown()
personaServer.beginGracefulShutdown()
_ = await grpcClientTask.result
_ = await grpcServerTask.result
_ = await personaTask.result

// Codec: pack and unpack a 10,000-event batch.
let tenK = eventBatch(events: 10_000)
let tenKBytes = tenK.serializedBytes()
func timeIt(_ n: Int, _ body: () throws -> Void) rethrows -> Double {
    let t0 = ContinuousClock.now
    for _ in 0..<n { try body() }
    let d = t0.duration(to: .now)
    return (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) / Double(n)
}
_ = timeIt(3) { _ = tenK.serializedBytes() }
let packSeconds = timeIt(20) { _ = tenK.serializedBytes() }
let unpackSeconds = try timeIt(20) { _ = try AppendRequest(serializedBytes: tenKBytes) }

// MARK: Report

var md = """
# RPC benchmark: Persona binary RPC vs grpc-swift-2

Loopback, one connection per client, one process, \(ProcessInfo.processInfo.activeProcessorCount) cores, \(seconds) s per case after a 0.3 s warm-up.
Both systems carry the same protobuf-c-encoded messages (our codec is gRPC's serializer).
Small request: ScoreRequest, \(smallBytes) B. Batch: AppendRequest of \(large.events.count) events, \(largeBytes) B
(Persona LZ4-compresses payloads over 2 KiB by default; the "no LZ4" rows turn that off).

| payload | in flight | system | calls/s | p50 µs | p99 µs | calls/s vs gRPC | p99 vs gRPC |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |

"""
for r in results {
    let peer = results.first { $0.system == "grpc-swift-2" && $0.payload == r.payload && $0.inFlight == r.inFlight }!
    md += String(
        format: "| %@ | %d | %@ | %.0f | %.0f | %.0f | %.2fx | %.2fx |\n", r.payload as NSString, r.inFlight, r.system as NSString,
        r.callsPerSecond, r.percentile(0.5), r.percentile(0.99), r.callsPerSecond / peer.callsPerSecond, r.percentile(0.99) / peer.percentile(0.99))
}
md += String(
    format: """

    ## Codec (libprotobuf-c through Wire), 10,000-event batch of %d bytes

    | operation | ms per batch | events/s | MB/s |
    | --- | ---: | ---: | ---: |
    | pack | %.2f | %.0f | %.0f |
    | unpack | %.2f | %.0f | %.0f |

    """, tenKBytes.count, packSeconds * 1000, 10_000 / packSeconds, Double(tenKBytes.count) / packSeconds / 1e6,
    unpackSeconds * 1000, 10_000 / unpackSeconds, Double(tenKBytes.count) / unpackSeconds / 1e6)
print(md)
try md.write(toFile: output, atomically: true, encoding: .utf8)
print("written to \(output)")
