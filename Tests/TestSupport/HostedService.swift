import Foundation
public import RPC
public import ServiceKit
public import Wire

/// A fresh directory path under the system's temporary directory (not created).
public func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("persona-test-\(UUID().uuidString)").path
}

/// A service running in-process on free ports, with a client connected to it.
public struct HostedService<S: PersonaService>: Sendable {
    public let host: ServiceHost<S>
    public let client: RPCClient
    public let rpcPort: Int
    public let metricsPort: Int
}

/// Starts `S` in-process on 127.0.0.1 and free ports (the RPC port `port` when it is not 0:
/// for a service another one was told of before it started), runs `body`, then always shuts
/// the client and the service down gracefully (errors from `body` are rethrown after that).
public func withHostedService<S: PersonaService, R>(
    _: S.Type, settings: S.Settings, port: Int = 0, dataDir: String = temporaryDirectory(), _ body: (HostedService<S>) async throws -> R
) async throws -> R {
    let options = ServiceOptions.Resolved(host: "127.0.0.1", port: port, metricsPort: 0, dataDir: dataDir, logLevel: .warning)
    let host = try await ServiceHost<S>(options: options, settings: settings)
    let (rpc, metrics) = try await host.start()
    let running = Task { try await host.run(handleSignals: false) }
    let service = HostedService(host: host, client: RPCClient(host: "127.0.0.1", port: rpc), rpcPort: rpc, metricsPort: metrics)
    let result: Result<R, any Error>
    do { result = .success(try await body(service)) } catch { result = .failure(error) }
    await service.client.shutdown()
    host.shutdown()
    switch result {
    case .success(let value):
        try await running.value
        return value
    case .failure(let error):
        _ = await running.result
        throw error
    }
}

/// Calls Health until the service answers (a freshly started process), up to `timeout`.
@discardableResult
public func waitHealthy(_ client: RPCClient, timeout: Duration = .seconds(30)) async throws -> HealthResponse {
    let deadline = ContinuousClock.now + timeout
    while true {
        do {
            return try await client.call(HealthAPI.check, HealthRequest(), timeout: .milliseconds(500))
        } catch {
            if ContinuousClock.now > deadline { throw error }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Waits until a service's Health check `key` reads `value` (a consumer's offsets, the
/// models recommend holds), up to `timeout`.
public func waitHealth(_ client: RPCClient, _ key: String, _ value: String, timeout: Duration = .seconds(30)) async throws {
    let deadline = ContinuousClock.now + timeout
    var last = ""
    while ContinuousClock.now < deadline {
        let health = try? await client.call(HealthAPI.check, HealthRequest(), timeout: .seconds(2))
        last = health?.checks.first { $0.key == key }?.value ?? ""
        if last == value { return }
        try await Task.sleep(for: .milliseconds(30))
    }
    throw ServiceError("health \(key) is '\(last)', not '\(value)'")
}

/// A flag one task sets and others read: how a test tells its load to stop without
/// cancelling the calls in flight.
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    public init() {}
    public var isSet: Bool { lock.withLock { stopped } }
    public func set() { lock.withLock { stopped = true } }
}
