public import ArgumentParser
import Foundation
public import Logging

/// The flags every service executable takes. Each falls back to an environment variable of
/// the same name (`--metrics-port` → `PERSONA_METRICS_PORT`), then to the service's default,
/// so compose.yaml and the command line speak the same names.
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(help: "Address to bind (env PERSONA_HOST, default 127.0.0.1).")
    public var host: String?

    @Option(help: "RPC port (env PERSONA_PORT, default: the service's own, 7101-7105).")
    public var port: Int?

    @Option(help: "Metrics and health HTTP port (env PERSONA_METRICS_PORT, default 9101-9105).")
    public var metricsPort: Int?

    @Option(help: "Directory for this service's state (env PERSONA_DATA_DIR, default ./data/<service>).")
    public var dataDir: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env PERSONA_LOG_LEVEL, default info).")
    public var logLevel: String?

    @Option(
        help:
            """
            Tokens file (ROLE ID SECRET a line): every call but Health needs a token of a role its method allows; \
            re-read when it changes. Without one, calls are not checked (env PERSONA_TOKENS_FILE).
            """
    )
    public var tokensFile: String?

    public init() {}

    /// The options with flags, environment and defaults resolved.
    public struct Resolved: Sendable {
        public var host: String
        public var port: Int
        public var metricsPort: Int
        public var dataDir: String
        public var logLevel: Logger.Level
        public var tokensFile: String?

        public init(host: String, port: Int, metricsPort: Int, dataDir: String, logLevel: Logger.Level, tokensFile: String? = nil) {
            self.host = host
            self.port = port
            self.metricsPort = metricsPort
            self.dataDir = dataDir
            self.logLevel = logLevel
            self.tokensFile = tokensFile
        }
    }

    public func resolve(service: String, defaultPort: Int, defaultMetricsPort: Int, environment: [String: String]? = nil) throws -> Resolved
    {
        let environment = environment ?? ProcessInfo.processInfo.environment
        func int(_ flag: Int?, _ name: String, _ fallback: Int) throws -> Int {
            if let flag { return flag }
            guard let text = environment[name] else { return fallback }
            guard let value = Int(text), (0...65535).contains(value) else {
                throw ValidationError("\(name)=\(text) is not a port number")
            }
            return value
        }
        let levelText = logLevel ?? environment["PERSONA_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ValidationError("unknown log level \(levelText)")
        }
        return Resolved(
            host: host ?? environment["PERSONA_HOST"] ?? "127.0.0.1",
            port: try int(port, "PERSONA_PORT", defaultPort),
            metricsPort: try int(metricsPort, "PERSONA_METRICS_PORT", defaultMetricsPort),
            dataDir: dataDir ?? environment["PERSONA_DATA_DIR"] ?? "data/\(service)",
            logLevel: level, tokensFile: tokensFile ?? environment["PERSONA_TOKENS_FILE"].flatMap { $0.isEmpty ? nil : $0 })
    }
}

/// `host:port` as the flags and `PERSONA_*_ADDR` variables spell a service's address; nil
/// when the text is not one (the port must be 1...65535).
/// Every address of a comma-separated list, or nil when one of them is not host:port.
public func parseAddresses(_ text: String) -> [(host: String, port: Int)]? {
    let list = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let parsed = list.compactMap(parseAddress)
    return !list.isEmpty && parsed.count == list.count ? parsed : nil
}

public func parseAddress(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
        return nil
    }
    return (String(text[..<colon]), port)
}
