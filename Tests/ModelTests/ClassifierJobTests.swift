import Classifiers
import Datasets
import Feature
import Foundation
import Ingest
import Math
import RPC
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Model

@Suite("Classifier jobs", .serialized, .timeLimit(.minutes(3)))
struct ClassifierJobTests {
    @Test(
        """
        persona train fraud: point-in-time rows from the feature service, a calibrated gbdt that finds the planted \
        pattern, published with its report; logistic and segments too
        """
    )
    func fraudJob() async throws {
        try await withCoreSuite { ingest, feature, model in
            var skips = DatasetFormat.Skips()
            let events = DatasetFormat.fraud.events(lines: plantedFraudRows(1200), skips: &skips).sorted { $0.timestampMs < $1.timestampMs }
            try await append(ingest.client, events)
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)

            let id = try await train(model.client, .gbdt, params: ["trees": "150", "learning_rate": "0.1"], publish: true)
            let status = try await waitJob(model.client, id)
            #expect(status.state == .succeeded, "\(status.message)")
            #expect(status.name == "fraud")
            var r = GetReportRequest()
            r.name = "fraud"
            let report = try await model.client.call(ModelAPI.getReport, r)
            let metric = Dictionary(report.metrics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            let baseline = Dictionary(report.baseline.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            // One row in twenty is flipped: about 0.95 is the best a model can do.
            #expect(metric["roc_auc"]! > 0.9 && metric["pr_auc"]! > 0.6, "\(metric)")
            #expect(metric["log_loss"]! < baseline["log_loss"]!)
            #expect(report.testPairs == 240 && !report.thresholds.isEmpty && !report.importance.isEmpty)
            // What sets the pattern apart leads the importance: how soon after signup (or a signup
            // in the last hour), how shared the device.
            let top = report.importance.prefix(3).map(\.name).joined(separator: " ")
            #expect(
                ["account_age", "seconds_since_signup", "register_1h", "register_24h", "users_sharing_device"].contains {
                    top.contains($0)
                }, "\(top)")

            // The published artifact decodes, scores and explains.
            let (info, bytes) = try await fetchArtifact(model.client, "fraud")
            #expect(info.published && info.kind == .gbdt)
            let classifier = try Classifier.decode(bytes)
            #expect(classifier.features.count > 20 && classifier.target == "fraud")
            let row = [Float](repeating: 0, count: classifier.features.count)
            let (expected, phi) = classifier.explain(row)
            #expect(abs(expected + phi.reduce(0, +) - classifier.margin(row)) < 1e-3)
            #expect((0...1).contains(classifier.probability(row)))
            var corrupted = bytes
            corrupted[corrupted.count / 2] ^= 0xFF
            #expect(throws: Classifier.Corrupt.self) { try Classifier.decode(corrupted) }

            let logistic = try await waitJob(model.client, try await train(model.client, .logistic, name: "fraud-logistic"))
            #expect(logistic.state == .succeeded && logistic.metrics.first { $0.name == "roc_auc" }!.value > 0.85, "\(logistic.metrics)")

            // Segments over the same users' profiles: k given, then chosen by silhouette.
            let segments = try await waitJob(model.client, try await train(model.client, .kmeans, params: ["k": "3"], publish: true))
            #expect(segments.state == .succeeded && segments.name == "segments", "\(segments.message)")
            let (_, segmentBytes) = try await fetchArtifact(model.client, "segments")
            let segmentation = try Segmentation.decode(segmentBytes)
            #expect(segmentation.k == 3 && segmentation.sizes.reduce(0, +) == 1200)
            let (segment, memberships) = segmentation.assign(segmentation.medians[1])
            #expect((0..<3).contains(segment) && abs(memberships.reduce(0, +) - 1) < 1e-4)
            #expect(!segmentation.describe(0).isEmpty)
            // The feature service follows the published segments: profiles carry their
            // segment and memberships without a restart, and SegmentMembers lists them.
            var lookup = GetProfileRequest()
            lookup.userId = 1000
            let deadline = ContinuousClock.now + .seconds(20)
            var profile = try await feature.client.call(FeatureAPI.getProfile, lookup).profile
            while profile?.hasSegment != true && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                profile = try await feature.client.call(FeatureAPI.getProfile, lookup).profile
            }
            let carried = try #require(profile)
            #expect(carried.hasSegment && (0..<3).contains(carried.segmentId) && carried.segmentMemberships.count == 3)
            #expect(abs(carried.segmentMemberships.reduce(0, +) - 1) < 1e-3)
            var members = SegmentMembersRequest()
            members.segmentId = carried.segmentId
            members.pageSize = 2000
            let listed = try await feature.client.call(FeatureAPI.segmentMembers, members).userIds
            #expect(
                listed.contains(1000) && listed.count == segmentation.sizes[Int(carried.segmentId)],
                "\(listed.count) listed, \(segmentation.sizes)")
            let chosen = try await waitJob(model.client, try await train(model.client, .kmeans, name: "segments-auto"))
            #expect(
                chosen.state == .succeeded && (3...8).contains(Int(chosen.metrics.first { $0.name == "k" }?.value ?? 0)),
                "\(chosen.metrics)")
            await #expect { try await train(model.client, .kmeans, params: ["k": "1"]) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument
            }

            var bad = TrainRequest()
            bad.kind = .gbdt
            var p = KeyValue()
            p.key = "depth"
            p.value = "3"
            bad.params = [p]
            await #expect { try await model.client.call(ModelAPI.train, bad) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument && "\($0)".contains("max_depth")
            }
        }
    }

    @Test(
        """
        persona train propensity and churn: users at a cut-off, labelled by the horizon after it; profiles carry the \
        published scores and SegmentMembers lists an audience
        """
    )
    func propensityAndChurn() async throws {
        try await withCoreSuite { ingest, feature, model in
            // Loyal users (odd ids) buy every 6 days for 120 days; lapsed users (even ids) buy
            // in the first 40 days, look once more on day 50 and are gone. One loyal user in
            // ten stops at day 85, so the label is not a copy of the features.
            let day: Int64 = 86_400_000
            var events: [Event] = []
            var rng = SplitMix(seed: 3)
            for user in Int64(1)...400 {
                let loyal = user % 2 == 1
                let stops: Int64 = loyal ? (user % 20 == 1 ? 85 : 121) : 40
                var d = Int64(rng.below(6))
                while d < stops {
                    events.append(view(user, 1 + Int64(rng.below(30)), at: baseMs + d * day))
                    events.append(purchase(user, [1 + Int64(rng.below(30))], at: baseMs + d * day + 60_000, order: "o-\(user)-\(d)"))
                    d += 6
                }
                if !loyal { events.append(view(user, 1, at: baseMs + 50 * day)) }
            }
            try await append(ingest.client, events.sorted { $0.timestampMs < $1.timestampMs })
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)

            let id = try await train(
                model.client, .gbdt, name: "propensity", params: ["target": "propensity", "horizon_days": "30", "trees": "60"],
                publish: true)
            let status = try await waitJob(model.client, id)
            #expect(status.state == .succeeded, "\(status.message)")
            var r = GetReportRequest()
            r.name = "propensity"
            let report = try await model.client.call(ModelAPI.getReport, r)
            let auc = report.metrics.first { $0.name == "roc_auc" }?.value ?? 0
            #expect(auc > 0.85, "\(report.metrics)")
            #expect(report.testPairs == 80 && report.protocol.contains("cut-off"))
            #expect(report.curves.contains { $0.name == "roc" && $0.x.first == 0 && $0.y.last == 1 })
            #expect(
                !report.confusion.isEmpty
                    && report.confusion.allSatisfy { $0.truePositives + $0.falsePositives + $0.falseNegatives + $0.trueNegatives == 80 })
            #expect(report.params.contains { $0.key == "horizon_days" && $0.value == "30" })

            let churn = try await waitJob(
                model.client, try await train(model.client, .logistic, name: "churn", params: ["target": "churn"], publish: true))
            #expect(
                churn.state == .succeeded && (churn.metrics.first { $0.name == "roc_auc" }?.value ?? 0) > 0.85,
                "\(churn.message) \(churn.metrics)")

            // The feature service follows both: a loyal user's propensity is above a lapsed one's, and the other way round for churn.
            func scores(_ user: Int64) async throws -> [String: Float] {
                var lookup = GetProfileRequest()
                lookup.userId = user
                let profile = try await feature.client.call(FeatureAPI.getProfile, lookup).profile
                return Dictionary(profile?.scores.map { ($0.name, $0.probability) } ?? [], uniquingKeysWith: { a, _ in a })
            }
            let deadline = ContinuousClock.now + .seconds(20)
            while try await scores(3).count < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            let loyal = try await scores(3), lapsed = try await scores(4)
            #expect(loyal.count == 2 && lapsed.count == 2, "\(loyal) \(lapsed)")
            #expect(
                loyal["propensity", default: 0] > lapsed["propensity", default: 1]
                    && loyal["churn", default: 1] < lapsed["churn", default: 0], "\(loyal) \(lapsed)")

            // An audience: users with propensity at least 0.5, nearly all of them loyal.
            var audience = SegmentMembersRequest()
            audience.score = "propensity"
            audience.minProbability = 0.5
            audience.pageSize = 1000
            let listed = try await feature.client.call(FeatureAPI.segmentMembers, audience).userIds
            let loyalListed = listed.filter { $0 % 2 == 1 }.count
            #expect(listed.count > 100 && Double(loyalListed) > 0.9 * Double(listed.count), "\(loyalListed) of \(listed.count)")
            audience.score = "loyalty"
            await #expect { try await feature.client.call(FeatureAPI.segmentMembers, audience) } throws: {
                ($0 as? RPCError)?.code == .notFound
            }
        }
    }

    @Test(
        """
        the online model learns labels as they arrive in the log: a new version after every N labels, each learning \
        only the orders new to it, published as a logistic classifier
        """
    )
    func onlineModel() async throws {
        try await withCoreSuite(model: { $0.online(name: "fraud_online", everyLabels: 300, every: .seconds(1)) }) {
            ingest, feature, model in
            var skips = DatasetFormat.Skips()
            let events = DatasetFormat.fraud.events(lines: plantedFraudRows(1200), skips: &skips).sorted { $0.timestampMs < $1.timestampMs }
            let half = events.count / 2
            let firstLabels = events[..<half].filter { $0.kind == .label }.count
            func latest() async throws -> ModelInfo? {
                var r = ListModelsRequest()
                r.name = "fraud_online"
                return try await model.client.call(ModelAPI.listModels, r).models.max { $0.version < $1.version }
            }
            func waitVersion(_ v: UInt32) async throws -> ModelInfo {
                let deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline {
                    if let info = try await latest(), info.version >= v { return info }
                    try await Task.sleep(for: .milliseconds(200))
                }
                throw ServiceError("fraud_online v\(v) not published")
            }
            func metric(_ info: ModelInfo, _ name: String) -> Double? { info.metrics.first { $0.name == name }?.value }

            // One append each: the log holds the whole half before the model counts its labels.
            try await append(ingest.client, Array(events[..<half]), batch: half)
            let first = try await waitVersion(1)
            #expect(first.kind == .ftrl && first.published)
            #expect(
                metric(first, "rows_learned") == Double(firstLabels) && metric(first, "rows_total") == Double(firstLabels),
                "\(first.metrics)")

            try await append(ingest.client, Array(events[half...]), batch: events.count - half)
            let second = try await waitVersion(2)
            let all = events.filter { $0.kind == .label }.count
            #expect(
                metric(second, "rows_learned") == Double(all - firstLabels) && metric(second, "rows_total") == Double(all),
                "\(second.metrics)")
            // Scored before it learned them, the second half's orders are told apart already.
            #expect((metric(second, "progressive_roc_auc") ?? 0) > 0.85, "\(second.metrics)")

            let (info, bytes) = try await fetchArtifact(model.client, "fraud_online")
            #expect(info.version == second.version && info.published)
            let classifier = try Classifier.decode(bytes)
            guard case .logistic = classifier.learner else { Issue.record("the online model is not a logistic classifier"); return }
            #expect(classifier.target == "fraud" && classifier.features.count > 20)
            var r = GetReportRequest()
            r.name = "fraud_online"
            let report = try await model.client.call(ModelAPI.getReport, r)
            #expect(report.protocol.contains("progressive validation") && !report.importance.isEmpty)
            // Nothing new: no new version.
            try await Task.sleep(for: .seconds(2))
            #expect(try await latest()?.version == second.version)
        }
    }
}
