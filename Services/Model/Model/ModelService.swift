public import ArgumentParser
import Classifiers
import Foundation
import Logging
public import RPC
import Recommenders
public import ServiceKit
import Store
import Wire

/// The model service: folds the log into its own interaction store, trains recommenders
/// as jobs, keeps every version in a registry with its evaluation report, and publishes
/// versions that other services watch for (WatchModels) and fetch in chunks (GetModel).
public struct ModelService: PersonaService {
    public static let name = "model"
    public static let defaultPort = 7103
    public static let defaultMetricsPort = 9103

    public typealias Settings = ModelSettings

    let context: ServiceContext
    let settings: ConsumerSettings
    /// The feature service: labelled training rows for the classifiers (ExportTraining).
    let feature: RPCClient
    let store: InteractionStore
    let registry: Registry
    let jobs: JobBoard
    let consumer: LogConsumer
    let snapshotPath: String
    /// The online fraud model, learning from labels as they arrive; nil when turned off.
    let online: OnlineLearner?
    let erasures = Erasures()

    public init(context: ServiceContext, settings model: ModelSettings) async throws {
        self.context = context
        let settings = model.consumer
        self.settings = settings
        var featureConfig = RPCClient.Config.defaults(host: model.featureHost, port: model.featurePort)
        featureConfig.defaultTimeout = .seconds(300)
        feature = RPCClient(config: featureConfig)
        snapshotPath = context.dataDirectory.file("interactions.snapshot")
        let (store, restored) = try InteractionStore.open(snapshotPath: snapshotPath)
        self.store = store
        if restored {
            let s = store.summary
            context.logger.info("restored \(s.pairs) interactions of \(s.users) users at offsets \(s.offsets)")
        }
        registry = try Registry(directory: context.dataDirectory.file("registry"))
        if model.online.name.isEmpty {
            online = nil
        } else {
            guard Registry.validName(model.online.name) else { throw ServiceError("online model name '\(model.online.name)' must be letters, digits, '_' or '-'") }
            online = try OnlineLearner(settings: model.online, directory: context.dataDirectory.file("online"))
        }
        let logger = context.logger, metrics = context.metrics
        jobs = try JobBoard(path: context.dataDirectory.file("jobs.state")) { status in
            let state = status.state.name ?? "\(status.state.rawValue)", kind = status.kind.name ?? ""
            if status.state == .failed { logger.warning("training job \(status.jobId) failed: \(status.message)") }
            metrics.counter("persona_model_jobs_total", labels: [("kind", kind), ("state", state)], help: "Training jobs ended, by kind and state").increment()
            if status.state == .succeeded, status.finishedMs > status.createdMs {
                metrics.gauge("persona_model_training_seconds", labels: [("kind", kind)], help: "How long the latest successful job of each kind took, queue included")
                    .set(Double(status.finishedMs - status.createdMs) / 1000)
            }
        }
        consumer = LogConsumer(host: settings.ingestHost, port: settings.ingestPort, readEvents: settings.readEvents, readWait: settings.readWait, logger: context.logger)
    }

    public func register(in router: inout Router) {
        router.register(ModelAPI.train) { request in
            let response = try train(request)
            RPCContext.current?.audit("train \(request.kind.name ?? "?")\(request.name.isEmpty ? "" : " as '\(request.name)'")\(request.search ? " with search" : ""): job \(response.jobId)")
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
                context.metrics.counter("persona_model_corrupt_artifacts_total", labels: [], help: "Artifacts refused because their checksum or structure failed").increment()
                throw RPCError(.dataLoss, failure.description)
            }
        }
    }

    func train(_ request: TrainRequest) throws -> TrainResponse {
        if request.kind == .gbdt || request.kind == .logistic { return try trainClassifier(request) }
        if request.kind == .kmeans { return try trainSegments(request) }
        let kinds = (RecommenderModel.Kind.allCases.map(\.rawValue) + ClassifierRun.Parameters.learners + ["kmeans"]).joined(separator: ", ")
        guard let kind = RecommenderModel.Kind(request.kind) else {
            badRequest("unknown_kind")
            throw RPCError(.invalidArgument, "kind '\(request.kind.name ?? String(request.kind.rawValue))' cannot be trained here; valid kinds: \(kinds)")
        }
        let parameters = try checked { try TrainingParameters(kind: kind, request.params.map { ($0.key, $0.value) }) }
        let name = try checkedName(request, default: kind.rawValue)
        guard store.summary.pairs > 0 else {
            throw RPCError(.failedPrecondition, "the model service holds no interactions yet: import events (persona import FILE --format ...) and wait for them to be consumed, then train again")
        }
        let id = try jobs.submit(name: name, kind: kind.modelKind) { id, progress in
            try runJob(request, id: id, name: name, parameters: parameters, progress: progress)
        }
        context.logger.info("training job \(id): \(kind.rawValue) as '\(name)'\(request.search ? " with search" : "")")
        var response = TrainResponse()
        response.jobId = id
        return response
    }

    /// The kind's parameters, a refusal naming the valid ones counted as a bad parameter.
    func checked<P>(_ parse: () throws -> P) throws -> P {
        do {
            return try parse()
        } catch let invalid as TrainingParameters.Invalid {
            badRequest("bad_parameter")
            throw RPCError(.invalidArgument, invalid.description)
        }
    }

    /// The job's model name (`fallback` when the request names none) once it and the data
    /// range are valid.
    func checkedName(_ request: TrainRequest, default fallback: String) throws -> String {
        let name = request.name.isEmpty ? fallback : request.name
        guard Registry.validName(name) else {
            badRequest("bad_name")
            throw RPCError(.invalidArgument, "model name '\(name)' must be letters, digits, '_' or '-' (at most 64)")
        }
        guard request.dataToMs == 0 || request.dataFromMs < request.dataToMs else {
            badRequest("bad_range")
            throw RPCError(.invalidArgument, "data range [\(request.dataFromMs), \(request.dataToMs)) is empty")
        }
        return name
    }

    /// A classifier job: `gbdt` or `logistic` on the feature service's labelled rows; the
    /// name defaults to the target (`fraud`).
    func trainClassifier(_ request: TrainRequest) throws -> TrainResponse {
        let learner = request.kind == .gbdt ? "gbdt" : "logistic"
        let parameters = try checked { try ClassifierRun.Parameters(learner: learner, request.params.map { ($0.key, $0.value) }) }
        let name = try checkedName(request, default: parameters.target)
        let id = try jobs.submit(name: name, kind: request.kind) { id, progress in
            progress.report(0, "reading labelled rows from the feature service")
            let rows = try blocking { try await exportTraining(from: request.dataFromMs, to: request.dataToMs, for: parameters) }
            let outcome = try ClassifierRun.run(parameters, rows, progress: progress)
            try progress.check()
            var info = ModelInfo()
            info.kind = request.kind
            info.createdMs = JobBoard.nowMs
            info.metrics = outcome.report.metrics
            info.params = outcome.report.params
            info.dataFromMs = request.dataFromMs
            info.dataToMs = request.dataToMs
            info.featureSchemaVersion = rows.schemaVersion
            info.trainingSeconds = outcome.seconds
            info.interactions = UInt64(rows.rows.count)
            info.users = UInt32(outcome.users)
            info.items = UInt32(rows.names.count)
            info.jobId = id
            let stored = try registry.add(name: name, artifact: outcome.classifier.encode(), info: info, report: outcome.report)
            context.metrics.counter("persona_model_versions_total", labels: [("kind", learner)], help: "Model versions trained").increment()
            if request.publish {
                _ = try registry.publish(name, stored.version)
                context.logger.info("published \(name) v\(stored.version)")
            }
            return (stored.version, stored.metrics)
        }
        context.logger.info("training job \(id): \(learner) as '\(name)'")
        var response = TrainResponse()
        response.jobId = id
        return response
    }

    /// A segments job: every user the interaction store knows, their profile features read
    /// from the feature service, k-means with k chosen by silhouette (3 to 8) unless `k` is
    /// given, fuzzy memberships beside; the name defaults to `segments`.
    func trainSegments(_ request: TrainRequest) throws -> TrainResponse {
        var asked: Int? = nil
        for p in request.params {
            guard p.key == "k", let v = Int(p.value), (2...50).contains(v) else {
                badRequest("bad_parameter")
                throw RPCError(.invalidArgument, "parameter \(p.key)=\(p.value) is not valid for kmeans; valid: k (2...50; default: chosen by silhouette over 3...8)")
            }
            asked = v
        }
        let k = asked
        let name = try checkedName(request, default: "segments")
        let users = store.interactions().data.userIDs
        guard users.count >= 10 else {
            throw RPCError(.failedPrecondition, "\(users.count) users with interactions: segments need at least 10; import events first")
        }
        let id = try jobs.submit(name: name, kind: .kmeans) { id, progress in
            let started = ContinuousClock.now
            progress.report(0, "reading the profiles of \(users.count) users from the feature service")
            let features = Segmentation.defaultFeatures
            let raw = try blocking { try await profileRows(users, names: features.map(\.name)) }
            guard raw.count >= 10 else {
                throw TrainingRun.NoData(description: "the feature service has profiles of \(raw.count) of the \(users.count) users: segments need at least 10")
            }
            progress.report(0.3, "clustering \(raw.count) profiles")
            let (segmentation, silhouettes, _) = Segmentation.fit(raw: raw, features: features, k: k)
            var report = EvaluationReport()
            report.kind = .kmeans
            report.params = [KeyValue(key: "k", value: "\(segmentation.k)")]
            report.users = UInt32(raw.count)
            report.metrics = (0..<segmentation.k).map { c in
                var m = Metric()
                m.name = "segment \(c): \(segmentation.sizes[c]) users: \(segmentation.describe(c))"
                m.value = Double(segmentation.sizes[c])
                return m
            }
            if !silhouettes.isEmpty {
                var curve = Curve()
                curve.name = "silhouette"
                curve.x = silhouettes.map { Double($0.k) }
                curve.y = silhouettes.map(\.score)
                report.curves = [curve]
            }
            report.protocol = "profiles of every user with interactions (\(features.map(\.name).joined(separator: ", ")); counts and amounts as log(1 + x)), standardised; k-means++ and Lloyd steps\(k == nil ? ", k chosen by the mean silhouette over 3...8" : ""); fuzzy c-means (m 2) memberships from the same start"
            report.createdMs = Int64(Date().timeIntervalSince1970 * 1000)
            var info = ModelInfo()
            info.kind = .kmeans
            info.createdMs = JobBoard.nowMs
            info.metrics = [Metric(name: "k", value: Double(segmentation.k))] + (silhouettes.map { s in [Metric(name: "silhouette", value: s.score)] }.last ?? [])
            info.params = report.params
            info.trainingSeconds = started.duration(to: .now) / .seconds(1)
            info.users = UInt32(raw.count)
            info.items = UInt32(features.count)
            info.jobId = id
            if let best = silhouettes.first(where: { $0.k == segmentation.k }) { info.metrics = [Metric(name: "k", value: Double(segmentation.k)), Metric(name: "silhouette", value: best.score)] }
            let stored = try registry.add(name: name, artifact: segmentation.encode(), info: info, report: report)
            if request.publish { _ = try registry.publish(name, stored.version) }
            return (stored.version, stored.metrics)
        }
        var response = TrainResponse()
        response.jobId = id
        return response
    }

    /// The named features of `users`, from the feature service in chunks (users it does not
    /// know are left out).
    func profileRows(_ users: [Int64], names: [String]) async throws -> [[Float]] {
        var rows: [[Float]] = []
        for start in stride(from: 0, to: users.count, by: 1000) {
            var request = GetFeaturesRequest()
            request.userIds = Array(users[start..<min(users.count, start + 1000)])
            request.names = names
            for row in try await feature.call(FeatureAPI.getFeatures, request).rows where row.found { rows.append(row.values) }
        }
        return rows
    }

    /// Every row of the feature service's point-in-time export, page by page: labelled
    /// orders, or users at cut-offs for a user-level target of `parameters`.
    func exportTraining(from: Int64, to: Int64, for parameters: ClassifierRun.Parameters? = nil) async throws -> ClassifierRun.Rows {
        var request = ExportTrainingRequest()
        request.fromMs = from
        request.toMs = to
        if let parameters, parameters.userLevel {
            request.target = parameters.target
            request.horizonDays = UInt32(parameters.horizonDays)
            request.cutoffs = UInt32(parameters.cutoffs)
        }
        request.chunkRows = 10_000
        var rows: [TrainingRow] = []
        var names: [String] = [], schema: UInt32 = 0
        while true {
            let page = try await feature.call(FeatureAPI.exportTraining, request)
            names = page.names
            schema = page.schemaVersion
            rows += page.rows
            if page.done { break }
            request.cursor = page.nextCursor
        }
        return ClassifierRun.Rows(names: names, schemaVersion: schema, rows: rows)
    }

    /// Every catalogue entry the feature service lists (items named by an item_upsert), page by page.
    func readCatalogue() async throws -> [Int64: ItemDocument] {
        var request = GetItemsRequest()
        request.catalogue = true
        request.limit = 10_000
        var out: [Int64: ItemDocument] = [:]
        while true {
            let page = try await feature.call(FeatureAPI.getItems, request, timeout: .seconds(30))
            for item in page.items {
                out[item.itemId] = ItemDocument(title: item.title, tags: item.tags, category: item.categoryId, brand: item.brand, price: item.price)
            }
            guard page.more, let last = page.items.last?.itemId else { return out }
            request.afterId = last
        }
    }

    /// Runs async work from a job's thread (a dispatch queue of its own, never the
    /// cooperative pool), waiting for its result.
    func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, any Error>!
        Task {
            do { result = .success(try await work()) } catch { result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try result.get()
    }

    /// The work of one job (on its kind's thread): data, fit, evaluate, store, publish.
    func runJob(_ request: TrainRequest, id: String, name: String, parameters: TrainingParameters, progress: TrainingProgress) throws -> (version: UInt32, metrics: [Metric]) {
        progress.report(0, "reading interactions")
        let mark = erasures.mark
        let (data, offsets) = store.interactions(fromMs: request.dataFromMs, toMs: request.dataToMs, weights: parameters.weights)
        var catalogue: [Int64: ItemDocument] = [:]
        if parameters.kind == .content {
            progress.report(0, "reading the catalogue from the feature service")
            // Without catalogue entries the items are described by their categories alone.
            catalogue = try blocking { try await readCatalogue() }
        }
        var outcome = try TrainingRun.run(parameters, data: data, catalogue: catalogue, search: request.search, progress: progress)
        try progress.check()
        // Users erased while it trained leave it before it is stored.
        outcome.model.forget(erasures.since(mark, store: store))
        var info = ModelInfo()
        info.kind = parameters.kind.modelKind
        info.createdMs = JobBoard.nowMs
        info.metrics = outcome.report.metrics
        info.params = outcome.report.params
        info.dataFromMs = request.dataFromMs
        info.dataToMs = request.dataToMs
        info.logOffsets = offsets
        info.featureSchemaVersion = InteractionStore.snapshotVersion
        info.trainingSeconds = outcome.seconds
        info.interactions = UInt64(data.pairs)
        info.users = UInt32(data.users)
        info.items = UInt32(data.items)
        info.jobId = id
        let stored = try registry.add(name: name, artifact: ModelArtifact.encode(outcome.model), info: info, report: outcome.report)
        context.metrics.counter("persona_model_versions_total", labels: [("kind", parameters.kind.rawValue)], help: "Model versions trained").increment()
        if request.publish {
            _ = try registry.publish(name, stored.version)
            context.logger.info("published \(name) v\(stored.version)")
        }
        return (stored.version, stored.metrics)
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
            let changed = published.contains { v in known[v.name].map { $0 != (v.version, v.revision) } ?? true }
                || known.contains { $0.value.0 != 0 && !names.contains($0.key) }
            if changed || ContinuousClock.now >= end || RPCContext.current?.isShuttingDown == true {
                var response = WatchModelsResponse()
                response.published = published
                return response
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func badRequest(_ reason: String) {
        context.metrics.counter("persona_model_bad_requests_total", labels: [("reason", reason)], help: "Calls refused as invalid, by reason").increment()
    }

    // MARK: Consuming

    public func runBackground() async throws {
        let partitions = try await consumer.partitions()
        guard store.adopt(partitions: partitions) else {
            throw ServiceError("the interaction snapshot has \(store.summary.offsets.count) partitions but ingest has \(partitions); remove \(snapshotPath) to rebuild from the log")
        }
        context.logger.info("consuming \(partitions) partitions from \(settings.ingestHost):\(settings.ingestPort)")
        // Erasures the last run folded but did not finish applying.
        applyErasures()
        let metrics = context.metrics
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<partitions {
                group.addTask {
                    try await consumer.consume(partition: p, offset: { store.offset(p) }, failed: { _ in
                        metrics.counter("persona_model_read_errors_total", labels: [], help: "Failed reads from ingest (retried)").increment()
                    }) { response, from in
                        let labels = store.fold(response.events, partition: p, next: response.nextOffset)
                        online?.noteLabels(labels)
                        applyErasures()
                        metrics.counter("persona_model_events_total", labels: [], help: "Events read from the log").increment(by: Int64(response.events.count))
                        metrics.gauge("persona_model_consumer_lag", labels: [("partition", "\(p)")], help: "Events in the partition not yet folded")
                            .set(Int64(clamping: response.endOffset &- max(response.nextOffset, from)))
                    }
                }
            }
            if let online {
                group.addTask {
                    // A catch-up cycle once the consumer has had time to read what came while
                    // the service was down, then one whenever enough labels arrived.
                    try await Task.sleep(for: .seconds(5))
                    online.noteLabels(1)
                    var last = ContinuousClock.now - online.settings.every
                    while true {
                        if online.due(since: last) {
                            await learnOnline(online)
                            last = .now
                        }
                        try await Task.sleep(for: .seconds(1))
                    }
                }
            }
            group.addTask {
                var written = store.summary.version
                while true {
                    try await Task.sleep(for: settings.snapshotInterval)
                    if let v = try writeSnapshot(since: written) { written = v }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// One online cycle: the export's rows not learned yet are learned, and the model is
    /// published as a new version. A failure (the feature service away) is logged and the
    /// labels stay pending for the next cycle.
    func learnOnline(_ online: OnlineLearner) async {
        let started = ContinuousClock.now
        do {
            let rows = try await exportTraining(from: 0, to: 0)
            guard let outcome = try online.learn(rows) else { return }
            var info = ModelInfo()
            info.kind = .ftrl
            info.createdMs = JobBoard.nowMs
            info.metrics = outcome.metrics
            let p = online.settings.parameters
            info.params = [("alpha", p.alpha), ("beta", p.beta), ("l1", p.l1), ("l2", p.l2)].map { KeyValue(key: $0.0, value: "\($0.1)") }
            info.featureSchemaVersion = rows.schemaVersion
            info.trainingSeconds = started.duration(to: .now) / .seconds(1)
            info.interactions = UInt64(outcome.total)
            info.items = UInt32(rows.names.count)
            var report = EvaluationReport()
            report.kind = .ftrl
            report.metrics = outcome.metrics
            report.params = info.params
            report.createdMs = info.createdMs
            report.protocol = "progressive validation: each of the \(outcome.learned) newly labelled orders scored by the model before it learned from it (features as of each order, from the feature service's point-in-time export), oldest first; \(outcome.total) orders learned in all"
            report.importance = Self.importance(outcome.classifier)
            let stored = try registry.add(name: online.settings.name, artifact: outcome.classifier.encode(), info: info, report: report)
            _ = try registry.publish(online.settings.name, stored.version)
            context.metrics.counter("persona_model_online_rows_total", labels: [], help: "Labelled orders the online model learned from").increment(by: Int64(outcome.learned))
            context.metrics.counter("persona_model_versions_total", labels: [("kind", "ftrl")], help: "Model versions trained").increment()
            context.logger.info("online model \(online.settings.name) v\(stored.version): learned \(outcome.learned) new labelled orders (\(outcome.total) in all), published")
        } catch {
            online.noteLabels(1)
            context.logger.warning("online model \(online.settings.name): cycle failed, retried: \(error)")
        }
    }

    /// The online model's weights, largest first (on standardised inputs).
    static func importance(_ classifier: Classifier) -> [Metric] {
        guard case .logistic(let l) = classifier.learner else { return [] }
        return zip(classifier.features, l.coefficients).filter { $0.1 != 0 }.sorted { abs($0.1) > abs($1.1) }.prefix(20)
            .map { Metric(name: "\($0.0): weight \(String(format: "%+.4f", $0.1))", value: Double(abs($0.1))) }
    }

    /// Drops the users of erasure events just folded from every stored model, then writes
    /// the snapshot, so that their pairs are gone from disk too. A failure is logged and
    /// retried with the next fold.
    func applyErasures() {
        guard !store.pendingErasures.isEmpty else { return }
        do {
            let (users, versions) = try erasures.apply(store: store, registry: registry)
            guard users > 0 else { return }
            try writeSnapshot()
            context.metrics.counter("persona_model_erasures_total", labels: [], help: "Users erased").increment(by: Int64(users))
            context.logger.info("erased \(users) user(s): \(versions.count) model version(s) rewritten\(versions.isEmpty ? "" : " (" + versions.map { "\($0.name) v\($0.version) r\($0.revision)" }.joined(separator: ", ") + ")")")
        } catch {
            context.metrics.counter("persona_model_erasure_failures_total", labels: [], help: "Erasures that could not be applied yet (retried)").increment()
            context.logger.error("applying an erasure failed (retried with the next fold): \(error)")
        }
    }

    @discardableResult
    func writeSnapshot(since version: UInt64? = nil) throws -> UInt64? {
        guard let v = try store.writeSnapshot(to: snapshotPath, ifChangedSince: version) else { return nil }
        let s = store.summary
        context.metrics.gauge("persona_model_interactions", labels: [], help: "(user, item) pairs in the interaction store").set(Int64(s.pairs))
        context.metrics.gauge("persona_model_interaction_bytes", labels: [], help: "Memory of the interaction store").set(Int64(s.bytes))
        return v
    }

    public func close() async throws {
        jobs.shutdown()
        try writeSnapshot()
        await consumer.ingest.shutdown()
        await feature.shutdown()
    }

    public func healthChecks() async -> [(String, String)] {
        let s = store.summary
        return [
            ("users", "\(s.users)"), ("items", "\(s.items)"), ("interactions", "\(s.pairs)"),
            ("offsets", s.offsets.map(String.init).joined(separator: ",")),
            ("online", online.map { "\($0.settings.name) pending=\($0.pending)" } ?? "off"),
            ("published", registry.published.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")),
        ]
    }
}

/// Settings of the model service beyond the common flags: the log it folds, and the feature
/// service the classifiers' training rows come from.
public struct ModelSettings: Sendable {
    public var consumer: ConsumerSettings
    public var featureHost = "127.0.0.1"
    public var featurePort = 7102
    var online = OnlineLearner.Settings()

    public init(_ consumer: ConsumerSettings = .init()) { self.consumer = consumer }

    /// The online fraud model's name (empty: none), and how often it publishes.
    public mutating func online(name: String, everyLabels: Int = 100, every: Duration = .seconds(300)) {
        online.name = name
        online.everyLabels = everyLabels
        online.every = every
    }
}

public struct ModelOptions: ParsableArguments, Sendable {
    @OptionGroup public var consumer: ConsumerOptions

    @Option(help: "Feature service address host:port, where classifiers' labelled rows come from (env PERSONA_FEATURE_ADDR, default 127.0.0.1:7102).")
    public var feature: String?

    @Option(help: "Name of the online fraud model (FTRL-Proximal, learning from label events as they arrive); 'off' for none (env PERSONA_ONLINE_MODEL, default fraud_online).")
    public var onlineModel: String?

    @Option(help: "The online model publishes a new version after this many new labels (env PERSONA_ONLINE_EVERY_LABELS, default 100)...")
    public var onlineEveryLabels: Int?

    @Option(help: "...or this many seconds after the first new label (env PERSONA_ONLINE_EVERY_SECONDS, default 300).")
    public var onlineEverySeconds: Double?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> ModelSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = ModelSettings(try consumer.resolve(service: "model", environment: env))
        if let (host, port) = try peerAddress(flag: feature, variable: "PERSONA_FEATURE_ADDR", environment: env, service: "feature") {
            s.featureHost = host
            s.featurePort = port
        }
        let name = onlineModel ?? env["PERSONA_ONLINE_MODEL"] ?? "fraud_online"
        let labels = onlineEveryLabels ?? env["PERSONA_ONLINE_EVERY_LABELS"].flatMap { Int($0) } ?? 100
        let seconds = onlineEverySeconds ?? env["PERSONA_ONLINE_EVERY_SECONDS"].flatMap { Double($0) } ?? 300
        guard labels >= 1, seconds > 0 else { throw ValidationError("the online model publishes after at least 1 label and a positive number of seconds") }
        s.online(name: name == "off" ? "" : name, everyLabels: labels, every: .milliseconds(Int64(seconds * 1000)))
        return s
    }
}
