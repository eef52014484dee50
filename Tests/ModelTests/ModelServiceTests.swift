import Foundation
import Ingest
import RPC
import Recommend
import Recommenders
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Model

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// In-process ingest and model services on free ports, stopped after `body` (which also
/// gets the model service's RPC and metrics ports).
func withModelSuite<R>(
    modelDir: String = temporaryDirectory(),
    _ body: (_ ingest: RPCClient, _ model: RPCClient, _ modelPort: Int, _ metricsPort: Int) async throws -> R
) async throws -> R {
    try await withHostedService(IngestService.self, settings: IngestSettings()) { ingest in
        var settings = ModelService.Settings()
        settings.consumer.ingestPort = ingest.rpcPort
        settings.consumer.readWait = .milliseconds(200)
        settings.consumer.snapshotInterval = .seconds(1)
        // No feature service: classifier and segment jobs fail to read rows, as they should.
        settings.featurePort = freePort()
        return try await withHostedService(ModelService.self, settings: settings, dataDir: modelDir) { model in
            try await body(ingest.client, model.client, model.rpcPort, model.metricsPort)
        }
    }
}

@Suite("Model service", .serialized, .timeLimit(.minutes(5)))
struct ModelServiceTests {
    @Test(
        "Train refuses no data (FAILED_PRECONDITION), unknown kinds, parameters, names and ranges (INVALID_ARGUMENT, naming what is valid)")
    func refusals() async throws {
        try await withModelSuite { ingest, model, _, _ in
            await #expect { try await train(model, .als) } throws: {
                ($0 as? RPCError)?.code == .failedPrecondition && "\($0)".contains("no interactions yet")
            }
            try await append(ingest, clusteredShop(users: 20, perUser: 4))
            try await waitConsumed(ingest: ingest, consumer: model)
            await #expect { try await train(model, ModelKind(rawValue: 99)) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument
                    && "\($0)".contains("popularity, item_knn, als, bpr, ease, content, sequence, ranker, gbdt, logistic")
            }
            // A ranker needs published sources to rank, and has no grid to search.
            await #expect { try await train(model, .ranker) } throws: {
                ($0 as? RPCError)?.code == .failedPrecondition && "\($0)".contains("publish some first")
            }
            await #expect { try await train(model, .als, params: ["factorz": "3"]) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument && "\($0)".contains("valid: alpha")
            }
            await #expect { try await train(model, .als, name: "a/b") } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            var empty = TrainRequest()
            empty.kind = .als
            empty.dataFromMs = 10
            empty.dataToMs = 5
            await #expect { try await model.call(ModelAPI.train, empty) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            // A range with no pairs in it: the job fails and says why.
            var late = TrainRequest()
            late.kind = .popularity
            late.dataFromMs = baseMs + 1000 * 86_400_000
            let failed = try await waitJob(model, try await model.call(ModelAPI.train, late).jobId)
            #expect(failed.state == .failed && failed.message.contains("no interactions to train on"))
            var status = JobStatusRequest()
            status.jobId = "nope"
            await #expect { try await model.call(ModelAPI.jobStatus, status) } throws: { ($0 as? RPCError)?.code == .notFound }
        }
    }

    @Test("a trained version is listed, streamed in chunks, published, watched, rolled back, and its report beats popularity")
    func versionLifecycle() async throws {
        try await withModelSuite { ingest, model, _, _ in
            try await append(ingest, clusteredShop(users: 90, itemsPerGroup: 10, groups: 3, perUser: 8))
            try await waitConsumed(ingest: ingest, consumer: model)
            let first = try await waitJob(model, try await train(model, .itemKnn, name: "knn", publish: true))
            #expect(first.state == .succeeded && first.version == 1, "\(first.message)")
            var list = ListModelsRequest()
            list.name = "knn"
            let listed = try await model.call(ModelAPI.listModels, list).models
            #expect(
                listed.count == 1 && listed[0].published && listed[0].kind == .itemKnn && listed[0].interactions > 0
                    && listed[0].logOffsets.count == 4)

            // Streamed in small chunks, the bytes are the artifact its checksum names.
            let (info, bytes) = try await fetchArtifact(model, "knn", chunk: 1000)
            #expect(info.version == 1 && UInt64(bytes.count) == info.artifactBytes && bytes.count > 1000)
            let decoded = try ModelArtifact.decode(bytes)
            #expect(decoded.kind == .itemKNN && decoded.itemIDs.count == Int(info.items))

            // A watcher that knows v1 hears of v2 when it is published.
            let watcher = Task {
                var w = WatchModelsRequest()
                var known = ModelVersion()
                known.name = "knn"
                known.version = 1
                w.known = [known]
                w.waitMs = 20_000
                return try await model.call(ModelAPI.watchModels, w, timeout: .seconds(30))
            }
            let second = try await waitJob(
                model, try await train(model, .itemKnn, name: "knn", params: ["similarity": "cosine"], publish: true))
            #expect(second.version == 2)
            let seen = try await watcher.value
            #expect(seen.published.first { $0.name == "knn" }?.version == 2)
            // With nothing new, the watch returns at its wait with the same versions.
            var quiet = WatchModelsRequest()
            var known = ModelVersion()
            known.name = "knn"
            known.version = 2
            quiet.known = [known]
            quiet.waitMs = 300
            #expect(try await model.call(ModelAPI.watchModels, quiet).published.first?.version == 2)

            var rollback = RollbackModelRequest()
            rollback.name = "knn"
            #expect(try await model.call(ModelAPI.rollback, rollback).info?.version == 1)
            #expect(try await fetchArtifact(model, "knn").0.version == 1)

            var r = GetReportRequest()
            r.name = "knn"
            r.version = 1
            let report = try await model.call(ModelAPI.getReport, r)
            let ndcg = report.metrics.first { $0.name == "ndcg@10" }!.value,
                baseline = report.baseline.first { $0.name == "ndcg@10" }!.value
            #expect(ndcg > baseline)
            #expect(report.curves.contains { $0.name == "ndcg" && $0.x.count > 3 } && report.users > 50)

            var missing = GetModelRequest()
            missing.name = "knn"
            missing.version = 9
            await #expect { try await model.call(ModelAPI.getModel, missing) } throws: { ($0 as? RPCError)?.code == .notFound }
        }
    }

    @Test("the recommend service fetches the published version and swaps in each new one without a restart")
    func recommendFollowsPublished() async throws {
        try await withModelSuite { ingest, model, modelPort, _ in
            try await append(ingest, clusteredShop(users: 40, perUser: 5))
            try await waitConsumed(ingest: ingest, consumer: model)
            var settings = RecommendSettings()
            settings.modelPort = modelPort
            try await withHostedService(RecommendService.self, settings: settings) { recommend in
                _ = try await waitJob(model, try await train(model, .popularity, name: "pop", publish: true))
                try await waitHealth(recommend.client, "models", "pop=1")
                _ = try await waitJob(
                    model, try await train(model, .als, name: "als", params: ["factors": "4", "iterations": "2"], publish: true))
                _ = try await waitJob(
                    model, try await train(model, .popularity, name: "pop", params: ["half_life_days": "7"], publish: true))
                try await waitHealth(recommend.client, "models", "als=1,pop=2")
                // The ranker learns over what recommend serves (the published ALS at its parameters, popularity).
                await #expect { try await train(model, .ranker, search: true) } throws: { ($0 as? RPCError)?.code == .invalidArgument }
                let ranker = try await waitJob(
                    model, try await train(model, .ranker, params: ["trees": "20", "min_rows": "5"], publish: true))
                #expect(ranker.state == .succeeded, "\(ranker.message)")
                try await waitHealth(recommend.client, "models", "als=1,pop=2,ranker=1")
                var r = GetReportRequest()
                r.name = "ranker"
                let report = try await model.call(ModelAPI.getReport, r)
                #expect(report.comparison.map(\.model) == ["ranker", "fixed weights", "als alone", "popularity alone"])
                #expect(report.params.contains { $0.key == "source_factors" && $0.value == "als factors=4 iterations=2" })
            }
        }
    }

    @Test("a job cancelled mid-fit stops and adds no version; calls answer while it trains")
    func cancelMidJob() async throws {
        try await withModelSuite { ingest, model, _, _ in
            try await append(ingest, clusteredShop(users: 60, perUser: 6))
            try await waitConsumed(ingest: ingest, consumer: model)
            let id = try await train(model, .bpr, name: "slow", params: ["iterations": "10000", "factors": "8"])
            let running = try await waitJob(model, id, until: [.running])
            #expect(running.state == .running)
            // The service answers other calls while the job runs, and the job reports progress.
            var during = running
            let deadline = ContinuousClock.now + .seconds(30)
            while !during.message.contains("BPR iteration"), ContinuousClock.now < deadline {
                _ = try await model.call(HealthAPI.check, HealthRequest(), timeout: .seconds(10))
                try await Task.sleep(for: .milliseconds(50))
                during = try await waitJob(model, id, until: [.running])
            }
            #expect(during.progress > 0 && during.message.contains("BPR iteration"), "\(during.message)")
            var cancel = CancelJobRequest()
            cancel.jobId = id
            _ = try await model.call(ModelAPI.cancelJob, cancel)
            let ended = try await waitJob(model, id, timeout: .seconds(30))
            #expect(ended.state == .cancelled)
            var list = ListModelsRequest()
            list.name = "slow"
            #expect(try await model.call(ModelAPI.listModels, list).models.isEmpty)
        }
    }

    @Test("an artifact corrupted on disk is refused with DATA_LOSS, never served or published")
    func corruptArtifact() async throws {
        let dir = temporaryDirectory()
        try await withModelSuite(modelDir: dir) { ingest, model, _, metricsPort in
            try await append(ingest, clusteredShop(users: 30, perUser: 5))
            try await waitConsumed(ingest: ingest, consumer: model)
            let done = try await waitJob(model, try await train(model, .popularity, name: "pop"))
            #expect(done.state == .succeeded)
            let path = dir + "/registry/pop/v1.model"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count / 2] ^= 0x10
            try bytes.write(to: URL(fileURLWithPath: path))
            var get = GetModelRequest()
            get.name = "pop"
            get.version = 1
            await #expect { try await model.call(ModelAPI.getModel, get) } throws: { ($0 as? RPCError)?.code == .dataLoss }
            var publish = PublishModelRequest()
            publish.name = "pop"
            publish.version = 1
            await #expect { try await model.call(ModelAPI.publish, publish) } throws: { ($0 as? RPCError)?.code == .dataLoss }
            let (metrics, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metricsPort)/metrics")!)
            let text = String(decoding: metrics, as: UTF8.self)
            #expect(
                text.contains("persona_model_corrupt_artifacts_total 2"),
                "\(text.split(separator: "\n").filter { $0.hasPrefix("persona_model") })")
            #expect(text.contains("persona_model_jobs_total{kind=\"popularity\",state=\"succeeded\"} 1"))
        }
    }
}
