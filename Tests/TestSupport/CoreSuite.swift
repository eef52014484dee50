public import Feature
public import Ingest
public import Model
import ServiceKit

/// In-process ingest, feature and model services on free ports, wired to each other as a
/// suite runs them (feature and model fold the log; model reads the feature service's rows,
/// feature follows the model service's published segments), stopped after `body`.
public func withCoreSuite<R>(
    ingest ingestSettings: IngestSettings = IngestSettings(),
    model configure: (inout ModelSettings) -> Void = { _ in },
    _ body: (_ ingest: HostedService<IngestService>, _ feature: HostedService<FeatureService>, _ model: HostedService<ModelService>)
        async throws -> R
) async throws -> R {
    try await withHostedService(IngestService.self, settings: ingestSettings) { ingest in
        var consumer = ConsumerSettings()
        consumer.ingestPort = ingest.rpcPort
        consumer.readWait = .milliseconds(200)
        let modelPort = freePort()
        var featureSettings = FeatureSettings(consumer)
        featureSettings.modelPort = modelPort
        return try await withHostedService(FeatureService.self, settings: featureSettings) { feature in
            var settings = ModelSettings(consumer)
            settings.featurePort = feature.rpcPort
            configure(&settings)
            return try await withHostedService(ModelService.self, settings: settings, port: modelPort) { model in
                try await body(ingest, feature, model)
            }
        }
    }
}
