public import ArgumentParser
import Foundation
public import ServiceKit

/// Settings of the model service beyond the common flags: the log it folds, and the feature
/// service the classifiers' training rows come from.
public struct ModelSettings: Sendable, FeatureCaller {
    public var consumer: ConsumerSettings
    public var featureHost = "127.0.0.1"
    public var featurePort = Peer.feature.defaultPort
    public var moreFeatureReplicas: [(host: String, port: Int)] = []
    var online = OnlineLearner.Settings()

    public init(_ consumer: ConsumerSettings = .init()) { self.consumer = consumer }

    /// The online fraud model's name (empty: none), and how often it publishes.
    public mutating func online(name: String, everyLabels: Int = 100, every: Duration = .seconds(300)) {
        online.name = name
        online.everyLabels = everyLabels
        online.every = every
    }
}

public struct ModelOptions: ParsableArguments, Sendable {
    @OptionGroup public var consumer: ConsumerOptions

    @Option(help: Peer.feature.help("where classifiers' labelled rows come from"))
    public var feature: String?

    @Option(
        help:
            """
            Name of the online fraud model (FTRL-Proximal, learning from label events as they arrive); 'off' for \
            none (env PERSONA_ONLINE_MODEL, default fraud_online).
            """
    )
    public var onlineModel: String?

    @Option(help: "The online model publishes a new version after this many new labels (env PERSONA_ONLINE_EVERY_LABELS, default 100)...")
    public var onlineEveryLabels: Int?

    @Option(help: "...or this many seconds after the first new label (env PERSONA_ONLINE_EVERY_SECONDS, default 300).")
    public var onlineEverySeconds: Double?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> ModelSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = ModelSettings(try consumer.resolve(service: "model", environment: env))
        try s.resolveFeature(flag: feature, environment: env)
        let name = onlineModel ?? env["PERSONA_ONLINE_MODEL"] ?? "fraud_online"
        let labels = onlineEveryLabels ?? env["PERSONA_ONLINE_EVERY_LABELS"].flatMap { Int($0) } ?? 100
        let seconds = onlineEverySeconds ?? env["PERSONA_ONLINE_EVERY_SECONDS"].flatMap { Double($0) } ?? 300
        guard labels >= 1, seconds > 0 else {
            throw ValidationError("the online model publishes after at least 1 label and a positive number of seconds")
        }
        s.online(name: name == "off" ? "" : name, everyLabels: labels, every: .milliseconds(Int64(seconds * 1000)))
        return s
    }
}
