import Classifiers
import Foundation
import RPC
import Wire

/// Train for the customer segments: profile features, k-means, the stored version.
extension ModelService {
    /// A segments job: every user the interaction store knows, their profile features read
    /// from the feature service, k-means with k chosen by silhouette (3 to 8) unless `k` is
    /// given, fuzzy memberships beside; the name defaults to `segments`.
    func trainSegments(_ request: TrainRequest) throws -> TrainResponse {
        var asked: Int? = nil
        for p in request.params {
            guard p.key == "k", let v = Int(p.value), (2...50).contains(v) else {
                metrics.badRequest("bad_parameter")
                throw RPCError(
                    .invalidArgument,
                    "parameter \(p.key)=\(p.value) is not valid for kmeans; valid: k (2...50; default: chosen by silhouette over 3...8)")
            }
            asked = v
        }
        let k = asked
        let name = try checkedName(request, default: "segments")
        let users = table.interactions().data.userIDs
        guard users.count >= 10 else {
            throw RPCError(.failedPrecondition, "\(users.count) users with interactions: segments need at least 10; import events first")
        }
        let id = try jobs.submit(name: name, kind: .kmeans) { id, progress in
            let started = ContinuousClock.now
            progress.report(0, "reading the profiles of \(users.count) users from the feature service")
            let features = Segmentation.defaultFeatures
            let raw = try blocking { try await profileRows(users, names: features.map(\.name)) }
            guard raw.count >= 10 else {
                throw TrainingRun.NoData(
                    description: "the feature service has profiles of \(raw.count) of the \(users.count) users: segments need at least 10")
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
            report.protocol =
                """
                profiles of every user with interactions (\(features.map(\.name).joined(separator: ", ")); counts \
                and amounts as log(1 + x)), standardised; k-means++ and Lloyd \
                steps\(k == nil ? ", k chosen by the mean silhouette over 3...8" : ""); fuzzy c-means (m 2) \
                memberships from the same start
                """
            var info = versionInfo(.kmeans, job: id, report: report, seconds: started.duration(to: .now) / .seconds(1))
            // The version lists k and the silhouette at that k.
            info.metrics =
                [Metric(name: "k", value: Double(segmentation.k))]
                + (silhouettes.first { $0.k == segmentation.k }.map { [Metric(name: "silhouette", value: $0.score)] } ?? [])
            info.users = UInt32(raw.count)
            info.items = UInt32(features.count)
            let stored = try addVersion(
                name, artifact: segmentation.encode(), info: info, report: report, kind: "kmeans", publish: request.publish)
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
            for row in try await feature.features(request).rows where row.found { rows.append(row.values) }
        }
        return rows
    }
}
