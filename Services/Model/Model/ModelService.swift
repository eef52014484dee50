import ArgumentParser
import Classifiers
import Foundation
import Logging
public import RPC
import Recommenders
public import ServiceKit
import Store
import Uplift
import Wire

/// The model service: folds the log into its own interaction store, trains recommenders
/// as jobs, keeps every version in a registry with its evaluation report, and publishes
/// versions that other services watch for (WatchModels) and fetch in chunks (GetModel).
public struct ModelService: PersonaService {
    public static let peer = Peer.model

    public typealias Settings = ModelSettings

    let context: ServiceContext
    let metrics: ModelMetrics
    let settings: ConsumerSettings
    /// The feature service: labelled training rows for the classifiers (ExportTraining).
    let feature: FeatureReplicas
    let table: InteractionTable
    let registry: Registry
    let jobs: JobBoard
    let consumer: LogConsumer
    let snapshotPath: String
    /// The online fraud model, learning from labels as they arrive; nil when turned off.
    let online: OnlineLearner?
    let erasures = Erasures()
    /// The campaigns, who they reached and what those users bought, folded from the log.
    let campaigns = CampaignBook()

    public init(context: ServiceContext, settings model: ModelSettings) async throws {
        self.context = context
        let settings = model.consumer
        self.settings = settings
        feature = FeatureReplicas(model.featureReplicas, defaultTimeout: .seconds(300))
        snapshotPath = context.dataDirectory.file("interactions.snapshot")
        let (table, restored) = try InteractionTable.open(snapshotPath: snapshotPath)
        self.table = table
        if restored {
            let s = table.summary
            context.logger.info("restored \(s.pairs) interactions of \(s.users) users at offsets \(s.offsets)")
        }
        registry = try Registry(directory: context.dataDirectory.file("registry"))
        if model.online.name.isEmpty {
            online = nil
        } else {
            guard Registry.validName(model.online.name) else {
                throw ServiceError("online model name '\(model.online.name)' must be letters, digits, '_' or '-'")
            }
            online = try OnlineLearner(settings: model.online, directory: context.dataDirectory.file("online"))
        }
        let logger = context.logger, metrics = ModelMetrics(context.metrics)
        self.metrics = metrics
        jobs = try JobBoard(path: context.dataDirectory.file("jobs.state"), clock: context.clock) { status in
            if status.state == .failed { logger.warning("training job \(status.jobId) failed: \(status.message)") }
            metrics.jobEnded(status)
        }
        consumer = LogConsumer(
            host: settings.ingestHost, port: settings.ingestPort, readEvents: settings.readEvents, readWait: settings.readWait,
            logger: context.logger)
    }

    public func register(in router: inout Router) {
        router.register(ModelAPI.train) { request in
            let response = try train(request)
            RPCContext.current?.audit(
                """
                train \
                \(request.kind.name ?? "?")\(request.name.isEmpty ? "" : " as '\(request.name)'")\(request.search ? " with search" : ""): \
                job \(response.jobId)
                """
            )
            return response
        }
        router.registerInline(ModelAPI.jobStatus) { request in
            guard let status = jobs.status(request.jobId) else { throw RPCError(.notFound, "no job '\(request.jobId)'") }
            return status
        }
        router.register(ModelAPI.cancelJob) { request in
            guard let status = jobs.cancel(request.jobId) else { throw RPCError(.notFound, "no job '\(request.jobId)'") }
            RPCContext.current?.audit("cancel job \(request.jobId)")
            return status
        }
        router.registerInline(ModelAPI.listJobs) { _ in
            var response = ListJobsResponse()
            response.jobs = jobs.all
            return response
        }
        router.registerInline(ModelAPI.listModels) { request in
            var response = ListModelsResponse()
            response.models = registry.list(name: request.name)
            return response
        }
        router.register(ModelAPI.getModel) { try getModel($0) }
        router.register(ModelAPI.publish) { request in
            let info = try registryCall { try registry.publish(request.name, request.version) }
            context.logger.info("published \(request.name) v\(info.version)")
            RPCContext.current?.audit("published \(request.name) v\(info.version)")
            var response = PublishModelResponse()
            response.info = info
            return response
        }
        router.register(ModelAPI.rollback) { request in
            let info = try registryCall { try registry.rollback(request.name, to: request.version) }
            context.logger.info("rolled \(request.name) back to v\(info.version)")
            RPCContext.current?.audit("rolled \(request.name) back to v\(info.version)")
            var response = PublishModelResponse()
            response.info = info
            return response
        }
        router.register(ModelAPI.watchModels) { try await watch($0) }
        router.registerInline(ModelAPI.getReport) { request in try registryCall { try registry.report(request.name, request.version) } }
        router.register(ModelAPI.defineCampaign) { try await defineCampaign($0) }
        router.register(ModelAPI.listCampaigns) { try await listCampaigns($0) }
        router.register(ModelAPI.launchCampaign) { try await launchCampaign($0) }
        router.register(ModelAPI.campaignReport) { try await campaignReport($0) }
    }

    /// Registry failures as typed statuses: a corrupt artifact is DATA_LOSS.
    func registryCall<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as Registry.Failure {
            switch failure.code {
            case .notFound: throw RPCError(.notFound, failure.description)
            case .invalid: throw RPCError(.invalidArgument, failure.description)
            case .corrupt:
                metrics.corruptArtifact()
                throw RPCError(.dataLoss, failure.description)
            }
        }
    }

    /// A new version's registry entry with what every kind records: kind, time, job, the
    /// report's metrics and parameters, training time, data range. The caller adds its own.
    func versionInfo(
        _ kind: ModelKind, job: String, report: EvaluationReport, seconds: Double, from: Int64 = 0, to: Int64 = 0
    ) -> ModelInfo {
        var info = ModelInfo()
        info.kind = kind
        info.createdMs = context.clock.nowMs
        info.jobId = job
        info.metrics = report.metrics
        info.params = report.params
        info.trainingSeconds = seconds
        info.dataFromMs = from
        info.dataToMs = to
        return info
    }

    /// Stores a trained version, counted by `kind`, and publishes it when asked.
    func addVersion(
        _ name: String, artifact: [UInt8], info: ModelInfo, report: EvaluationReport, kind: String, publish: Bool
    ) throws -> ModelInfo {
        var report = report
        report.createdMs = info.createdMs
        let stored = try registry.add(name: name, artifact: artifact, info: info, report: report, publish: publish)
        metrics.versionTrained(kind: kind)
        if publish { context.logger.info("published \(name) v\(stored.version)") }
        return stored
    }

    func getModel(_ request: GetModelRequest) throws -> GetModelResponse {
        let (info, bytes) = try registryCall { try registry.artifact(request.name, request.version) }
        guard request.offset <= UInt64(bytes.count) else {
            throw RPCError(.outOfRange, "offset \(request.offset) is past the artifact's \(bytes.count) bytes")
        }
        let chunk = request.maxBytes == 0 ? 1 << 20 : min(Int(request.maxBytes), 8 << 20)
        let start = Int(request.offset), end = min(bytes.count, start + chunk)
        var response = GetModelResponse()
        response.info = info
        response.artifact = Array(bytes[start..<end])
        response.offset = request.offset
        response.totalBytes = UInt64(bytes.count)
        return response
    }

    /// Answers once a published version differs from what the caller knows, or at the
    /// wait's end (or just before the call's deadline) with the versions as they are.
    func watch(_ request: WatchModelsRequest) async throws -> WatchModelsResponse {
        let known = Dictionary(request.known.map { ($0.name, ($0.version, $0.revision)) }, uniquingKeysWith: { $1 })
        var end = ContinuousClock.now + .milliseconds(Int(min(request.waitMs, 30_000)))
        if let deadline = RPCContext.current?.deadline { end = min(end, deadline - .milliseconds(20)) }
        while true {
            let published = registry.publishedVersions
            let names = Set(published.map(\.name))
            let changed =
                published.contains { v in known[v.name].map { $0 != (v.version, v.revision) } ?? true }
                || known.contains { $0.value.0 != 0 && !names.contains($0.key) }
            if changed || ContinuousClock.now >= end || RPCContext.current?.isShuttingDown == true {
                var response = WatchModelsResponse()
                response.published = published
                return response
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    public func close() async throws {
        jobs.shutdown()
        try writeSnapshot()
        await consumer.ingest.shutdown()
        await feature.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        let s = table.summary
        return [
            ("users", "\(s.users)"), ("items", "\(s.items)"), ("interactions", "\(s.pairs)"),
            ("offsets", s.offsets.map(String.init).joined(separator: ",")),
            ("online", online.map { "\($0.settings.name) pending=\($0.pending)" } ?? "off"),
            ("published", registry.published.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")),
        ]
    }
}
