public import ArgumentParser
public import EventLog
import Foundation
public import PersonalData
public import ServiceKit

/// Settings of the risk-control service beyond the common flags.
public struct RiskOptions: ParsableArguments, Sendable {
    @Option(help: Peer.feature.help("where the features of a request are read"))
    public var feature: String?

    @Option(help: Peer.model.help("whose published fraud model is scored with"))
    public var model: String?

    @Option(help: Peer.ingest.help("where labels go"))
    public var ingest: String?

    @Option(help: "Name of the published fraud model to score with (env PERSONA_RISK_MODEL, default fraud).")
    public var modelName: String?

    @Option(help: "Score (0-1000) from which a decision is review (env PERSONA_RISK_REVIEW_THRESHOLD, default 500).")
    public var reviewThreshold: Int?

    @Option(
        help: "Score from which a decision is decline; at least the review threshold (env PERSONA_RISK_DECLINE_THRESHOLD, default 800).")
    public var declineThreshold: Int?

    @Option(
        help: "When the features cannot be read in time: open (allow) or closed (decline) (env PERSONA_RISK_FAILURE_POLICY, default open).")
    public var failurePolicy: String?

    @Option(
        help:
            """
            Longest wait for the features in milliseconds, never past half the caller's deadline (env \
            PERSONA_FEATURE_TIMEOUT_MS, default 50).
            """
    )
    public var featureTimeoutMs: Int?

    @Option(help: "A rule file to publish at start and again whenever it changes (env PERSONA_RISK_RULES).")
    public var rules: String?

    @Option(help: "The key ingest pseudonymises with (env PERSONA_PSEUDONYM_KEY holds the key itself; default <data dir>/pseudonym.key).")
    public var pseudonymKeyFile: String?

    @Option(help: "IPv4-to-country CSV for requests that carry an IP but no country (env PERSONA_IP_COUNTRY_FILE).")
    public var ipCountryFile: String?

    @Option(help: "How many features, the strongest first, a decision names as its model reasons (env PERSONA_RISK_REASONS, default 3).")
    public var reasons: Int?

    @Option(
        help:
            """
            Which decisions get the model's reasons (TreeSHAP): flagged (review, challenge, decline) or all (env \
            PERSONA_RISK_EXPLAIN, default flagged).
            """
    )
    public var explain: String?

    /// The decision log (a JetStream log is the stream persona-decisions).
    @OptionGroup public var decisionLog: LogOptions

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> RiskSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = RiskSettings()
        try s.resolveFeature(flag: feature, environment: env)
        if let (host, port) = try Peer.model.address(flag: model, environment: env) {
            (s.modelHost, s.modelPort) = (host, port)
        }
        if let (host, port) = try Peer.ingest.address(flag: ingest, environment: env) {
            (s.ingestHost, s.ingestPort) = (host, port)
        }
        if let name = modelName ?? env["PERSONA_RISK_MODEL"], !name.isEmpty { s.modelName = name }
        func threshold(_ flag: Int?, _ variable: String) throws -> Int? {
            guard let text = flag.map(String.init) ?? env[variable] else { return nil }
            guard let v = Int(text), (0...1000).contains(v) else { throw ValidationError("\(variable) '\(text)' is not a score 0...1000") }
            return v
        }
        s.reviewThreshold = try threshold(reviewThreshold, "PERSONA_RISK_REVIEW_THRESHOLD") ?? s.reviewThreshold
        s.declineThreshold = try threshold(declineThreshold, "PERSONA_RISK_DECLINE_THRESHOLD") ?? s.declineThreshold
        guard s.reviewThreshold <= s.declineThreshold else {
            throw ValidationError("the review threshold (\(s.reviewThreshold)) is above the decline threshold (\(s.declineThreshold))")
        }
        if let text = failurePolicy ?? env["PERSONA_RISK_FAILURE_POLICY"] {
            guard let p = RiskSettings.FailurePolicy(rawValue: text) else {
                throw ValidationError("failure policy '\(text)' is not open or closed")
            }
            s.failurePolicy = p
        }
        if let text = featureTimeoutMs.map(String.init) ?? env["PERSONA_FEATURE_TIMEOUT_MS"] {
            guard let ms = Int(text), ms > 0 else {
                throw ValidationError("feature timeout '\(text)' is not a positive number of milliseconds")
            }
            s.featureTimeout = .milliseconds(ms)
        }
        if let path = rules ?? env["PERSONA_RISK_RULES"], !path.isEmpty { s.rulesFile = path }
        s.pseudonymKeyFile = pseudonymKeyFile ?? env["PERSONA_PSEUDONYM_KEY_FILE"]
        if let path = ipCountryFile ?? env["PERSONA_IP_COUNTRY_FILE"], !path.isEmpty {
            s.ipCountries = try IPCountryTable(contentsOf: path)
        }
        if let text = reasons.map(String.init) ?? env["PERSONA_RISK_REASONS"] {
            guard let n = Int(text), (0...20).contains(n) else { throw ValidationError("reasons '\(text)' is not 0...20") }
            s.modelReasons = n
        }
        if let text = explain ?? env["PERSONA_RISK_EXPLAIN"] {
            guard let e = RiskSettings.Explain(rawValue: text) else { throw ValidationError("explain '\(text)' is not flagged or all") }
            s.explain = e
        }
        (s.log, s.logReplicas) = try decisionLog.resolve(environment: env)
        return s
    }
}

public struct RiskSettings: Sendable, FeatureCaller {
    /// The engine of the decision log: the file log in the data directory, or a JetStream stream.
    public var log = LogChoice.file
    public var logReplicas = 3
    public enum FailurePolicy: String, Sendable {
        /// Allow (rules over the request's own fields and the lists still apply).
        case open
        /// Decline (an allow-listed request is still allowed).
        case closed
    }

    public enum Explain: String, Sendable {
        /// Reviews, challenges and declines (and requests that ask).
        case flagged
        case all
    }

    public var featureHost = "127.0.0.1"
    public var featurePort = Peer.feature.defaultPort
    public var moreFeatureReplicas: [(host: String, port: Int)] = []
    public var modelHost = "127.0.0.1"
    public var modelPort = Peer.model.defaultPort
    public var ingestHost = "127.0.0.1"
    public var ingestPort = Peer.ingest.defaultPort
    public var modelName = "fraud"
    public var reviewThreshold = 500
    public var declineThreshold = 800
    public var failurePolicy = FailurePolicy.open
    public var featureTimeout: Duration = .milliseconds(50)
    public var rulesFile: String?
    public var pseudonymKeyFile: String?
    public var ipCountries: IPCountryTable?
    public var modelReasons = 3
    public var explain = Explain.flagged

    public init() {}
}
