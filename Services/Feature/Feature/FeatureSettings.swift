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

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> FeatureSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = FeatureSettings(try consumer.resolve(service: "feature", environment: env))
        if let (host, port) = try Peer.model.address(flag: model, environment: env) {
            s.modelHost = host
            s.modelPort = port
        }
        return s
    }
}
