import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import RPC
import Wire

/// Persona RPC against grpc-swift-2: see the comment at the top of main.swift.
func rpcBenchmark(output: String, seconds: Double) async throws {
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
    // The same with access control: every call carries a token and is checked against the role table.
    let secret = Array("bench-service-token-0123456789abcdef".utf8)
    var checked = RPCServer.Config.defaults
    checked.access = AccessPolicy(tokens: [
        AccessToken(id: "analyst-1", role: .analyst, secret: Array("bench-analyst-token-0123456789abcdef".utf8)),
        AccessToken(id: "service-1", role: .service, secret: secret),
    ])
    let checkedServer = RPCServer(config: checked, router: router, logger: logger)
    let checkedPort = try await checkedServer.start().port!
    let checkedTask = Task { try await checkedServer.run() }

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
            target: .ipv4(address: "127.0.0.1", port: grpcAddress.port), transportSecurity: .plaintext, config: clientConfig))
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
            if payload == "small" {
                var config = RPCClient.Config.defaults(host: "127.0.0.1", port: checkedPort)
                config.credential = secret
                let withToken = RPCClient(config: config)
                results.append(
                    try await measure(system: "persona (tokens)", payload: payload, inFlight: n, seconds: seconds) { i in
                        _ = try await withToken.call(RiskAPI.score, small[i % small.count], timeout: .seconds(10))
                    })
                await withToken.shutdown()
            }
            if payload == "batch" {
                let raw = personaClient(compression: false)
                results.append(
                    try await measure(system: "persona (no LZ4)", payload: payload, inFlight: n, seconds: seconds) { _ in
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
            for r in results.suffix(3) {
                print(
                    String(
                        format: "%-18@ %-6@ in-flight %3d: %9.0f calls/s  p50 %8.0f µs  p99 %8.0f µs", r.system as NSString,
                        r.payload as NSString, r.inFlight, r.callsPerSecond, r.percentile(0.5), r.percentile(0.99)))
            }
        }
    }

    grpcClient.beginGracefulShutdown()
    grpcServer.beginGracefulShutdown()
    personaServer.beginGracefulShutdown()
    checkedServer.beginGracefulShutdown()
    _ = await checkedTask.result
    _ = await grpcClientTask.result
    _ = await grpcServerTask.result
    _ = await personaTask.result

    // MARK: Report

    var md = """
        # RPC benchmark: Persona binary RPC vs grpc-swift-2

        Loopback, one connection per client, one process, \(ProcessInfo.processInfo.activeProcessorCount) cores, \
        \(seconds) s per case after a 0.3 s warm-up.
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
            r.callsPerSecond, r.percentile(0.5), r.percentile(0.99), r.callsPerSecond / peer.callsPerSecond,
            r.percentile(0.99) / peer.percentile(0.99))
    }
    if let open = results.first(where: { $0.system == "persona" && $0.payload == "small" && $0.inFlight == 64 }),
        let tokens = results.first(where: { $0.system == "persona (tokens)" && $0.payload == "small" && $0.inFlight == 64 })
    {
        md += String(
            format:
                """
                \nAccess control (docs/PROTOCOL.md): the small call at 64 in flight with a token on every call, \
                checked against the role table, %.0f calls/s against %.0f without: %.1f%% %@ (goal: at most 3%% \
                fewer).\n
                """,
            tokens.callsPerSecond, open.callsPerSecond, abs(100 * (1 - tokens.callsPerSecond / open.callsPerSecond)),
            (tokens.callsPerSecond < open.callsPerSecond ? "fewer" : "more") as NSString)
    }
    md +=
        """
        \n![calls/s against gRPC, and latency \
        distributions](\(URL(fileURLWithPath: output).deletingPathExtension().lastPathComponent).png)\n
        """
    print(md)
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    try drawLatencies(
        results.map {
            LatencyRow(
                group: "\($0.payload), \($0.inFlight) in flight", system: $0.system, throughput: $0.callsPerSecond,
                latencies: $0.latenciesMicros)
        },
        output: output, title: "Persona's RPC against grpc-swift-2, loopback, same messages and codec", peer: "grpc-swift-2",
        throughput: "calls/s",
        latency: "µs per call", distributions: ["small, 16 in flight", "batch, 16 in flight"])
    print("written to \(output)")
}
