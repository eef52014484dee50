import Foundation
import Math
public import Recommenders
import Wire

/// The ranker kind's job: learn how to rank the other kinds' candidates together, on a
/// validation period, instead of summing them with fixed weights.
///
/// 1. Split the data at one moment for every user (the last fifth of the pairs' times: the
///    evaluation period), and the training part again (the validation period), as a shop
///    lives it: the items users meet after the cut are what the ranker is judged and taught on.
/// 2. Fit each source (the kinds recommend serves, at their published parameters) on what
///    precedes the validation period; every validation user's candidates are each source's
///    best `pool` items, with `Ranking`'s features; an item the user met in the validation
///    period is relevant.
/// 3. LambdaMART (`BoostedTrees.trainRanker`) on those groups, with a fifth of the users
///    held out to stop early on their NDCG@K.
/// 4. Evaluate: the sources fitted on the whole training part, the ranker ranking the test
///    users' candidates, beside the fixed-weight blend and each source alone on the same
///    candidates; the report carries them all.
/// 5. Publish the ranker learned again over those sources, with the held-out part (the
///    data's end) as its validation period.
public enum RankerRun {
    /// One source: its role, and the kind and parameters it is fitted with.
    public struct Source: Sendable {
        public var role: Ranking.Role
        public var parameters: TrainingParameters

        public init(_ parameters: TrainingParameters) throws {
            guard let role = Ranking.Role(parameters.kind) else {
                throw TrainingRun.NoData(description: "a ranker cannot rank its own kind")
            }
            self.role = role
            self.parameters = parameters
        }

        /// The kind and the parameters it changes from the defaults (`als factors=4`).
        var described: String {
            let defaults = (try? TrainingParameters(kind: parameters.kind)) ?? parameters
            return ([parameters.kind.rawValue, TrainingRun.changed(from: defaults, to: parameters)].filter { !$0.isEmpty }).joined(
                separator: " ")
        }
    }

    /// Users' candidate groups: their rows of `Ranking.featureNames`, relevance, the items
    /// (dense indices of the interactions) and the fixed blend's score of each row.
    struct Groups {
        var rows: [Float] = []
        var relevance: [Float] = []
        var starts = [0]
        var items: [Int32] = []
        var fixed: [Float] = []
        /// The user (row of the interactions) of each group.
        var users: [Int] = []

        var count: Int { users.count }

        /// Groups `range` of these, renumbered.
        func slice(_ picked: [Int]) -> Groups {
            var out = Groups()
            let d = Ranking.featureNames.count
            for g in picked {
                let r = starts[g]..<starts[g + 1]
                out.rows += rows[(r.lowerBound * d)..<(r.upperBound * d)]
                out.relevance += relevance[r]
                out.items += items[r]
                out.fixed += fixed[r]
                out.starts.append(out.relevance.count)
                out.users.append(users[g])
            }
            return out
        }

        /// Each user's items best first by `score` of their rows (a list per user of `users`).
        func lists(users: Int, score: (Int) -> Float) -> [[Int32]] {
            var out = [[Int32]](repeating: [], count: users)
            for g in 0..<count {
                let r = starts[g]..<starts[g + 1]
                out[self.users[g]] = r.map { ($0, score($0)) }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : items[$0.0] < items[$1.0] }.map {
                    items[$0.0]
                }
            }
            return out
        }
    }

    /// The sources fitted on `data` (each with the catalogue the content kind reads).
    static func fit(_ sources: [Source], _ data: Interactions, catalogue: [Int64: ItemDocument], progress: TrainingProgress) throws
        -> [(Ranking.Role, RecommenderModel)]
    {
        try sources.map { s in
            try progress.check()
            progress.report(0, "fitting \(s.parameters.kind.rawValue) as the \(s.role.name) source")
            return (s.role, try Trainer.train(s.parameters, data, catalogue: catalogue))
        }
    }

    /// The candidate groups of every user with held-out items in `test`: each fitted source's
    /// `pool` best items the user did not meet in `train`, scaled as recommend scales them.
    static func groups(_ fitted: [(Ranking.Role, RecommenderModel)], train: Interactions, test: [[Int32]], pool: Int) -> Groups {
        var out = Groups()
        let m = train.matrix
        let popularity = Trainer.popularity(train)
        var scores: [Float] = []
        // Each source's items as the interactions' dense indices (content knows more items).
        let trainIndex = Dictionary(uniqueKeysWithValues: train.itemIDs.enumerated().map { ($1, Int32($0)) })
        let toTrain: [[Int32]] = fitted.map { _, model in
            model.itemIDs == train.itemIDs ? [] : model.itemIDs.map { trainIndex[$0] ?? -1 }
        }
        for u in 0..<train.users where !test[u].isEmpty {
            let range = m.rowStart[u]..<m.rowStart[u + 1]
            let met = Set(range.map { m.indices[$0] })
            // What recommend reads of a user besides their factor row: their latest items, as
            // many as the feature service's recent lists hold.
            let latest = train.timeOrder(u).suffix(Ranking.historyCap)
            let pairs = latest.map { (item: m.indices[$0], value: m.values[$0]) }
            let recent = Set(pairs.map(\.item))
            var offers: [Int32: Ranking.Offers] = [:]
            for (s, (role, model)) in fitted.enumerated() {
                let map = toTrain[s]
                let own: [(item: Int32, value: Float)] =
                    map.isEmpty ? pairs : pairs.compactMap { p in model.itemIndex[train.itemIDs[Int(p.item)]].map { ($0, p.value) } }
                let history =
                    role == .sequence ? train.sequence(u).suffix(Ranking.historyCap).map { (item: $0, value: Float(1)) } : own
                model.score(user: model.userIndex[train.userIDs[u]], history: history, into: &scores)
                let top = TopK.select(scores, k: pool) { i in
                    let t = map.isEmpty ? Int32(i) : map[i]
                    return t < 0 || met.contains(t) || !scores[i].isFinite
                }
                let values = top.map(\.score)
                guard let scaled = role == .sequence ? Ranking.byRange(values) : Ranking.byBest(values) else { continue }
                for (rank, e) in top.enumerated() {
                    let t = map.isEmpty ? e.index : map[Int(e.index)]
                    offers[t, default: Ranking.Offers()].add(role, score: scaled[rank], rank: rank)
                }
            }
            guard !offers.isEmpty else { continue }
            var perCategory: [Int64: Int] = [:]
            for i in recent { perCategory[train.itemCategories[Int(i)], default: 0] += 1 }
            let held = Set(test[u])
            for (item, o) in offers.sorted(by: { $0.key < $1.key }) {
                let share = Float(perCategory[train.itemCategories[Int(item)]] ?? 0) / Float(max(1, recent.count))
                out.rows += Ranking.row(o, popularity: popularity[Int(item)], history: recent.count, categoryShare: share)
                out.relevance.append(held.contains(item) ? 1 : 0)
                out.items.append(item)
                out.fixed.append(o.blended(\.defaultWeight))
            }
            out.starts.append(out.relevance.count)
            out.users.append(u)
        }
        return out
    }

    /// The ranker learned from `fitted` sources (fitted on `train`) over the candidates of
    /// the users with items in `validation` (the period after `train`), stopped early on a
    /// fifth of them.
    static func learn(
        _ p: TrainingParameters, _ fitted: [(Ranking.Role, RecommenderModel)], train: Interactions, validation: [[Int32]],
        progress: TrainingProgress
    ) throws -> RecommenderModel {
        progress.report(0.5, "ranking the validation period's candidates")
        let all = groups(fitted, train: train, test: validation, pool: p.int("pool"))
        // Groups with a relevant candidate teach; at most max_users of them, chosen by a seeded shuffle.
        var teaching = (0..<all.count).filter { g in all.relevance[all.starts[g]..<all.starts[g + 1]].contains { $0 > 0 } }
        var rng = SplitMix(seed: UInt64(p.int("seed")))
        for i in stride(from: teaching.count - 1, to: 0, by: -1) { teaching.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        teaching = Array(teaching.prefix(p.int("max_users")))
        guard teaching.count >= 10 else {
            throw TrainingRun.NoData(
                description:
                    "only \(teaching.count) users met a candidate of the sources in the validation period: a ranker needs at least 10")
        }
        let held = teaching.count / 5
        let fit = all.slice(Array(teaching[held...])), stop = all.slice(Array(teaching[..<held]))
        var trees = BoostedTrees.Parameters()
        trees.trees = p.int("trees")
        trees.learningRate = p.float("learning_rate")
        trees.maxLeaves = p.int("leaves")
        trees.minRowsInLeaf = p.int("min_rows")
        trees.l2 = 0.1
        trees.earlyStoppingRounds = 30
        progress.report(0.6, "learning the ranker on \(fit.count) users' \(fit.relevance.count) candidates")
        let ranker = BoostedTrees.trainRanker(
            rows: fit.rows, relevance: fit.relevance, groups: fit.starts, features: Ranking.featureNames.count, k: p.k, parameters: trees,
            validation: held > 0 ? (stop.rows, stop.relevance, stop.starts) : nil
        ) { round in
            progress.report(0.6 + 0.4 * Double(round) / Double(trees.trees), "ranker tree \(round)")
            return !progress.isCancelled
        }
        try progress.check()
        var model = RecommenderModel(kind: .ranker, itemIDs: [], itemCategories: [], popularity: [])
        model.ranker = ranker
        model.rankerFeatures = Ranking.featureNames
        model.index()
        return model
    }

    public static func run(
        _ p: TrainingParameters, sources: [Source], data: Interactions, catalogue: [Int64: ItemDocument] = [:], progress: TrainingProgress
    ) throws -> TrainingRun.Outcome {
        let start = ContinuousClock.now
        try TrainingRun.requireData(data)
        let k = p.k
        let (train, test) = data.splitByPeriod()
        let (inner, validation) = train.splitByPeriod()
        progress.step(from: 0, width: 0.4)
        let fitStart = ContinuousClock.now
        let evaluated = try learn(
            p, try fit(sources, inner, catalogue: catalogue, progress: progress), train: inner, validation: validation, progress: progress)
        let fitSeconds = fitStart.duration(to: .now) / .seconds(1)
        progress.step(from: 0.4, width: 0.4)
        let fitted = try fit(sources, train, catalogue: catalogue, progress: progress)
        progress.report(0.8, "evaluating on \(test.count { !$0.isEmpty }) users")
        let candidates = groups(fitted, train: train, test: test, pool: p.int("pool"))
        let ranker = evaluated.ranker!
        let d = Ranking.featureNames.count
        let learned = candidates.rows.withBase { rp in (0..<candidates.relevance.count).map { ranker.margin(rp + $0 * d) } }
        let ks = Array(Set(TrainingRun.curveKs + [k])).sorted()
        func metrics(_ score: (Int) -> Float) -> [RankingMetrics] {
            RankingMetrics.evaluate(lists: candidates.lists(users: train.users) { score($0) }, test: test, catalogue: data.items, ks: ks)
        }
        let ranked = metrics { learned[$0] }
        let fixed = metrics { candidates.fixed[$0] }
        let popularity = Ranking.featureNames.firstIndex(of: "item_popularity")!
        let baseline = metrics { candidates.rows[$0 * d + popularity] }
        var comparison = [
            Comparison(model: "ranker", metrics: ranked.first { $0.k == k }!, seconds: fitSeconds),
            Comparison(model: "fixed weights", metrics: fixed.first { $0.k == k }!, seconds: 0),
        ]
        for (role, model) in fitted {
            let column = Ranking.featureNames.firstIndex(of: "\(role.name)_score")!
            let alone = metrics { i in
                let v = candidates.rows[i * d + column]
                return v.isNaN ? -1 : v
            }
            comparison.append(Comparison(model: "\(model.kind.rawValue) alone", metrics: alone.first { $0.k == k }!, seconds: 0))
        }
        try progress.check()
        // The published ranker: the same sources, learned on the held-out period (the data's end).
        progress.step(from: 0.8, width: 0.2)
        let final = try learn(p, fitted, train: train, validation: test, progress: progress)

        var report = EvaluationReport()
        report.kind = p.kind.modelKind
        report.params =
            p.pairs.map { KeyValue(key: $0.0, value: $0.1) }
            + sources.map { KeyValue(key: "source_\($0.role.name)", value: $0.described) }
        let atK = ranked.first { $0.k == k }!, baselineAtK = baseline.first { $0.k == k }!
        report.metrics = atK.named.map { Metric(name: $0.0, value: $0.1) }
        report.baseline = baselineAtK.named.map { Metric(name: $0.0, value: $0.1) }
        report.users = UInt32(atK.users)
        report.testPairs = UInt64(test.reduce(0) { $0 + $1.count })
        report.protocol = Interactions.periodDescription + "; the lists are the sources' candidates (\(p.int("pool")) each), re-ranked"
        report.comparison = comparison
        let x = ranked.map { Double($0.k) }
        report.curves = [
            Curve(name: "ndcg", x: x, y: ranked.map(\.ndcg)), Curve(name: "precision", x: x, y: ranked.map(\.precision)),
            Curve(name: "recall", x: x, y: ranked.map(\.recall)), Curve(name: "baseline ndcg", x: x, y: baseline.map(\.ndcg)),
            Curve(name: "fixed weights ndcg", x: x, y: fixed.map(\.ndcg)),
            Curve(name: "validation ndcg", x: ranker.validationLoss.indices.map { Double($0 + 1) }, y: ranker.validationLoss.map { -$0 }),
        ]
        return TrainingRun.Outcome(model: final, parameters: p, report: report, seconds: start.duration(to: .now) / .seconds(1))
    }
}
