import Logging
public import RPC
public import ServiceKit

/// The ingest service: owns the durable event log; producers append batches, consumers read by offset.
///
/// This release serves Health and metrics; its API (see `IngestAPI` in Shared/RPC/Methods.swift
/// and Shared/Schema/persona/v1) is implemented by the issues that build on the foundation.
public struct IngestService: PersonaService {
    public static let name = "ingest"
    public static let defaultPort = 7101
    public static let defaultMetricsPort = 9101

    let context: ServiceContext

    public init(context: ServiceContext) async throws {
        self.context = context
    }

    public func register(in router: inout Router) {}
}
