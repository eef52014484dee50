public import ArgumentParser
import Foundation
import Logging
public import RPC
import Recommenders
public import ServiceKit

/// The recommend service: serves recommendations, similar and popular items.
///
/// It follows the model service's published recommenders (WatchModels, then GetModel in
/// chunks) and holds each one's current version in memory, swapped in whole without a
/// restart; Health names the versions it holds. Its own RPC methods (`RecommendAPI`) are
/// built on these by the recommend issue.
public struct RecommendService: PersonaService {
    public static let name = "recommend"
    public static let defaultPort = 7105
    public static let defaultMetricsPort = 9105

    let context: ServiceContext
    let models: PublishedModels
    let client: RPCClient

    public init(context: ServiceContext, settings: RecommendSettings) async throws {
        self.context = context
        var config = RPCClient.Config.defaults(host: settings.modelHost, port: settings.modelPort)
        config.defaultTimeout = .seconds(30)
        client = RPCClient(config: config)
        let metrics = context.metrics
        models = PublishedModels(client: client, logger: context.logger) { loaded in
            metrics.gauge("persona_recommend_model_version", labels: [("model", loaded.info.name)], help: "Version of each model held").set(Int64(loaded.info.version))
        }
    }

    public func register(in router: inout Router) {}

    public func runBackground() async throws {
        try await models.follow()
    }

    public func close() async throws {
        await client.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        [("models", models.versions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))]
    }
}

/// Settings of the recommend service beyond the common flags.
public struct RecommendOptions: ParsableArguments, Sendable {
    @Option(help: "Model service address host:port (env PERSONA_MODEL_ADDR, default 127.0.0.1:7103).")
    public var model: String?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> RecommendSettings {
        var s = RecommendSettings()
        if let address = model ?? (environment ?? ProcessInfo.processInfo.environment)["PERSONA_MODEL_ADDR"] {
            guard let (host, port) = parseAddress(address) else { throw ValidationError("model address '\(address)' is not host:port") }
            s.modelHost = host
            s.modelPort = port
        }
        return s
    }
}

public struct RecommendSettings: Sendable {
    public var modelHost = "127.0.0.1"
    public var modelPort = 7103
    public init() {}
}
