public import ArgumentParser

/// `--log` and `--log-replicas`, the same for each service that keeps a log: ingest its
/// events, risk-control its decisions.
public struct LogOptions: ParsableArguments, Sendable {
    @Option(
        help: """
            Where the log lives (env PERSONA_LOG): 'file' (default, in the data directory) or \
            nats://host:port[,host:port...] (a NATS JetStream stream).
            """)
    public var log: String?

    @Option(help: "Copies of every record on a JetStream log (env PERSONA_LOG_REPLICAS, default 3; 1, 3 or 5).")
    public var logReplicas: Int?

    public init() {}

    /// The engine and its replica count, from the flags, else the environment.
    public func resolve(environment env: [String: String]) throws -> (choice: LogChoice, replicas: Int) {
        let choice: LogChoice
        do { choice = try LogChoice(parsing: log ?? env["PERSONA_LOG"] ?? "file") } catch { throw ValidationError("\(error)") }
        let text = logReplicas.map(String.init) ?? env["PERSONA_LOG_REPLICAS"] ?? "3"
        guard let replicas = Int(text), [1, 3, 5].contains(replicas) else {
            throw ValidationError("log replicas '\(text)' is not 1, 3 or 5")
        }
        return (choice, replicas)
    }
}
