import Logging
public import RPC
public import ServiceKit

/// The model service: trains, versions, evaluates and publishes models.
///
/// This release serves Health and metrics; its API (see `ModelAPI` in Shared/RPC/Methods.swift
/// and Shared/Schema/persona/v1) is implemented by the issues that build on the foundation.
public struct ModelService: PersonaService {
    public static let name = "model"
    public static let defaultPort = 7103
    public static let defaultMetricsPort = 9103

    let context: ServiceContext

    public init(context: ServiceContext, settings: NoSettings) async throws {
        self.context = context
    }

    public func register(in router: inout Router) {}
}
