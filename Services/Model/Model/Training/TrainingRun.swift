import Foundation
public import Recommenders
public import Wire

/// One training job from data to a publishable version: split the data by time, search
/// the kind's grid on a validation split cut from the training part (when asked), fit,
/// evaluate on the held-out part beside the popularity baseline, and fit again on all the
/// data so the published model knows every user's latest items (the sequence kind, which
/// reads them live when it serves, publishes the evaluated network).
public enum TrainingRun {
    public struct Outcome: Sendable {
        public var model: RecommenderModel
        public var parameters: TrainingParameters
        public var report: EvaluationReport
        public var seconds: Double
    }

    /// Training data that cannot make a model.
    public struct NoData: Error, CustomStringConvertible {
        public var description: String
    }

    /// The K values of the report's metric-at-K curves.
    static let curveKs = [1, 2, 3, 5, 10, 15, 20, 30, 50]

    public static func run(
        _ parameters: TrainingParameters, data: Interactions, catalogue: [Int64: ItemDocument] = [:], search: Bool,
        progress: TrainingProgress
    ) throws -> Outcome {
        let start = ContinuousClock.now
        try requireData(data)
        let k = parameters.k
        // The sequence kind is measured by leave-last-out, beside the other kinds on the same split.
        let sequential = parameters.kind == .sequence
        let (train, test) = split(parameters.kind, data)
        var chosen = parameters
        var searched: [Curve] = []
        if search {
            progress.step(from: 0, width: 0.5)
            (chosen, searched) = try self.search(parameters, train, catalogue, progress)
        }
        progress.step(from: search ? 0.5 : 0, width: search ? 0.2 : 0.45)
        progress.resetLosses()
        let fitStart = ContinuousClock.now
        let evaluated = try Trainer.train(chosen, train, catalogue: catalogue, progress: progress)
        let fitSeconds = fitStart.duration(to: .now) / .seconds(1)
        let losses = progress.losses
        progress.step(from: search ? 0.7 : 0.45, width: 0.1)
        progress.report(0, "evaluating on \(test.count { !$0.isEmpty }) users")
        let ks = Array(Set(curveKs + [k])).sorted()
        func evaluate(_ model: RecommenderModel) -> [RankingMetrics] {
            let lists =
                sequential
                ? model.nextItemRankings(train: train, test: test, n: ks.last!) : model.rankings(train: train, test: test, n: ks.last!)
            return RankingMetrics.evaluate(lists: lists, test: test, catalogue: data.items, ks: ks)
        }
        let metrics = evaluate(evaluated)
        let baseline = evaluate(try Trainer.train(try TrainingParameters(kind: .popularity, [("k", "\(k)")]), train))
        var comparison: [Comparison] = []
        // The sequence and content kinds are candidate sources beside the collaborative ones:
        // their reports show those, fitted at their defaults on the same split.
        if sequential || parameters.kind == .content {
            comparison.append(Comparison(model: chosen.kind.rawValue, metrics: metrics.first { $0.k == k }!, seconds: fitSeconds))
            for kind in [RecommenderModel.Kind.als, .itemKNN, .popularity] {
                try progress.check()
                progress.report(0.5, "fitting \(kind.rawValue) for the comparison")
                let other = try TrainingParameters(kind: kind, TrainingParameters.common.keys.map { ($0, chosen.string($0)) })
                let start = ContinuousClock.now
                let model = try Trainer.train(other, train, catalogue: catalogue)
                let seconds = start.duration(to: .now) / .seconds(1)
                comparison.append(Comparison(model: kind.rawValue, metrics: evaluate(model).first { $0.k == k }!, seconds: seconds))
            }
        }
        try progress.check()
        progress.step(from: search ? 0.8 : 0.55, width: search ? 0.2 : 0.45)
        let final: RecommenderModel
        if sequential {
            // The sequence model reads each user's latest steps when it serves (the feature
            // service's, live), so it has no user state to bring up to date: the evaluated
            // network is the one published, with the whole data's popularity for fallbacks.
            var network = evaluated
            network.popularity = Trainer.popularity(data)
            network.index()
            final = network
        } else {
            final = try Trainer.train(chosen, data, catalogue: catalogue, progress: progress)
        }

        var report = EvaluationReport()
        report.kind = parameters.kind.modelKind
        report.params = chosen.pairs.map { KeyValue(key: $0.0, value: $0.1) }
        let atK = metrics.first { $0.k == k }!, baselineAtK = baseline.first { $0.k == k }!
        report.metrics = atK.named.map { Metric(name: $0.0, value: $0.1) }
        report.baseline = baselineAtK.named.map { Metric(name: $0.0, value: $0.1) }
        report.users = UInt32(atK.users)
        report.testPairs = UInt64(test.reduce(0) { $0 + $1.count })
        report.protocol = sequential ? Interactions.leaveLastOutDescription : Interactions.protocolDescription
        report.comparison = comparison
        let x = metrics.map { Double($0.k) }
        report.curves = [
            Curve(name: "ndcg", x: x, y: metrics.map(\.ndcg)), Curve(name: "precision", x: x, y: metrics.map(\.precision)),
            Curve(name: "recall", x: x, y: metrics.map(\.recall)), Curve(name: "baseline ndcg", x: x, y: baseline.map(\.ndcg)),
            Curve(name: "loss", x: losses.indices.map { Double($0 + 1) }, y: losses),
        ]
        report.search = searched
        return Outcome(model: final, parameters: chosen, report: report, seconds: start.duration(to: .now) / .seconds(1))
    }

    /// Refuses training data that cannot make a model, saying what to do.
    static func requireData(_ data: Interactions) throws {
        guard data.pairs == 0 else { return }
        throw NoData(
            description:
                """
                there are no interactions to train on in the data range: import events first (persona import \
                FILE --format ...) or widen the range
                """
        )
    }

    /// The parameters `--search` would choose on `train` (the benchmark times their fit alone).
    public static func searchParameters(_ base: TrainingParameters, _ train: Interactions) throws -> TrainingParameters {
        try search(base, train, [:], TrainingProgress()).0
    }

    /// The parameters that differ, as `name=value` words.
    public static func changed(from a: TrainingParameters, to b: TrainingParameters) -> String {
        b.pairs.filter { a.values[$0.0] != $0.1 }.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }

    /// Tries every point of the kind's grid on a validation split of `train`
    /// (`searchSplit`) and returns the parameters with the best NDCG@K there, and each
    /// candidate as a one-point curve named by its changes.
    static func search(_ base: TrainingParameters, _ train: Interactions, _ catalogue: [Int64: ItemDocument], _ progress: TrainingProgress)
        throws -> (TrainingParameters, [Curve])
    {
        let (inner, validation) = searchSplit(base.kind, train)
        let grid = base.grid
        var best: (TrainingParameters, Double)? = nil
        var tried: [Curve] = []
        for (n, change) in grid.enumerated() {
            try progress.check()
            let candidate = try base.with(change)
            let model = try Trainer.train(candidate, inner, catalogue: catalogue)
            let lists =
                base.kind == .sequence
                ? model.nextItemRankings(train: inner, test: validation, n: base.k)
                : model.rankings(train: inner, test: validation, n: base.k)
            let m = RankingMetrics.evaluate(lists: lists, test: validation, catalogue: train.items, ks: [base.k])[0]
            let label = change.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            tried.append(Curve(name: label, x: [Double(n)], y: [m.ndcg]))
            if best == nil || m.ndcg > best!.1 { best = (candidate, m.ndcg) }
            progress.report(
                Double(n + 1) / Double(grid.count),
                "search \(n + 1) of \(grid.count): \(label) ndcg@\(base.k) \(String(format: "%.4f", m.ndcg))")
        }
        return (best?.0 ?? base, tried)
    }
}

extension TrainingRun {
    /// The kind's evaluation split: leave-last-out for the sequence kind, by time otherwise.
    static func split(_ kind: RecommenderModel.Kind, _ data: Interactions) -> (train: Interactions, test: [[Int32]]) {
        kind == .sequence ? data.leaveLastOut() : data.splitByTime()
    }

    /// The search's validation split: leave-last-out for the sequence kind; otherwise one
    /// time cut for every user (`splitByPeriod`), so that the parameters are judged on a
    /// later period, as the published model will meet it. Where that cut tests fewer than
    /// `minimumShare` of the users (a shop whose events share one time, or a short tail),
    /// each user's own latest pairs stand in for it.
    static func searchSplit(_ kind: RecommenderModel.Kind, _ data: Interactions, minimumShare: Double = 0.05)
        -> (train: Interactions, test: [[Int32]])
    {
        guard kind != .sequence else { return data.leaveLastOut() }
        let period = data.splitByPeriod()
        let tested = period.test.count { !$0.isEmpty }
        return tested > 0 && Double(tested) >= minimumShare * Double(data.users) ? period : data.splitByTime()
    }
}

extension Comparison {
    init(model: String, metrics: RankingMetrics, seconds: Double) {
        self.init()
        self.model = model
        self.metrics = metrics.named.map { Metric(name: $0.0, value: $0.1) }
        trainingSeconds = seconds
    }
}

extension Curve {
    init(name: String, x: [Double], y: [Double]) {
        self.init()
        self.name = name
        self.x = x
        self.y = y
    }
}

extension Metric {
    init(name: String, value: Double) {
        self.init()
        self.name = name
        self.value = value
    }
}

extension KeyValue {
    init(key: String, value: String) {
        self.init()
        self.key = key
        self.value = value
    }
}
