import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing
import Wire

@testable import RPC

/// Test methods carried over real loopback sockets.
enum TestAPI {
    /// Answers key reversed, after sleeping `value` milliseconds (if numeric).
    static let echo = Method<KeyValue, KeyValue>(id: 0x7F01, name: "Test/Echo")
    /// Answers with the deadline the handler saw, in microseconds from now, as `value`.
    static let deadline = Method<KeyValue, KeyValue>(id: 0x7F02, name: "Test/Deadline")
    static let missing = Method<KeyValue, KeyValue>(id: 0x7FFF, name: "Test/Missing")
    /// Answered on the event loop: key reversed, or INVALID_ARGUMENT when the key is "bad";
    /// `value` is the deadline the handler saw, as for `deadline`.
    static let inline = Method<KeyValue, KeyValue>(id: 0x7F03, name: "Test/Inline")
    /// Answers the request id the handler's context holds, as `value`.
    static let requestID = Method<KeyValue, KeyValue>(id: 0x7F04, name: "Test/RequestID")
}

final class Flag: Sendable {
    let value = Atomic<Int>(0)
    func bump() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

func echoRouter(cancelled: Flag = Flag()) -> Router {
    var router = Router()
    router.register(TestAPI.echo) { request in
        if let ms = Int(request.value), ms > 0 {
            do {
                try await Task.sleep(for: .milliseconds(ms))
            } catch {
                cancelled.bump()
                throw error
            }
        }
        var response = KeyValue()
        response.key = String(request.key.reversed())
        response.value = request.value
        return response
    }
    router.register(TestAPI.deadline) { _ in
        var response = KeyValue()
        response.value = remainingMicros()
        return response
    }
    router.register(TestAPI.requestID) { _ in
        var response = KeyValue()
        response.value = RPCContext.current?.requestID ?? ""
        return response
    }
    router.registerInline(TestAPI.inline) { request in
        guard request.key != "bad" else { throw RPCError(.invalidArgument, "bad key") }
        var response = KeyValue()
        response.key = String(request.key.reversed())
        response.value = remainingMicros()
        return response
    }
    return router
}

/// The deadline the current call's handler sees, in microseconds from now, or "none".
func remainingMicros() -> String {
    let remaining = RPCContext.current?.remaining.map { $0.components.seconds * 1_000_000 + $0.components.attoseconds / 1_000_000_000_000 }
    return remaining.map(String.init) ?? "none"
}

func echo(_ key: String, sleepMs: Int = 0) -> KeyValue {
    var kv = KeyValue()
    kv.key = key
    kv.value = String(sleepMs)
    return kv
}

@Suite("RPC over loopback", .timeLimit(.minutes(2)))
struct RPCLoopbackTests {
    @Test("1,000 concurrent calls on one connection, answered out of order")
    func thousandConcurrentCalls() async throws {
        try await withTestServer(router: echoRouter()) { server in
            let client = server.client(connections: 1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<1000 {
                    group.addTask {
                        // Varying sleeps make later calls finish first.
                        let response = try await client.call(TestAPI.echo, echo("call-\(i)", sleepMs: (1000 - i) % 7))
                        #expect(response.key == String("call-\(i)".reversed()))
                    }
                }
                try await group.waitForAll()
            }
            await client.shutdown()
        }
    }

    @Test func deadlineExpiresAndServerCancelsTheWork() async throws {
        let cancelled = Flag()
        let observer = RecordingObserver()
        try await withTestServer(router: echoRouter(cancelled: cancelled), observer: observer) { server in
            let client = server.client()
            await #expect { try await client.call(TestAPI.echo, echo("slow", sleepMs: 5_000), timeout: .milliseconds(100)) } throws: {
                ($0 as? RPCError)?.code == .deadlineExceeded
            }
            // The handler's 5 s sleep was cancelled, not waited out.
            try await waitUntil { cancelled.count == 1 }
            #expect(observer.count(.deadlineExceeded) + observer.count(.cancelled) >= 1)
            await client.shutdown()
        }
    }

    @Test func cancellingTheCallerCancelsTheServerWork() async throws {
        let cancelled = Flag()
        try await withTestServer(router: echoRouter(cancelled: cancelled)) { server in
            let client = server.client()
            let call = Task { try await client.call(TestAPI.echo, echo("slow", sleepMs: 10_000)) }
            try await Task.sleep(for: .milliseconds(100))
            call.cancel()
            await #expect { try await call.value } throws: { ($0 as? RPCError)?.code == .cancelled }
            try await waitUntil { cancelled.count == 1 }
            await client.shutdown()
        }
    }

    @Test func deadlineIsPropagatedToDownstreamCalls() async throws {
        try await withTestServer(router: echoRouter()) { downstream in
            let downstreamClient = downstream.client()
            var router = Router()
            router.register(TestAPI.deadline) { request in
                // No timeout given here: the client must inherit this call's deadline.
                try await downstreamClient.call(TestAPI.deadline, request)
            }
            try await withTestServer(router: router) { upstream in
                let client = upstream.client()
                // Generous: two connections are set up inside it, on a machine the rest of the
                // suite keeps busy. What is checked is that the downstream saw a deadline.
                let response = try await client.call(TestAPI.deadline, KeyValue(), timeout: .seconds(30))
                let seen = try #require(Int(response.value))
                #expect(seen > 0 && seen <= 30_000_000)
                await client.shutdown()
            }
            await downstreamClient.shutdown()
        }
    }

    @Test("a request id is made for a call that brings none, carried to the calls made while serving it, and named in its log lines")
    func requestIDsTravel() async throws {
        try await withTestServer(router: echoRouter()) { downstream in
            let downstreamClient = downstream.client()
            var router = Router()
            router.register(TestAPI.requestID) { _ in
                let seen = try await downstreamClient.call(TestAPI.requestID, KeyValue())
                var response = KeyValue()
                response.key = RPCContext.current?.requestID ?? ""
                response.value = seen.value
                // What a service's log handler adds to every line written here.
                response.value += "|" + (Logger.MetadataProvider.requestID.get()["request_id"].map { "\($0)" } ?? "")
                return response
            }
            try await withTestServer(router: router) { upstream in
                let client = upstream.client()
                let first = try await client.call(TestAPI.requestID, KeyValue())
                let second = try await client.call(TestAPI.requestID, KeyValue())
                #expect(first.key.count == 16 && first.key != second.key)
                #expect(first.value == "\(first.key)|\(first.key)", "the downstream call and the log lines carry the upstream's id")
                // A caller serving a request of its own passes its id on.
                let outer = RPCContext(deadline: nil, method: "Test/Outer", correlationID: 1, requestID: "order-7-checkout")
                let carried = try await RPCContext.$current.withValue(outer) { try await client.call(TestAPI.requestID, KeyValue()) }
                #expect(carried.key == "order-7-checkout" && carried.value.hasPrefix("order-7-checkout|"))
                await client.shutdown()
            }
            await downstreamClient.shutdown()
        }
    }

    @Test func overloadedWhenOverTheConnectionLimit() async throws {
        var config = RPCServer.Config.defaults
        config.maxConcurrentCallsPerConnection = 4
        try await withTestServer(router: echoRouter(), config: config) { server in
            let client = server.client(connections: 1)
            let statuses = try await withThrowingTaskGroup(of: StatusCode.self) { group in
                for i in 0..<10 {
                    group.addTask {
                        do {
                            _ = try await client.call(TestAPI.echo, echo("\(i)", sleepMs: 300))
                            return .ok
                        } catch let error as RPCError {
                            return error.code
                        }
                    }
                }
                return try await group.reduce(into: [StatusCode]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 4)
            #expect(statuses.filter { $0 == .overloaded }.count == 6)
            await client.shutdown()
        }
    }

    @Test("inline handlers answer on the event loop, with their errors, deadlines and metrics")
    func inlineHandlers() async throws {
        let observer = RecordingObserver()
        try await withTestServer(router: echoRouter(), observer: observer) { server in
            let client = server.client()
            // Many at once, interleaved with task-run calls on the same connection.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<200 {
                    group.addTask {
                        let method = n % 2 == 0 ? TestAPI.inline : TestAPI.echo
                        let r = try await client.call(method, echo("k\(n)"), timeout: .seconds(5))
                        #expect(r.key == String("k\(n)".reversed()))
                        if n % 2 == 0 {
                            let micros = try #require(Int(r.value))
                            #expect(micros > 0 && micros <= 5_000_000)
                        }
                    }
                }
                try await group.waitForAll()
            }
            await #expect { try await client.call(TestAPI.inline, echo("bad")) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument && ($0 as? RPCError)?.message == "bad key"
            }
            let garbage = try await client.call(methodID: TestAPI.inline.id, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
            #expect(garbage.status == UInt8(StatusCode.invalidArgument.rawValue))
            #expect(observer.started == 202 && observer.count(.ok) == 200 && observer.count(.invalidArgument) == 2)
            await client.shutdown()
        }
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withTestServer(router: echoRouter()) { server in
            let client = server.client()
            await #expect { try await client.call(TestAPI.missing, KeyValue()) } throws: {
                ($0 as? RPCError)?.code == .unimplemented
            }
            // The connection is still fine.
            let r = try await client.call(TestAPI.echo, echo("ab"))
            #expect(r.key == "ba")
            await client.shutdown()
        }
    }

    @Test func undecodableRequestIsInvalidArgument() async throws {
        try await withTestServer(router: echoRouter()) { server in
            let client = server.client()
            let response = try await client.call(methodID: TestAPI.echo.id, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
            #expect(response.status == UInt8(StatusCode.invalidArgument.rawValue))
            await client.shutdown()
        }
    }

    @Test func largePayloadsRoundTripCompressed() async throws {
        try await withTestServer(router: echoRouter()) { server in
            let client = server.client()
            let key = String(repeating: "persona-", count: 50_000)
            let response = try await client.call(TestAPI.echo, echo(key))
            #expect(response.key == String(key.reversed()))
            await client.shutdown()
        }
    }

    @Test("garbage closes only its own connection, is counted, and the server keeps serving")
    func garbageClosesTheConnection() async throws {
        let observer = RecordingObserver()
        try await withTestServer(router: echoRouter(), observer: observer) { server in
            let client = server.client()
            let r = try await client.call(TestAPI.echo, echo("before"))
            #expect(r.key == "erofeb")

            let reply = try await RawSocket.exchange(port: server.port, send: Array("GET / HTTP/1.1\r\n\r\n".utf8))
            // The server answers with a go-away frame carrying PROTOCOL_ERROR, then closes.
            #expect(reply.count >= Frame.headerSize)
            #expect(reply.prefix(2) == [0x50, 0x52])
            #expect(reply[3] == Frame.Kind.goAway.rawValue)
            #expect(reply[5] == UInt8(StatusCode.protocolError.rawValue))
            #expect(observer.protocolErrors(.badMagic) == 1)

            // An oversized frame is refused from its header; the body is never sent.
            var header = ByteBuffer()
            FrameEncoder.write(
                Frame(kind: .request, method: 1, correlationID: 1, payload: ByteBuffer()), into: &header, compressionThreshold: .max)
            header.setInteger(UInt32(1 << 30), at: 20)
            let refused = try await RawSocket.exchange(port: server.port, send: Array(header.readableBytesView))
            #expect(refused.count >= Frame.headerSize && refused[3] == Frame.Kind.goAway.rawValue)
            #expect(observer.protocolErrors(.frameTooLarge) == 1)

            let r2 = try await client.call(TestAPI.echo, echo("after"))
            #expect(r2.key == "retfa")
            await client.shutdown()
        }
    }

    @Test("server restarted while a client keeps calling: the client recovers by itself")
    func clientRecoversAfterServerRestart() async throws {
        // A port below the ephemeral range: once the first server closes it, no outgoing
        // connection of another test can take it before the second binds it.
        var firstConfig = RPCServer.Config.defaults
        firstConfig.port = freePort()
        let first = try await TestServer(router: echoRouter(), config: firstConfig)
        let port = first.port
        var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
        config.backoff = ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        let client = RPCClient(config: config)
        let r = try await client.call(TestAPI.echo, echo("one"))
        #expect(r.key == "eno")

        await first.stop()
        // While the server is down, calls fail UNAVAILABLE (the connection is refused) rather than
        // waiting out their deadline; 2 s leaves room for a loaded machine.
        await #expect { try await client.call(TestAPI.echo, echo("down"), timeout: .seconds(2)) } throws: {
            ($0 as? RPCError)?.code == .unavailable
        }

        var restartConfig = RPCServer.Config.defaults
        restartConfig.port = port
        let second = try await TestServer(router: echoRouter(), config: restartConfig)
        var recovered = false
        for _ in 0..<100 where !recovered {
            recovered = (try? await client.call(TestAPI.echo, echo("two"), timeout: .milliseconds(500)))?.key == "owt"
            if !recovered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(recovered)
        await client.shutdown()
        await second.stop()
    }

    @Test func gracefulShutdownFinishesInFlightCalls() async throws {
        let observer = RecordingObserver()
        let server = try await TestServer(router: echoRouter(), observer: observer)
        let client = server.client()
        let slow = Task { try await client.call(TestAPI.echo, echo("slow", sleepMs: 300)) }
        try await waitUntil { observer.started == 1 }
        await server.stop()
        #expect(try await slow.value.key == "wols")
        await client.shutdown()
    }
}

func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition not met within \(timeout)")
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A plain TCP socket for sending bytes no well-behaved client would send.
enum RawSocket {
    /// Sends `bytes`, then reads until the server closes, `count` bytes arrived, or 2 s pass.
    static func exchange(port: Int, send bytes: [UInt8], count: Int = .max) async throws -> [UInt8] {
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received, count: count))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        // Every use expects the server to answer `count` bytes or close: the timer only ends a
        // broken exchange, so it leaves a busy machine plenty of time.
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(30)) { channel.close(promise: nil) }
        try await channel.closeFuture.get()
        timeout.cancel()
        return received.bytes.withLock { $0 }
    }

    final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let received: Received
        let count: Int
        init(received: Received, count: Int) {
            self.received = received
            self.count = count
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let total = received.bytes.withLock {
                $0 += buffer.readableBytesView; return $0.count
            }
            if total >= count { context.close(promise: nil) }
        }
    }
}
