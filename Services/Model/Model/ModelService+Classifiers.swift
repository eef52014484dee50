import Classifiers
import Foundation
import RPC
import Wire

/// Train for the classifiers (fraud, propensity, churn): the feature service's point-in-time
/// rows, the learner, the stored version.
extension ModelService {
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
            var info = versionInfo(
                request.kind, job: id, report: outcome.report, seconds: outcome.seconds, from: request.dataFromMs, to: request.dataToMs)
            info.featureSchemaVersion = rows.schemaVersion
            info.interactions = UInt64(rows.rows.count)
            info.users = UInt32(outcome.users)
            info.items = UInt32(rows.names.count)
            let stored = try addVersion(
                name, artifact: outcome.classifier.encode(), info: info, report: outcome.report, kind: learner, publish: request.publish)
            return (stored.version, stored.metrics)
        }
        context.logger.info("training job \(id): \(learner) as '\(name)'")
        var response = TrainResponse()
        response.jobId = id
        return response
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
        let exported = try await exportPages(request)
        if parameters?.userLevel ?? false { return exported }
        var (names, rows) = (exported.names, exported.rows)
        // An order is judged on what is known of it and its user, not on where the user
        // ranked among everyone: those ranks move with the whole population, so the export's
        // (refreshed every few hundred rows) and Score's (as of now) would disagree.
        let kept = names.indices.filter { !Self.populationRanks.contains(names[$0]) }
        if kept.count < names.count {
            for i in rows.indices { rows[i].values = kept.map { rows[i].values[$0] } }
            names = kept.map { names[$0] }
        }
        return ClassifierRun.Rows(names: names, schemaVersion: exported.schemaVersion, rows: rows)
    }

    /// Every page of one export.
    func exportPages(_ request: ExportTrainingRequest) async throws -> ClassifierRun.Rows {
        var request = request
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

    /// Features that rank a user among all users (RFM scores, the segment).
    static let populationRanks: Set<String> = ["r_score", "f_score", "m_score", "segment_id"]
}
