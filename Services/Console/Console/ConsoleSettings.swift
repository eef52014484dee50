public import ArgumentParser
public import Foundation
public import Logging
public import ServiceKit

/// `persona-console`'s flags, each with an environment variable as the services' have.
public struct ConsoleOptions: ParsableArguments, Sendable {
    @Option(help: "Address to bind (env PERSONA_HOST, default 127.0.0.1).")
    public var host: String?

    @Option(help: "HTTP port of the console (env PERSONA_PORT, default 7106).")
    public var port: Int?

    @Option(help: "Directory for the console's people and sessions (env PERSONA_DATA_DIR, default ./data/console).")
    public var dataDir: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env PERSONA_LOG_LEVEL, default info).")
    public var logLevel: String?

    @Option(help: "Tokens file whose admin token the console presents to the services (env PERSONA_TOKENS_FILE).")
    public var tokensFile: String?

    @Option(name: .customLong("risk-control"), help: Peer.riskControl.help("decisions, labels, rules and lists"))
    public var riskControl: String?

    @Option(name: .customLong("model"), help: Peer.model.help("the served fraud model's metrics"))
    public var model: String?

    @Flag(help: "Mark the session cookie Secure: set it when a TLS proxy serves the console (env PERSONA_CONSOLE_SECURE_COOKIES=1).")
    public var secureCookies = false

    @Flag(help: "Four-eyes: a rules publish waits until a second person approves it (env PERSONA_CONSOLE_FOUR_EYES=1).")
    public var fourEyes = false

    @Option(help: .hidden)
    public var bcryptCost: UInt8?

    public init() {}

    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConsoleSettings {
        var s = ConsoleSettings(dataDir: dataDir ?? environment["PERSONA_DATA_DIR"] ?? "data/console")
        s.host = host ?? environment["PERSONA_HOST"] ?? "127.0.0.1"
        if let p = port ?? environment["PERSONA_PORT"].flatMap({ Int($0) }) {
            guard (0...65535).contains(p) else { throw ValidationError("port \(p) is not 0...65535") }
            s.port = p
        } else if environment["PERSONA_PORT"] != nil {
            throw ValidationError("PERSONA_PORT=\(environment["PERSONA_PORT"]!) is not a port number")
        }
        let levelText = logLevel ?? environment["PERSONA_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else { throw ValidationError("unknown log level \(levelText)") }
        s.logLevel = level
        s.tokensFile = tokensFile ?? environment["PERSONA_TOKENS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        (s.riskHost, s.riskPort) = try Peer.riskControl.resolve(flag: riskControl, environment: environment)
        (s.modelHost, s.modelPort) = try Peer.model.resolve(flag: model, environment: environment)
        // The other services' addresses (the merged audit log): PERSONA_INGEST_ADDR and the like.
        for peer in [Peer.ingest, .feature, .recommend] {
            let address =
                try Peer.feature == peer
                ? (peer.addresses(flag: nil, environment: environment)?.first ?? ("127.0.0.1", peer.defaultPort))
                : peer.resolve(flag: nil, environment: environment)
            s.otherPeers[peer] = (address.host, address.port)
        }
        s.secureCookies = secureCookies || environment["PERSONA_CONSOLE_SECURE_COOKIES"] == "1"
        s.fourEyes = fourEyes || environment["PERSONA_CONSOLE_FOUR_EYES"] == "1"
        if let cost = bcryptCost {
            guard (4...31).contains(cost) else { throw ValidationError("bcrypt cost must be 4...31") }
            s.bcryptCost = cost
        }
        return s
    }
}

/// Where the console listens, what it keeps, and whom it asks.
public struct ConsoleSettings: Sendable {
    public static let defaultPort = 7106

    public var host: String
    public var port: Int
    public var dataDir: String
    public var logLevel: Logger.Level = .info
    /// The tokens file whose admin token the console presents to the services.
    public var tokensFile: String?
    public var riskHost = "127.0.0.1"
    public var riskPort = Peer.riskControl.defaultPort
    public var modelHost = "127.0.0.1"
    public var modelPort = Peer.model.defaultPort
    /// Ingest, feature (its first replica) and recommend, whose audit logs the console merges.
    public var otherPeers: [Peer: (host: String, port: Int)] = [:]

    /// Every service with its address, in the order of `Peer`.
    var peers: [(Peer, (host: String, port: Int))] {
        Peer.allCases.map { peer in
            switch peer {
            case .riskControl: (peer, (riskHost, riskPort))
            case .model: (peer, (modelHost, modelPort))
            default: (peer, otherPeers[peer] ?? ("127.0.0.1", peer.defaultPort))
            }
        }
    }
    public var secureCookies = false
    /// A rules publish waits for a second person's approval.
    public var fourEyes = false
    public var bcryptCost: UInt8 = 12

    public init(host: String = "127.0.0.1", port: Int = ConsoleSettings.defaultPort, dataDir: String) {
        self.host = host
        self.port = port
        self.dataDir = dataDir
    }
}
