public import ArgumentParser
import Foundation
public import ServiceKit

/// The feature service's settings: where the log is and how it is read and snapshotted
/// (`consumer`, whose fields read as the settings' own), and the model service whose
/// published segments give each profile its segment.
@dynamicMemberLookup
public struct FeatureSettings: Sendable {
    public var consumer: ConsumerSettings
    public var modelHost = "127.0.0.1"
    public var modelPort = Peer.model.defaultPort
    /// The partitions whose users this replica holds and serves (nil: every partition).
    public var partitions: Set<Int>?
    /// The other feature replicas, watched to take over the partitions of one that stops answering.
    public var peers: [(host: String, port: Int)] = []
    /// How long a partition goes unserved (its replica not answering) before a peer takes it over.
    public var takeoverAfter: Duration = .seconds(3)
    /// How often every audience's size is measured and kept (its history is hourly).
    public var audienceMeasureEvery: Duration = .seconds(3600)

    public init(_ consumer: ConsumerSettings = .init()) { self.consumer = consumer }

    public subscript<T>(dynamicMember path: WritableKeyPath<ConsumerSettings, T>) -> T {
        get { consumer[keyPath: path] }
        set { consumer[keyPath: path] = newValue }
    }
}

public struct FeatureOptions: ParsableArguments, Sendable {
    @OptionGroup public var consumer: ConsumerOptions

    @Option(help: Peer.model.help("whose published segments the profiles carry"))
    public var model: String?

    @Option(
        help: """
            The partitions whose users this replica serves, as 0-3 or 0,2,4 (env PERSONA_FEATURE_PARTITIONS, default every \
            partition: one replica).
            """)
    public var partitions: String?

    @Option(
        help: """
            The other feature replicas, host:port[,host:port...]: when one stops answering, the replica with the lowest \
            partition takes its partitions over (env PERSONA_FEATURE_PEERS, default none).
            """)
    public var peers: String?

    @Option(help: "Seconds a partition goes unserved before a peer takes it over (env PERSONA_TAKEOVER_SECONDS, default 3).")
    public var takeoverSeconds: Int?

    @Option(help: "Seconds between measures of every audience's size (env PERSONA_AUDIENCE_MEASURE_SECONDS, default 3600).")
    public var audienceMeasureSeconds: Int?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> FeatureSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = FeatureSettings(try consumer.resolve(service: "feature", environment: env))
        if let (host, port) = try Peer.model.address(flag: model, environment: env) {
            s.modelHost = host
            s.modelPort = port
        }
        if let text = partitions ?? env["PERSONA_FEATURE_PARTITIONS"] {
            guard let set = PartitionSet.parse(text), !set.isEmpty else {
                throw ValidationError("partitions '\(text)' are not a list like 0-3 or 0,2,4")
            }
            s.partitions = set
        }
        if let text = peers ?? env["PERSONA_FEATURE_PEERS"], !text.isEmpty {
            guard let list = parseAddresses(text) else { throw ValidationError("peers '\(text)' are not host:port[,host:port...]") }
            s.peers = list
        }
        if let text = takeoverSeconds.map(String.init) ?? env["PERSONA_TAKEOVER_SECONDS"] {
            guard let n = Int(text), (1...3600).contains(n) else { throw ValidationError("takeover seconds '\(text)' is not 1...3600") }
            s.takeoverAfter = .seconds(n)
        }
        if let text = audienceMeasureSeconds.map(String.init) ?? env["PERSONA_AUDIENCE_MEASURE_SECONDS"] {
            guard let n = Int(text), (1...86_400).contains(n) else {
                throw ValidationError("audience measure seconds '\(text)' is not 1...86400")
            }
            s.audienceMeasureEvery = .seconds(n)
        }
        return s
    }
}
