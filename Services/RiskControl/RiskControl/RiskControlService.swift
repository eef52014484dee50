import Logging
public import RPC
public import ServiceKit

/// The risk-control service: scores orders, records every decision, takes labels, rules and lists.
///
/// This release serves Health and metrics; its API (see `RiskAPI` in Shared/RPC/Methods.swift
/// and Shared/Schema/persona/v1) is implemented by the issues that build on the foundation.
public struct RiskControlService: PersonaService {
    public static let name = "risk-control"
    public static let defaultPort = 7104
    public static let defaultMetricsPort = 9104

    let context: ServiceContext

    public init(context: ServiceContext, settings: NoSettings) async throws {
        self.context = context
    }

    public func register(in router: inout Router) {}
}
