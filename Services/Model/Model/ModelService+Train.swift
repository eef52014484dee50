import Foundation
import RPC
import Recommenders
import Wire

/// Train for the recommenders: the request checked, a job submitted on its kind's thread, and
/// the job's walk from interactions to a stored (and published) version.
extension ModelService {
    func train(_ request: TrainRequest) throws -> TrainResponse {
        if request.kind == .gbdt || request.kind == .logistic { return try trainClassifier(request) }
        if request.kind == .kmeans { return try trainSegments(request) }
        if request.kind == .uplift { return try trainUplift(request) }
        let kinds = (RecommenderModel.Kind.allCases.map(\.rawValue) + ClassifierRun.Parameters.learners + ["kmeans", "uplift"]).joined(
            separator: ", ")
        guard let kind = RecommenderModel.Kind(request.kind) else {
            metrics.badRequest("unknown_kind")
            throw RPCError(
                .invalidArgument,
                "kind '\(request.kind.name ?? String(request.kind.rawValue))' cannot be trained here; valid kinds: \(kinds)")
        }
        let parameters = try checked { try TrainingParameters(kind: kind, request.params.map { ($0.key, $0.value) }) }
        let name = try checkedName(request, default: kind.rawValue)
        if kind == .ranker {
            guard !request.search else {
                metrics.badRequest("bad_parameter")
                throw RPCError(.invalidArgument, "the ranker stops early on its own validation users: train it without --search")
            }
            guard !rankerSources().isEmpty else {
                throw RPCError(
                    .failedPrecondition,
                    "a ranker ranks the published recommenders' candidates: publish some first (persona train als, persona train item_knn)")
            }
        }
        guard table.summary.pairs > 0 else {
            throw RPCError(
                .failedPrecondition,
                """
                the model service holds no interactions yet: import events (persona import FILE --format ...) and \
                wait for them to be consumed, then train again
                """
            )
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
            metrics.badRequest("bad_parameter")
            throw RPCError(.invalidArgument, invalid.description)
        }
    }

    /// The job's model name (`fallback` when the request names none) once it and the data
    /// range are valid.
    func checkedName(_ request: TrainRequest, default fallback: String) throws -> String {
        let name = request.name.isEmpty ? fallback : request.name
        guard Registry.validName(name) else {
            metrics.badRequest("bad_name")
            throw RPCError(.invalidArgument, "model name '\(name)' must be letters, digits, '_' or '-' (at most 64)")
        }
        guard request.dataToMs == 0 || request.dataFromMs < request.dataToMs else {
            metrics.badRequest("bad_range")
            throw RPCError(.invalidArgument, "data range [\(request.dataFromMs), \(request.dataToMs)) is empty")
        }
        return name
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
                out[item.itemId] = ItemDocument(
                    title: item.title, tags: item.tags, category: item.categoryId, brand: item.brand, price: item.price)
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
    func runJob(_ request: TrainRequest, id: String, name: String, parameters: TrainingParameters, progress: TrainingProgress) throws -> (
        version: UInt32, metrics: [Metric]
    ) {
        progress.report(0, "reading interactions")
        let mark = erasures.mark
        let (data, offsets) = table.interactions(fromMs: request.dataFromMs, toMs: request.dataToMs, weights: parameters.weights)
        var catalogue: [Int64: ItemDocument] = [:]
        let sources = parameters.kind == .ranker ? rankerSources() : []
        if parameters.kind == .content || sources.contains(where: { $0.role == .content }) {
            progress.report(0, "reading the catalogue from the feature service")
            // Without catalogue entries the items are described by their categories alone.
            catalogue = try blocking { try await readCatalogue() }
        }
        var outcome =
            parameters.kind == .ranker
            ? try RankerRun.run(parameters, sources: sources, data: data, catalogue: catalogue, progress: progress)
            : try TrainingRun.run(parameters, data: data, catalogue: catalogue, search: request.search, progress: progress)
        try progress.check()
        // Users erased while it trained leave it before it is stored.
        outcome.model.forget(erasures.since(mark, table: table))
        var info = versionInfo(
            parameters.kind.modelKind, job: id, report: outcome.report, seconds: outcome.seconds, from: request.dataFromMs,
            to: request.dataToMs)
        info.logOffsets = offsets
        info.featureSchemaVersion = InteractionTable.snapshotVersion
        info.interactions = UInt64(data.pairs)
        info.users = UInt32(data.users)
        info.items = UInt32(data.items)
        let stored = try addVersion(
            name, artifact: ModelArtifact.encode(outcome.model), info: info, report: outcome.report, kind: parameters.kind.rawValue,
            publish: request.publish)
        return (stored.version, stored.metrics)
    }

    /// The sources a ranker learns over: for each role, the model recommend serves in it (by
    /// name, as recommend picks them: `als` else `bpr`, `item_knn` else `ease`, `content`,
    /// `sequence`), at its published version's parameters; popularity always. None when no
    /// personal source is published.
    func rankerSources() -> [RankerRun.Source] {
        let published = registry.published
        var out: [RankerRun.Source] = []
        for names in [["als", "bpr"], ["item_knn", "ease"], ["content"], ["sequence"]] {
            guard let name = names.first(where: { published[$0] != nil }), let report = try? registry.report(name, 0),
                let kind = RecommenderModel.Kind(report.kind),
                let p = try? TrainingParameters(kind: kind, report.params.map { ($0.key, $0.value) }),
                let source = try? RankerRun.Source(p)
            else { continue }
            out.append(source)
        }
        guard !out.isEmpty else { return [] }
        return out + [try! RankerRun.Source(TrainingParameters(kind: .popularity))]
    }
}
