public import ArgumentParser
import Foundation

/// Settings of a service that folds the log (feature, model) beyond the common flags. Each
/// flag falls back to the environment variable named in its help, then to its default.
public struct ConsumerOptions: ParsableArguments, Sendable {
    @Option(help: Peer.ingest.help("whose log is folded"))
    public var ingest: String?

    @Option(help: "Seconds between snapshots of the state (env PERSONA_SNAPSHOT_SECONDS, default 10).")
    public var snapshotSeconds: Int?

    @Option(help: "Most events per read from a partition (env PERSONA_FEATURE_READ_EVENTS or PERSONA_MODEL_READ_EVENTS, default 5000).")
    public var readEvents: Int?

    public init() {}

    /// `service`: whose read-events variable applies (`PERSONA_<SERVICE>_READ_EVENTS`).
    public func resolve(service: String, environment: [String: String]? = nil) throws -> ConsumerSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = ConsumerSettings()
        if let (host, port) = try Peer.ingest.address(flag: ingest, environment: env) {
            s.ingestHost = host
            s.ingestPort = port
        }
        if let text = snapshotSeconds.map(String.init) ?? env["PERSONA_SNAPSHOT_SECONDS"] {
            guard let seconds = Int(text), seconds > 0 else { throw ValidationError("snapshot seconds '\(text)' is not a positive number") }
            s.snapshotInterval = .seconds(seconds)
        }
        if let text = readEvents.map(String.init) ?? env["PERSONA_\(service.uppercased())_READ_EVENTS"] {
            guard let n = Int(text), (1...10_000).contains(n) else { throw ValidationError("read events '\(text)' is not 1...10000") }
            s.readEvents = n
        }
        return s
    }
}

/// Resolved consumer settings, with defaults.
public struct ConsumerSettings: Sendable {
    public var ingestHost = "127.0.0.1"
    public var ingestPort = Peer.ingest.defaultPort
    /// Time between snapshots; longer when encoding one takes more than a tenth of it
    /// (folding waits while a snapshot is encoded).
    public var snapshotInterval: Duration = .seconds(10)
    public var readEvents = 5000
    /// How long one read waits for new events (long poll).
    public var readWait: Duration = .milliseconds(500)

    public init() {}
}
