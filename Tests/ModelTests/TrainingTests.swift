import Foundation
import Math
import Recommenders
import TestSupport
import Testing
import Wire

@testable import Model

@Suite("Recommender training")
struct TrainingTests {
    @Test("ALS recovers a planted low-rank matrix: held-out strong cells outrank weak ones")
    func alsRecoversLowRank() throws {
        // R = U·Vᵀ with 3 non-negative factors; a user interacts with an item when R is high,
        // and a quarter of those cells are held out.
        var rng = SplitMix(seed: 3)
        let users = 80, items = 50, rank = 3
        let u = (0..<users * rank).map { _ in rng.unit() < 0.35 ? 1.0 : 0.0 }
        let v = (0..<items * rank).map { _ in rng.unit() < 0.3 ? 1.0 : 0.0 }
        var triples: [(row: Int32, col: Int32, value: Float)] = []
        var heldOut: [(Int, Int)] = [], weak: [(Int, Int)] = []
        for a in 0..<users {
            for b in 0..<items {
                let r = (0..<rank).reduce(0.0) { $0 + u[a * rank + $1] * v[b * rank + $1] }
                if r >= 1 {
                    if rng.unit() < 0.25 { heldOut.append((a, b)) } else { triples.append((Int32(a), Int32(b), 1)) }
                } else {
                    weak.append((a, b))
                }
            }
        }
        let matrix = SparseMatrix(rows: users, cols: items, triples: triples)
        let data = Interactions(
            userIDs: (1...users).map(Int64.init), itemIDs: (1...items).map(Int64.init), itemCategories: Array(repeating: 0, count: items),
            matrix: matrix,
            times: Array(repeating: 0, count: matrix.nonZeros))
        let model = try Trainer.train(
            try parameters(.als, ["factors": "8", "iterations": "15", "regularization": "0.05", "alpha": "10"]), data)
        func score(_ a: Int, _ b: Int) -> Float { Vec.dot(model.users!.row(a), model.items!.row(b)) }
        // AUC of held-out strong cells against cells with no planted signal.
        var wins = 0, total = 0
        for (a, b) in heldOut.prefix(300) {
            for _ in 0..<20 {
                let (c, d) = weak[rng.below(weak.count)]
                total += 1
                if score(a, b) > score(c, d) { wins += 1 }
            }
        }
        let auc = Double(wins) / Double(total)
        #expect(heldOut.count > 50)
        #expect(auc > 0.9, "AUC of held-out planted cells: \(auc)")
    }

    @Test("EASE equals a plain closed-form reference on a small matrix")
    func easeMatchesReference() throws {
        let data = interactions(clusteredShop(users: 30, itemsPerGroup: 5, groups: 2, perUser: 6))
        let lambda = 5.0
        let model = try Trainer.train(try parameters(.ease, ["lambda": "\(lambda)", "min_users": "1"]), data)
        // Reference: G = XᵀX + λI by loops, inverted by Gauss-Jordan, B = −P/diag.
        let n = data.items
        var g = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for u in 0..<data.users {
            let range = data.matrix.rowStart[u]..<data.matrix.rowStart[u + 1]
            for a in range {
                for b in range {
                    g[Int(data.matrix.indices[a])][Int(data.matrix.indices[b])] += Double(data.matrix.values[a] * data.matrix.values[b])
                }
            }
        }
        for i in 0..<n { g[i][i] += lambda }
        var inv = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for c in 0..<n {
            let pivot = g[c][c]
            for j in 0..<n {
                g[c][j] /= pivot
                inv[c][j] /= pivot
            }
            for r in 0..<n where r != c {
                let f = g[r][c]
                for j in 0..<n {
                    g[r][j] -= f * g[c][j]
                    inv[r][j] -= f * inv[c][j]
                }
            }
        }
        let w = model.itemItem!
        for j in 0..<n {
            var row = [Float](repeating: 0, count: n)
            for e in w.rowStart[j]..<w.rowStart[j + 1] { row[Int(w.indices[e])] = w.values[e] }
            for i in 0..<n {
                let expected = i == j ? 0 : -inv[j][i] / inv[i][i]
                #expect(abs(Double(row[i]) - expected) < 1e-4, "B[\(j), \(i)] = \(row[i]), expected \(expected)")
            }
        }
    }

    @Test("item-kNN cosine equals plain cosine similarities, top-K per item")
    func knnMatchesReference() throws {
        let data = interactions(clusteredShop(users: 40, itemsPerGroup: 6, groups: 2, perUser: 5))
        let k = 4
        let model = try Trainer.train(try parameters(.itemKNN, ["similarity": "cosine", "neighbors": "\(k)"]), data)
        let n = data.items
        var columns = [[Float]](repeating: [Float](repeating: 0, count: data.users), count: n)
        for u in 0..<data.users {
            for e in data.matrix.rowStart[u]..<data.matrix.rowStart[u + 1] {
                columns[Int(data.matrix.indices[e])][u] = data.matrix.values[e]
            }
        }
        func cosine(_ a: [Float], _ b: [Float]) -> Float {
            var d: Float = 0, na: Float = 0, nb: Float = 0
            for (x, y) in zip(a, b) {
                d += x * y
                na += x * x
                nb += y * y
            }
            return na * nb == 0 ? 0 : d / (na * nb).squareRoot()
        }
        func ranked(_ list: [(Int, Float)]) -> [(Int, Float)] {
            list.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        }
        let w = model.itemItem!
        for i in 0..<n {
            let similar: [(Int, Float)] = (0..<n).filter { $0 != i }.map { ($0, cosine(columns[i], columns[$0])) }
            let expected = ranked(similar.filter { $0.1 > 0 }).prefix(k)
            let got = ranked((w.rowStart[i]..<w.rowStart[i + 1]).map { (Int(w.indices[$0]), w.values[$0]) })
            #expect(got.count == expected.count, "item \(i)")
            for (g, e) in zip(got, expected) {
                #expect(abs(g.1 - e.1) < 1e-4, "item \(i): similarity \(g) against \(e)")
            }
        }
    }

    @Test("ranking metrics on a hand-computed case")
    func metricsByHand() {
        // User 0 holds out {1, 3}; ranked [1, 2, 3]: hits at ranks 1 and 3.
        // User 1 holds out {5}; ranked [4, 6, 7]: no hit. User 2 has no test set.
        let lists: [[Int32]] = [[1, 2, 3], [4, 6, 7], [9]]
        let test: [[Int32]] = [[1, 3], [5], []]
        let m = RankingMetrics.evaluate(lists: lists, test: test, catalogue: 10, ks: [3])[0]
        #expect(m.users == 2)
        #expect(abs(m.precision - (2.0 / 3 + 0) / 2) < 1e-12)
        #expect(abs(m.recall - (1.0 + 0) / 2) < 1e-12)
        #expect(abs(m.hitRate - 0.5) < 1e-12)
        let dcg = 1 + 1 / log2(4.0), ideal = 1 + 1 / log2(3.0)
        #expect(abs(m.ndcg - dcg / ideal / 2) < 1e-12)
        // AP = (1/1 + 2/3) / min(3, 2)
        #expect(abs(m.map - (1 + 2.0 / 3) / 2 / 2) < 1e-12)
        #expect(abs(m.coverage - 6.0 / 10) < 1e-12)
    }

    @Test(
        "every kind beats random and the popularity baseline on a shop with tastes",
        arguments: RecommenderModel.Kind.allCases.filter { $0 != .popularity && $0 != .ranker })
    func kindsLearn(kind: RecommenderModel.Kind) throws {
        let data = interactions(clusteredShop(users: 90, itemsPerGroup: 10, groups: 3, perUser: 8))
        let (train, test) = data.splitByTime()
        let small: [String: String] =
            switch kind {
            case .als: ["factors": "8", "iterations": "8"]
            case .bpr: ["factors": "8", "iterations": "30"]
            case .sequence: ["dim": "16", "learning_rate": "0.01", "max_length": "10", "blocks": "1", "batch": "16", "patience": "10"]
            default: [:]
            }
        let model = try Trainer.train(try parameters(kind, small.merging(kind == .ease ? ["min_users": "1"] : [:]) { a, _ in a }), train)
        let baseline = try Trainer.train(try parameters(.popularity), train)
        let m = RankingMetrics.evaluate(lists: model.rankings(train: train, test: test, n: 5), test: test, catalogue: data.items, ks: [5])[
            0]
        let b = RankingMetrics.evaluate(
            lists: baseline.rankings(train: train, test: test, n: 5), test: test, catalogue: data.items, ks: [5])[0]
        #expect(m.users > 50)
        #expect(m.ndcg > b.ndcg, "\(kind.rawValue) ndcg@5 \(m.ndcg) against popularity \(b.ndcg)")
        #expect(m.hitRate > 0.5, "\(kind.rawValue) hit rate \(m.hitRate)")
    }

    @Test("popularity, global and per category")
    func popularityPerCategory() throws {
        var events = [
            view(1, 10, at: baseMs, category: 7), view(2, 10, at: baseMs + 1, category: 7), view(1, 11, at: baseMs + 2, category: 8),
        ]
        events += [
            view(3, 11, at: baseMs + 3, category: 8), view(4, 11, at: baseMs + 4, category: 8), view(3, 12, at: baseMs + 5, category: 7),
        ]
        let data = interactions(events)
        let model = try Trainer.train(try parameters(.popularity), data)
        func ids(_ entries: [TopK.Entry]) -> [Int64] { entries.map { data.itemIDs[Int($0.index)] } }
        #expect(ids(model.popular(n: 3)) == [11, 10, 12])
        #expect(ids(model.popular(category: 7, n: 5)) == [10, 12])
        #expect(model.popular(category: 99, n: 5).isEmpty)
    }

    @Test("the same seed gives the same model, bit for bit", arguments: [RecommenderModel.Kind.als, .bpr, .sequence])
    func sameSeedSameModel(kind: RecommenderModel.Kind) throws {
        let data = interactions(clusteredShop(users: 30, perUser: 5))
        let p = try parameters(
            kind, kind == .sequence ? ["dim": "8", "epochs": "3", "max_length": "6"] : ["factors": "4", "iterations": "3"])
        let a = ModelArtifact.encode(try Trainer.train(p, data)), b = ModelArtifact.encode(try Trainer.train(p, data))
        #expect(a == b)
        let c = ModelArtifact.encode(try Trainer.train(try p.with(["seed": "7"]), data))
        #expect(a != c)
    }

    @Test("artifacts round-trip bit-exactly and score the same", arguments: RecommenderModel.Kind.allCases.filter { $0 != .ranker })
    func artifactRoundTrip(kind: RecommenderModel.Kind) throws {
        let data = interactions(clusteredShop(users: 30, perUser: 5))
        let small =
            kind == .als || kind == .bpr
            ? ["factors": "4", "iterations": "2"]
            : (kind == .ease ? ["min_users": "1"] : kind == .sequence ? ["dim": "8", "epochs": "3"] : [:])
        let model = try Trainer.train(try parameters(kind, small), data)
        let bytes = ModelArtifact.encode(model)
        let decoded = try ModelArtifact.decode(bytes)
        #expect(ModelArtifact.encode(decoded) == bytes)
        let history: [(item: Int32, value: Float)] = [(0, 1), (3, 2)]
        #expect(model.recommend(user: 0, history: history, n: 10) == decoded.recommend(user: 0, history: history, n: 10))
    }

    @Test(
        """
        the ranker learns over its sources' candidates on a validation period: at least as good as the fixed blend and \
        the best source alone on held-out users, reported beside them, its artifact round-trips
        """
    )
    func rankerLearns() throws {
        let data = interactions(clusteredShop(users: 150, itemsPerGroup: 12, groups: 3, perUser: 10, noise: 0.2))
        let sources = try [
            RankerRun.Source(parameters(.als, ["factors": "8", "iterations": "6"])), RankerRun.Source(parameters(.itemKNN)),
            RankerRun.Source(parameters(.popularity)),
        ]
        let p = try parameters(.ranker, ["trees": "60", "min_rows": "5", "leaves": "7"])
        let outcome = try RankerRun.run(p, sources: sources, data: data, progress: TrainingProgress())
        func ndcg(_ row: String) -> Double {
            outcome.report.comparison.first { $0.model == row }!.metrics.first { $0.name == "ndcg@10" }!.value
        }
        #expect(outcome.report.comparison.map(\.model) == ["ranker", "fixed weights", "als alone", "item_knn alone", "popularity alone"])
        let best = max(ndcg("als alone"), ndcg("item_knn alone"), ndcg("popularity alone"))
        #expect(ndcg("ranker") >= ndcg("fixed weights") - 0.02 && ndcg("ranker") >= best - 0.03, "\(outcome.report.comparison)")
        #expect(ndcg("ranker") > ndcg("popularity alone") + 0.05)
        #expect(outcome.report.params.contains { $0.key == "source_factors" && $0.value.hasPrefix("als") })
        let model = outcome.model
        #expect(model.kind == .ranker && model.rankerFeatures == Ranking.featureNames && (model.ranker?.trees.count ?? 0) > 0)
        let bytes = ModelArtifact.encode(model)
        let decoded = try ModelArtifact.decode(bytes)
        #expect(decoded.ranker?.trees == model.ranker?.trees && ModelArtifact.encode(decoded) == bytes)
        // Its own kind cannot be a source, and it is not fitted alone.
        #expect(throws: TrainingRun.NoData.self) { try RankerRun.Source(p) }
        #expect(throws: TrainingRun.NoData.self) { try Trainer.train(p, data) }
    }

    @Test("a flipped byte anywhere in an artifact is refused")
    func flippedByteRefused() throws {
        let model = try Trainer.train(try parameters(.itemKNN), interactions(clusteredShop(users: 20, perUser: 4)))
        let bytes = ModelArtifact.encode(model)
        var rng = SplitMix(seed: 5)
        for _ in 0..<50 {
            var corrupt = bytes
            let at = rng.below(corrupt.count)
            corrupt[at] ^= UInt8(1 << rng.below(8))
            #expect(throws: ModelArtifact.Corrupt.self, "byte \(at)") { try ModelArtifact.decode(corrupt) }
        }
        #expect(throws: ModelArtifact.Corrupt.self) { try ModelArtifact.decode(Array(bytes.prefix(bytes.count / 2))) }
        #expect(throws: ModelArtifact.Corrupt.self) { try ModelArtifact.decode([]) }
    }

    @Test("parameters: unknown names and bad values are refused, naming what is valid")
    func parameterChecks() throws {
        #expect { try parameters(.als, ["factor": "8"]) } throws: { "\($0)".contains("valid: alpha, cg_steps, confidence, factors") }
        #expect { try parameters(.als, ["factors": "0"]) } throws: { "\($0)".contains("factors") }
        #expect { try parameters(.itemKNN, ["similarity": "jaccard"]) } throws: { "\($0)".contains("cosine, bm25") }
        #expect { try parameters(.als, ["confidence": "log"]) } throws: { "\($0)".contains("relative, linear") }
        #expect(try parameters(.bpr).int("iterations") == 100)
        #expect(try parameters(.als, ["weight_purchase": "9"]).weights.purchase == 9)
    }

    @Test("time decay halves a pair's value every half-life")
    func timeDecay() {
        let events = [view(1, 10, at: baseMs), view(1, 11, at: baseMs + 10 * 86_400_000)]
        let decayed = interactions(events, weights: InteractionWeights(halfLifeDays: 10))
        let values = Dictionary(uniqueKeysWithValues: zip(decayed.matrix.indices.map { decayed.itemIDs[Int($0)] }, decayed.matrix.values))
        #expect(abs(values[10]! - 0.5) < 1e-6)
        #expect(abs(values[11]! - 1) < 1e-6)
    }

    @Test("the time split holds out each user's latest 20%, at least one, and leaves single-item users in training")
    func timeSplit() {
        var events: [Event] = []
        for n in 0..<10 { events.append(view(1, Int64(100 + n), at: baseMs + Int64(n) * 1000)) }
        events.append(view(2, 100, at: baseMs))
        events.append(view(3, 100, at: baseMs))
        events.append(view(3, 101, at: baseMs + 5))
        let data = interactions(events)
        let (train, test) = data.splitByTime()
        let u1 = data.userIDs.firstIndex(of: 1)!, u2 = data.userIDs.firstIndex(of: 2)!, u3 = data.userIDs.firstIndex(of: 3)!
        #expect(Set(test[u1].map { data.itemIDs[Int($0)] }) == [108, 109])
        #expect(test[u2].isEmpty && train.matrix.row(u2).indices.count == 1)
        #expect(test[u3].map { data.itemIDs[Int($0)] } == [101])
        #expect(train.pairs + test.reduce(0) { $0 + $1.count } == data.pairs)
    }

    @Test("the period split cuts every user at one moment: what they met after it is held out; users new after it are not tested")
    func periodSplit() {
        var events: [Event] = []
        for n in 0..<10 { events.append(view(1, Int64(100 + n), at: baseMs + Int64(n) * 1000)) }
        events.append(view(2, 100, at: baseMs))
        events.append(view(3, 105, at: baseMs + 9000))
        events.append(view(4, 101, at: baseMs))
        events.append(view(4, 102, at: baseMs + 9000))
        let data = interactions(events)
        let (train, test) = data.splitByPeriod()
        func held(_ user: Int64) -> [Int64] { test[data.userIDs.firstIndex(of: user)!].map { data.itemIDs[Int($0)] } }
        #expect(held(1) == [109] && held(2).isEmpty && held(3).isEmpty && held(4) == [102])
        #expect(train.matrix.row(data.userIDs.firstIndex(of: 3)!).indices.count == 1)
        #expect(train.pairs + test.reduce(0) { $0 + $1.count } == data.pairs)
    }

    @Test("the search validates on a later period, or on each user's latest pairs when the period tests too few")
    func searchSplit() {
        var events: [Event] = []
        // User u is active from second 2u to 2u + 48: the early ones end before the period cut.
        for u in 0..<20 {
            for n in 0..<5 { events.append(view(Int64(u + 1), Int64(100 + n), at: baseMs + Int64(u * 2 + n * 12) * 1000)) }
        }
        let spread = interactions(events)
        let (_, period) = TrainingRun.searchSplit(.als, spread)
        #expect(period == spread.splitByPeriod().test && period != spread.splitByTime().test)
        // Every event at one moment: the period split tests nobody, so each user's latest pairs are used.
        let flat = interactions(
            events.map { e in
                var e = e
                e.timestampMs = baseMs
                return e
            })
        #expect(flat.splitByPeriod().test.allSatisfy { $0.isEmpty })
        #expect(TrainingRun.searchSplit(.als, flat).test == flat.splitByTime().test)
        #expect(TrainingRun.searchSplit(.sequence, spread).test == spread.leaveLastOut().test)
    }

    @Test("a search keeps the grid point with the best validation NDCG and reports every candidate")
    func search() throws {
        let data = interactions(clusteredShop(users: 60, perUser: 6))
        let outcome = try TrainingRun.run(try parameters(.itemKNN), data: data, search: true, progress: TrainingProgress())
        #expect(outcome.report.search.count == 6)
        let best = outcome.report.search.max { $0.y[0] < $1.y[0] }!
        for pair in best.name.split(separator: " ") {
            let kv = pair.split(separator: "=")
            #expect(outcome.parameters.values[String(kv[0])] == String(kv[1]))
        }
        #expect(outcome.report.metrics.contains { $0.name == "ndcg@10" } && outcome.report.baseline.count == outcome.report.metrics.count)
    }

    @Test("training on no data fails with a message a person understands; cancel stops a fit")
    func noDataAndCancel() throws {
        let empty = interactions([])
        #expect { try TrainingRun.run(try parameters(.als), data: empty, search: false, progress: TrainingProgress()) } throws: {
            "\($0)".contains("no interactions to train on")
        }
        let progress = TrainingProgress()
        progress.cancel()
        #expect(throws: TrainingProgress.Cancelled.self) {
            try Trainer.train(
                try parameters(.als, ["factors": "4"]), interactions(clusteredShop(users: 20, perUser: 4)), progress: progress)
        }
    }
}
