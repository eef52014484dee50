public import Logging
public import RPC

/// What a service library provides to be hosted: its name and ports, the RPC methods it
/// serves, and optional background work. `ServiceHost` does the rest (Health, metrics,
/// signals, graceful shutdown).
public protocol PersonaService: Sendable {
    /// Which of the five it is: its name and default ports.
    static var peer: Peer { get }

    /// The service's own settings (beyond the common flags), parsed by its executable.
    associatedtype Settings: Sendable = NoSettings

    /// Opens the service's state in `context.dataDirectory`.
    init(context: ServiceContext, settings: Settings) async throws

    /// Registers the service's RPC methods (Health is registered by the host).
    func register(in router: inout Router)

    /// Background work (consumers, schedulers). Returns when the task is cancelled or the
    /// host asks for a graceful shutdown. The default does nothing.
    func runBackground() async throws

    /// Flushes and closes the service's state after the RPC server stopped.
    func close() async throws

    /// Extra lines for the Health response (`key` → `value`), e.g. the consumed offset.
    func healthChecks() async -> [(String, String)]
}

extension PersonaService {
    /// `ingest`, `feature`, `model`, `risk-control` or `recommend`.
    public static var name: String { peer.rawValue }
    public static var defaultPort: Int { peer.defaultPort }
    public static var defaultMetricsPort: Int { peer.defaultMetricsPort }

    public func runBackground() async throws {}
    public func close() async throws {}
    public func healthChecks() async -> [(String, String)] { [] }
}

/// What a service gets from its host.
public struct ServiceContext: Sendable {
    public var options: ServiceOptions.Resolved
    public var dataDirectory: DataDirectory
    public var metrics: ServiceMetrics
    public var logger: Logger
    /// The wall clock the service stamps times with.
    public var clock: WallClock

    public init(
        options: ServiceOptions.Resolved, dataDirectory: DataDirectory, metrics: ServiceMetrics, logger: Logger, clock: WallClock = .system
    ) {
        self.options = options
        self.dataDirectory = dataDirectory
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
    }
}

/// A service cannot start or go on: its configuration, or the data it finds, is not what it
/// needs. The description says what to change.
public struct ServiceError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Settings of a service that has none beyond the common flags.
public struct NoSettings: Sendable {
    public init() {}
}
