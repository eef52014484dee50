import Logging
public import RPC
public import ServiceKit

/// The feature service: folds the event log into user profiles, item profiles and risk features.
///
/// This release serves Health and metrics; its API (see `FeatureAPI` in Shared/RPC/Methods.swift
/// and Shared/Schema/persona/v1) is implemented by the issues that build on the foundation.
public struct FeatureService: PersonaService {
    public static let name = "feature"
    public static let defaultPort = 7102
    public static let defaultMetricsPort = 9102

    let context: ServiceContext

    public init(context: ServiceContext, settings: NoSettings) async throws {
        self.context = context
    }

    public func register(in router: inout Router) {}
}
