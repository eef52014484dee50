public import ArgumentParser
import Foundation

/// The five services as their peers and the CLI reach them: name, default ports, and the
/// environment variable that holds an address (`PERSONA_FEATURE_ADDR`). The one place the
/// default ports are written (docs/PROTOCOL.md lists them).
public enum Peer: String, CaseIterable, Sendable {
    case ingest
    case feature
    case model
    case riskControl = "risk-control"
    case recommend

    /// The RPC port: 7101 to 7105 in the order above.
    public var defaultPort: Int { 7101 + Self.allCases.firstIndex(of: self)! }

    /// The metrics and health HTTP port: 9101 to 9105.
    public var defaultMetricsPort: Int { defaultPort + 2000 }

    /// The variable holding the peer's address, host:port.
    public var variable: String { "PERSONA_\(rawValue.uppercased().replacingOccurrences(of: "-", with: "_"))_ADDR" }

    /// The flag's help: what the peer is for, where the address comes from, and its default.
    public func help(_ purpose: String) -> ArgumentHelp {
        // Callers of feature name every replica: a user's calls go to the one serving their partition.
        let form = self == .feature ? "host:port[,host:port...] (every replica)" : "host:port"
        return ArgumentHelp("\(rawValue) address \(form), \(purpose) (env \(variable), default 127.0.0.1:\(defaultPort)).")
    }

    /// The address from the flag, else the variable; nil when neither is set.
    public func address(flag: String?, environment: [String: String]) throws -> (host: String, port: Int)? {
        guard let text = flag ?? environment[variable] else { return nil }
        guard let address = parseAddress(text) else { throw ValidationError("\(rawValue) address '\(text)' is not host:port") }
        return address
    }

    /// Every address of a comma-separated list from the flag, else the variable (the feature
    /// service's replicas); nil when neither is set.
    public func addresses(flag: String?, environment: [String: String]) throws -> [(host: String, port: Int)]? {
        guard let text = flag ?? environment[variable] else { return nil }
        guard let parsed = parseAddresses(text) else {
            throw ValidationError("\(rawValue) addresses '\(text)' are not host:port[,host:port...]")
        }
        return parsed
    }

    /// The address from the flag, else the variable, else 127.0.0.1 and the default port.
    public func resolve(flag: String?, environment: [String: String]) throws -> (host: String, port: Int) {
        try address(flag: flag, environment: environment) ?? ("127.0.0.1", defaultPort)
    }
}
