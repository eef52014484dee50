import Feature
import Foundation
import Ingest
import Math
import Model
import RPC
import Recommenders
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Recommend

@Suite("Sequence recommender", .serialized, .timeLimit(.minutes(4)))
struct SequenceTests {
    /// 80 users walking a ring of eight items (201, 202, ... 208, 201, ...) from a start of
    /// their own, one view a minute: the next item after each is always the one after it.
    func walks() -> [Event] {
        var rng = SplitMix(seed: 4)
        var events: [Event] = []
        for u in 1...80 {
            let start = rng.below(8), steps = 4 + rng.below(3)
            for s in 0..<steps {
                events.append(view(Int64(u), Int64(201 + (start + s) % 8), at: baseMs + Int64(u * 3_600_000 + s * 60_000), category: 20))
            }
        }
        return events
    }

    @Test(
        """
        persona train sequence: a report beside ALS, item-kNN and popularity by leave-last-out; recommend answers \
        the next item after the user's latest views, and a new view changes the answer at once
        """
    )
    func sequenceEndToEnd() async throws {
        try await withRecommendSuite { ingest, feature, model, recommend in
            try await append(ingest.client, walks())
            try await waitConsumed(ingest: ingest.client, consumer: model.client)
            let params = [
                "dim": "16", "max_length": "8", "blocks": "1", "epochs": "80", "patience": "80", "batch": "16", "learning_rate": "0.01",
                "dropout": "0.1",
            ]
            let id = try await train(model.client, .sequence, params: params, publish: true)
            let status = try await waitJob(model.client, id)
            #expect(status.state == .succeeded && status.name == "sequence", "\(status.message)")
            var r = GetReportRequest()
            r.name = "sequence"
            let report = try await model.client.call(ModelAPI.getReport, r)
            #expect(report.kind == .sequence && report.protocol.hasPrefix("per user, their latest steps in log order"))
            #expect(report.comparison.map(\.model) == ["sequence", "als", "item_knn", "popularity"])
            func ndcg(_ c: Comparison) -> Double { c.metrics.first { $0.name == "ndcg@10" }?.value ?? -1 }
            // Every held-out item follows from the one before: the sequence model finds most.
            #expect(
                ndcg(report.comparison[0]) > 0.6 && ndcg(report.comparison[0]) > ndcg(report.comparison[3]),
                "\(report.comparison.map { "\($0.model) \(ndcg($0))" })")
            #expect(report.curves.first { $0.name == "loss" }.map { $0.y.last! < $0.y.first! } == true)
            let (_, bytes) = try await fetchArtifact(model.client, "sequence")
            let published = try ModelArtifact.decode(bytes)
            #expect(published.kind == .sequence && published.sequence?.shape == SASRec.Shape(items: 8, dim: 16, maxLength: 8, blocks: 1))
            try await waitHealth(recommend.client, "models", "sequence=1")

            // A new user views 201, 202, 203: 204 comes next, named by the last two.
            try await append(
                ingest.client,
                [201, 202, 203].enumerated().map { view(9000, $1, at: baseMs + 400_000_000 + Int64($0) * 60_000, category: 20) })
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            var request = RecommendRequest()
            request.userId = 9000
            request.n = 3
            request.explain = true
            let first = try await recommend.client.call(RecommendAPI.recommend, request)
            #expect(
                first.items.first?.itemId == 204 && first.items.first?.reason == "next after 202, 203"
                    && first.items.first?.source == "sequence",
                "\(first.items.map { "\($0.itemId): \($0.reason) (\($0.source))" })")
            // One more view, of 206: the answer moves to 207 without a retrain.
            try await append(ingest.client, [view(9000, 206, at: baseMs + 400_300_000, category: 20)])
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            let second = try await recommend.client.call(RecommendAPI.recommend, request)
            #expect(
                second.items.first?.itemId == 207 && second.items.first?.reason == "next after 203, 206",
                "\(second.items.map { "\($0.itemId): \($0.reason)" })")
        }
    }
}
