import Logging
public import RPC

/// An RPC server on 127.0.0.1 and a free port, running in the background until `stop()`.
public final class TestServer: Sendable {
    public let server: RPCServer
    public let port: Int
    private let task: Task<Void, any Error>

    public init(router: Router, config: RPCServer.Config = .defaults, observer: any RPCServerObserver = NoopObserver()) async throws {
        var config = config
        config.host = "127.0.0.1"
        let server = RPCServer(config: config, router: router, observer: observer, logger: Logger(label: "test-server"))
        let address = try await server.start()
        self.server = server
        self.port = address.port!
        self.task = Task { try await server.run() }
    }

    /// Graceful stop: stop accepting, finish in-flight calls, close.
    public func stop() async {
        server.beginGracefulShutdown()
        _ = await task.result
    }

    public func client(connections: Int = 1) -> RPCClient {
        var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
        config.connections = connections
        return RPCClient(config: config)
    }
}

/// Runs `body` with a started server and always stops it afterwards.
public func withTestServer<R>(
    router: Router, config: RPCServer.Config = .defaults, observer: any RPCServerObserver = NoopObserver(),
    _ body: (TestServer) async throws -> R
) async throws -> R {
    let server = try await TestServer(router: router, config: config, observer: observer)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
