import CMemory
import Foundation
public import Logging
import NIOCore
import RPC
import ServiceLifecycle
import Synchronization
import Wire

/// Runs one Persona service: opens its data directory, serves its RPC methods plus Health,
/// serves `/metrics` and `/health` over HTTP, and shuts down gracefully on SIGTERM/SIGINT
/// (stop accepting, finish in-flight calls, close the state, exit 0).
public final class ServiceHost<S: PersonaService>: Sendable {
    public let service: S
    public let context: ServiceContext
    let rpc: RPCServer
    let http: MetricsHTTPServer
    let startedAt = Date()
    private let draining = Flag()
    private let group = Mutex<ServiceGroup?>(nil)
    /// The tokens checked, and the file they are re-read from.
    let access: (policy: AccessPolicy, file: String)?

    static func readTokens(_ file: String) throws -> [AccessToken] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ServiceError("cannot read the tokens file \(file)")
        }
        do { return try AccessToken.parse(text, file: file) } catch let e as AccessError { throw ServiceError(e.description) }
    }

    /// Re-reads the tokens file every 2 s while it changes (rotation without a restart); a
    /// file that no longer parses is logged and the tokens in force are kept.
    private func followTokens() async {
        guard let (policy, file) = access else { return }
        var last = try? String(contentsOfFile: file, encoding: .utf8)
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(2))
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), text != last else { continue }
            last = text
            do {
                let tokens = try AccessToken.parse(text, file: file)
                policy.replace(tokens)
                context.logger.notice("tokens re-read", metadata: ["tokens": "\(tokens.count)"])
            } catch {
                context.logger.error("tokens file not re-read, the tokens in force are kept: \(error)")
            }
        }
    }

    public static var version: String { "0.1.0" }

    /// Services allocate and free buffers of hundreds of kilobytes per call (frames, batches).
    /// glibc serves those with mmap and gives them back on free, so every call paid for
    /// fresh, zeroed pages from the kernel. Keeping freed memory in the heap lets the next
    /// call reuse it.
    static func keepFreedMemory() {
        #if os(Linux)
        _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
        #endif
    }

    public init(options: ServiceOptions.Resolved, settings: S.Settings, logger: Logger? = nil) async throws {
        Self.keepFreedMemory()
        var logger = logger ?? Logger(label: "persona.\(S.name)")
        logger.logLevel = options.logLevel
        let metrics = ServiceMetrics()
        let directory = try DataDirectory(path: options.dataDir)
        let context = ServiceContext(options: options, dataDirectory: directory, metrics: metrics, logger: logger)
        let service = try await S(context: context, settings: settings)
        self.service = service
        self.context = context

        var router = Router()
        let draining = self.draining
        let startedAt = self.startedAt
        router.register(HealthAPI.check) { _ in
            var response = HealthResponse()
            response.service = S.name
            response.status = draining.isSet ? .draining : .serving
            response.version = Self.version
            response.startedAtMs = Int64(startedAt.timeIntervalSince1970 * 1000)
            response.uptimeSeconds = Date().timeIntervalSince(startedAt)
            // This call itself is one of them.
            response.callsInFlight = UInt64(max(0, metrics.callsInFlight - 1))
            var checks = [("data_dir", directory.isWritable ? "writable" : "NOT WRITABLE")]
            checks += await service.healthChecks()
            response.checks = checks.map {
                var kv = KeyValue(); kv.key = $0.0; kv.value = $0.1; return kv
            }
            return response
        }
        service.register(in: &router)
        // Admin calls are written to the audit log before they are answered.
        try AuditLog(path: directory.file("audit.log"), service: S.name).install(in: &router, metrics: metrics)

        var rpcConfig = RPCServer.Config.defaults
        rpcConfig.host = options.host
        rpcConfig.port = options.port
        if let file = options.tokensFile {
            let tokens = try Self.readTokens(file)
            let policy = AccessPolicy(tokens: tokens)
            rpcConfig.access = policy
            access = (policy, file)
            // The calls this service makes carry its own token: PERSONA_SERVICE_TOKEN, else the file's first service token.
            let own =
                ProcessInfo.processInfo.environment["PERSONA_SERVICE_TOKEN"].map { Array($0.utf8) }
                ?? tokens.first { $0.role == .service }?.secret
            guard let own else {
                throw ServiceError(
                    "\(file) holds no service token, and PERSONA_SERVICE_TOKEN is not set: this service could not call the others")
            }
            ProcessCredential.set(own)
            logger.info("access control on", metadata: ["tokens": "\(tokens.count)", "file": "\(file)"])
        } else {
            access = nil
        }
        self.rpc = RPCServer(config: rpcConfig, router: router, observer: metrics, logger: logger)
        self.http = MetricsHTTPServer(
            host: options.host, port: options.metricsPort, metrics: { metrics.render() },
            health: {
                let ok = !draining.isSet && directory.isWritable
                let uptime = Int(Date().timeIntervalSince(startedAt))
                return (ok, #"{"service":"\#(S.name)","status":"\#(ok ? "serving" : "not_serving")","uptime_seconds":\#(uptime)}"#)
            },
            logger: logger)
    }

    /// Binds both ports; returns (rpc, metrics) ports. Separate from `run` so tests can
    /// bind port 0 and learn the ports.
    @discardableResult
    public func start() async throws -> (rpc: Int, metrics: Int) {
        let address = try await rpc.start()
        let metricsPort = try await http.start()
        context.logger.info(
            "\(S.name) started",
            metadata: [
                "rpc": "\(address)", "metrics": "\(metricsPort)", "data": "\(context.dataDirectory.path)",
                "huge_pages": "\(HugePages.inUse)",
            ])
        return (address.port!, metricsPort)
    }

    /// Runs until SIGTERM/SIGINT (when `handleSignals`) or until the task is cancelled or
    /// `shutdown()` is called, then drains and closes.
    public func run(handleSignals: Bool = true) async throws {
        try await start()
        let group = ServiceGroup(
            services: [HTTPService(host: self), RPCService(host: self), BackgroundService(host: self)],
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: context.logger)
        self.group.withLock { $0 = group }
        if draining.isSet { await group.triggerGracefulShutdown() }
        let tokens = Task { await followTokens() }
        defer { tokens.cancel() }
        try await withTaskCancellationHandler {
            try await group.run()
        } onCancel: {
            self.shutdown()
        }
        try await service.close()
        context.dataDirectory.unlock()
        context.logger.info("\(S.name) stopped")
    }

    /// Begins a graceful shutdown, as SIGTERM does.
    public func shutdown() {
        draining.set()
        // The group stops the services in reverse order: background work, RPC, metrics.
        if let group = group.withLock({ $0 }) {
            Task { await group.triggerGracefulShutdown() }
        }
    }

    struct RPCService: Service {
        let host: ServiceHost
        func run() async throws {
            try await withGracefulShutdownHandler {
                try await withTaskCancellationHandler {
                    try await host.rpc.run()
                } onCancel: {
                    host.rpc.beginGracefulShutdown()
                }
            } onGracefulShutdown: {
                host.draining.set()
                host.rpc.beginGracefulShutdown()
            }
        }
    }

    struct HTTPService: Service {
        let host: ServiceHost
        func run() async throws {
            // First in the group, so shut down last: the metrics endpoint stays up while RPC
            // drains.
            try await withGracefulShutdownHandler {
                try await withTaskCancellationHandler {
                    try await host.http.run()
                } onCancel: {
                    host.http.stop()
                }
            } onGracefulShutdown: {
                host.http.stop()
            }
        }
    }

    struct BackgroundService: Service {
        let host: ServiceHost
        func run() async throws {
            do {
                try await cancelWhenGracefulShutdown {
                    try await host.service.runBackground()
                    // Nothing in the background: stay until shutdown so the group keeps running.
                    try await gracefulShutdown()
                }
            } catch is CancellationError {
                // Background work stops by cancellation when the service shuts down.
            }
        }
    }
}

extension ServiceHost {
    /// Entry point for a service executable: resolve options, run, exit 0 after a graceful stop.
    public static func main(options: ServiceOptions, settings: S.Settings) async throws {
        HugePages.adoptForHeap()
        let resolved = try options.resolve(service: S.name, defaultPort: S.defaultPort, defaultMetricsPort: S.defaultMetricsPort)
        // Log lines written while serving a call name its request id (carried across services).
        LoggingSystem.bootstrap(
            { label, provider in
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
                handler.logLevel = resolved.logLevel
                return handler
            }, metadataProvider: .requestID)
        let host = try await ServiceHost(options: resolved, settings: settings)
        try await host.run()
    }
}

extension ServiceHost where S.Settings == NoSettings {
    public convenience init(options: ServiceOptions.Resolved, logger: Logger? = nil) async throws {
        try await self.init(options: options, settings: NoSettings(), logger: logger)
    }

    public static func main(options: ServiceOptions) async throws {
        try await main(options: options, settings: NoSettings())
    }
}

/// A one-way flag shared between tasks.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
