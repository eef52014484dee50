import Logging
public import RPC
public import ServiceKit

/// The recommend service: serves recommendations, similar and popular items.
///
/// This release serves Health and metrics; its API (see `RecommendAPI` in Shared/RPC/Methods.swift
/// and Shared/Schema/persona/v1) is implemented by the issues that build on the foundation.
public struct RecommendService: PersonaService {
    public static let name = "recommend"
    public static let defaultPort = 7105
    public static let defaultMetricsPort = 9105

    let context: ServiceContext

    public init(context: ServiceContext, settings: NoSettings) async throws {
        self.context = context
    }

    public func register(in router: inout Router) {}
}
