import Foundation
import Math
import RPC
import Uplift
import Wire

/// Train for uplift models: a past campaign's reached users, their features at its start
/// (the feature service's point-in-time export) and whether they ordered in its window; half
/// the users (by a hash) train, the other half give the Qini curves of the report.
extension ModelService {
    func trainUplift(_ request: TrainRequest) throws -> TrainResponse {
        let params = Dictionary(request.params.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b })
        for key in params.keys where !["campaign", "method"].contains(key) {
            metrics.badRequest("bad_parameter")
            throw RPCError(.invalidArgument, "uplift takes campaign=NAME and method=two_model|class_transformation, not '\(key)'")
        }
        guard let name = params["campaign"], let campaign = campaigns.campaigns(named: name).first?.definition else {
            metrics.badRequest("bad_parameter")
            throw RPCError(.invalidArgument, "uplift needs campaign=NAME of a defined campaign")
        }
        guard let method = UpliftModel.Method(rawValue: params["method"] ?? UpliftModel.Method.twoModel.rawValue) else {
            metrics.badRequest("bad_parameter")
            throw RPCError(.invalidArgument, "method is one of \(UpliftModel.Method.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let reached = campaigns.reached(name)
        let controls = reached.values.filter(\.control).count
        guard controls >= 20 && reached.count - controls >= 20 else {
            throw RPCError(
                .failedPrecondition,
                "campaign '\(name)' reached \(reached.count - controls) treated and \(controls) control users: uplift needs 20 of each")
        }
        let modelName = try checkedName(request, default: "uplift")
        let id = try jobs.submit(name: modelName, kind: .uplift) { id, progress in
            let started = ContinuousClock.now
            progress.report(0, "reading the campaign's users as they were at its start")
            var export = ExportTrainingRequest()
            export.target = "propensity"
            export.cutoffMs = campaign.startMs
            export.cutoffs = 1
            export.horizonDays = UInt32(max(1, (campaign.endMs - campaign.startMs + 86_399_999) / 86_400_000))
            let asked = export
            let exported = try blocking { try await exportPages(asked) }
            try progress.check()
            var train: [UpliftRow] = [], test: [UpliftRow] = []
            for row in exported.rows {
                guard let reach = reached[row.userId] else { continue }
                let r = UpliftRow(features: row.values, treated: !reach.control, converted: row.label > 0.5)
                if ControlGroup.position(user: row.userId, campaign: "holdout:" + name) < 0.5 { test.append(r) } else { train.append(r) }
            }
            guard train.contains(where: \.treated), train.contains(where: { !$0.treated }), !test.isEmpty else {
                throw RPCError(.failedPrecondition, "the feature service knew too few of the campaign's users at its start")
            }
            progress.report(0.3, "training on \(train.count) users, \(test.count) held out")
            let model = UpliftModel.train(train, method: method)
            let propensity = BoostedTrees.train(
                rows: train.flatMap(\.features), labels: train.map { $0.converted ? 1 : 0 }, features: exported.names.count,
                parameters: UpliftModel.defaults)
            var rng = SplitMix(seed: 7)
            let (treated, converted) = (test.map(\.treated), test.map(\.converted))
            let curves: [(String, QiniCurve)] = [
                ("qini_uplift", QiniCurve(scores: test.map { model.uplift($0.features) }, treated: treated, converted: converted)),
                (
                    "qini_propensity",
                    QiniCurve(scores: test.map { propensity.probability($0.features) }, treated: treated, converted: converted)
                ),
                (
                    "qini_random",
                    QiniCurve(scores: test.map { _ in Float.random(in: 0..<1, using: &rng) }, treated: treated, converted: converted)
                ),
            ]
            var report = EvaluationReport()
            report.name = modelName
            report.kind = .uplift
            report.users = UInt32(train.count + test.count)
            report.testPairs = UInt64(test.count)
            report.protocol = """
                users the campaign reached, features as of its start, converted = an order in the \(export.horizonDays) day(s) \
                after it; half the users (by a hash) train, the other half rank: Qini curves of the uplift model, a propensity \
                model on the same rows, and a random order
                """
            let conversion = { (rows: [UpliftRow], arm: Bool) -> Double in
                let a = rows.filter { $0.treated == arm }
                return a.isEmpty ? 0 : Double(a.filter(\.converted).count) / Double(a.count)
            }
            report.metrics =
                curves.map { Metric(name: $0.0, value: $0.1.coefficient) } + [
                    Metric(name: "conversion_treated", value: conversion(train + test, true)),
                    Metric(name: "conversion_control", value: conversion(train + test, false)),
                ]
            report.curves = curves.map { name, q in
                var c = Curve()
                c.name = name
                c.x = q.points.map(\.share)
                c.y = q.points.map(\.gain)
                return c
            }
            report.params = [KeyValue(key: "campaign", value: name), KeyValue(key: "method", value: method.rawValue)]
            var info = versionInfo(.uplift, job: id, report: report, seconds: (ContinuousClock.now - started) / .seconds(1))
            info.featureSchemaVersion = exported.schemaVersion
            info.interactions = UInt64(train.count + test.count)
            info.users = UInt32(train.count + test.count)
            info.items = UInt32(exported.names.count)
            let artifact = UpliftArtifact(campaign: name, features: exported.names, schemaVersion: exported.schemaVersion, model: model)
            let stored = try addVersion(
                modelName, artifact: artifact.encode(), info: info, report: report, kind: "uplift", publish: request.publish)
            return (stored.version, stored.metrics)
        }
        context.logger.info("training job \(id): uplift of campaign '\(name)' as '\(modelName)'")
        var response = TrainResponse()
        response.jobId = id
        return response
    }
}
