public import Classifiers
import Foundation
public import Math
public import Wire

/// One classifier job from labelled rows to a publishable version. The rows are the
/// feature service's point-in-time export (each labelled order's features as they were at
/// its time, so nothing from a row's future is in it), split 70% train, 10% validate (early
/// stopping, calibration, thresholds), 20% test, at random or by time (`split`). The report
/// is the model trained on the training part; the published model is trained again on the
/// training and test parts together (validated and calibrated on the same validation part).
public enum ClassifierRun {
    /// The learner's settings, by name as `--param` gives them.
    public struct Parameters: Sendable, Equatable {
        public var learner: String
        /// What the rows are: `fraud` (labelled orders), or a user-level target, `propensity`
        /// (buys in the next `horizonDays`) or `churn` (does nothing in them), one row per user
        /// at each of `cutoffs` cut-offs a horizon apart (the latest: the log's end minus the horizon).
        public var target = "fraud"
        public var horizonDays = 30
        public var cutoffs = 1
        public static let targets = ["fraud", "propensity", "churn"]
        public var userLevel: Bool { target != "fraud" }
        /// How the rows are split: `random` (a seeded shuffle: the test rows are like the
        /// rest, as the rows a published model will score) or `time` (by order time: the test
        /// rows come after every training row; with labels that arrive late, or periods
        /// that differ, it measures the drift as much as the model).
        public var split = "random"
        public var trees = BoostedTrees.Parameters()
        public var logistic = LogisticRegression.Parameters()

        public static let learners = ["gbdt", "logistic"]

        public init(learner: String, _ pairs: [(String, String)] = []) throws {
            guard Self.learners.contains(learner) else { throw TrainingParameters.Invalid(description: "unknown learner '\(learner)'") }
            self.learner = learner
            // Rows weigh alike unless told otherwise (positive_weight 0 balances the classes):
            // calibration, not weighting, makes the probabilities right.
            for (name, text) in pairs {
                func number() throws -> Double {
                    guard let v = Double(text), v.isFinite, v >= 0 else {
                        throw TrainingParameters.Invalid(description: "parameter \(name)=\(text) is not a number >= 0")
                    }
                    return v
                }
                func count(_ range: ClosedRange<Int>) throws -> Int {
                    guard let v = Int(text), range.contains(v) else {
                        throw TrainingParameters.Invalid(
                            description: "parameter \(name)=\(text) is not \(range.lowerBound)...\(range.upperBound)")
                    }
                    return v
                }
                switch (learner, name) {
                case (_, "target"):
                    guard Self.targets.contains(text) else {
                        throw TrainingParameters.Invalid(
                            description: "target '\(text)' is not one of: \(Self.targets.joined(separator: ", "))")
                    }
                    target = text
                case (_, "horizon_days"): horizonDays = try count(1...3650)
                case (_, "cutoffs"): cutoffs = try count(1...100)
                case (_, "split"):
                    guard ["time", "random"].contains(text) else {
                        throw TrainingParameters.Invalid(description: "split '\(text)' is not time or random")
                    }
                    split = text
                case (_, "positive_weight"):
                    trees.positiveWeight = Float(try number())
                    logistic.positiveWeight = try number()
                case ("gbdt", "trees"): trees.trees = try count(1...5000)
                case ("gbdt", "learning_rate"): trees.learningRate = Float(try number())
                case ("gbdt", "max_leaves"): trees.maxLeaves = try count(2...1024)
                case ("gbdt", "max_depth"): trees.maxDepth = try count(1...32)
                case ("gbdt", "min_rows_in_leaf"): trees.minRowsInLeaf = try count(1...100_000)
                case ("gbdt", "l2"): trees.l2 = Float(try number())
                case ("gbdt", "max_bins"): trees.maxBins = try count(2...255)
                case ("gbdt", "early_stopping_rounds"): trees.earlyStoppingRounds = try count(1...5000)
                case ("logistic", "l2"): logistic.l2 = try number()
                default:
                    throw TrainingParameters.Invalid(
                        description: "unknown parameter '\(name)' for \(learner); valid: \(Self.names(learner).joined(separator: ", "))")
                }
            }
        }

        static func names(_ learner: String) -> [String] {
            ["target", "horizon_days", "cutoffs", "split", "positive_weight"]
                + (learner == "gbdt"
                    ? ["trees", "learning_rate", "max_leaves", "max_depth", "min_rows_in_leaf", "l2", "max_bins", "early_stopping_rounds"]
                    : ["l2"])
        }

        var pairs: [(String, String)] {
            var out =
                [("target", target)] + (userLevel ? [("horizon_days", "\(horizonDays)"), ("cutoffs", "\(cutoffs)")] : []) + [
                    ("split", split)
                ]
            if learner == "gbdt" {
                out += [
                    ("positive_weight", "\(trees.positiveWeight)"), ("trees", "\(trees.trees)"), ("learning_rate", "\(trees.learningRate)"),
                    ("max_leaves", "\(trees.maxLeaves)"), ("max_depth", "\(trees.maxDepth)"),
                    ("min_rows_in_leaf", "\(trees.minRowsInLeaf)"),
                    ("l2", "\(trees.l2)"), ("max_bins", "\(trees.maxBins)"), ("early_stopping_rounds", "\(trees.earlyStoppingRounds)"),
                ]
            } else {
                out += [("positive_weight", "\(logistic.positiveWeight)"), ("l2", "\(logistic.l2)")]
            }
            return out
        }
    }

    /// Labelled rows as the export gives them.
    public struct Rows: Sendable {
        public var names: [String]
        public var schemaVersion: UInt32
        public var rows: [TrainingRow]

        public init(names: [String], schemaVersion: UInt32, rows: [TrainingRow]) {
            self.names = names
            self.schemaVersion = schemaVersion
            self.rows = rows
        }
    }

    public struct Outcome: Sendable {
        public var classifier: Classifier
        public var report: EvaluationReport
        public var seconds: Double
        public var users: Int
    }

    public static func run(_ p: Parameters, _ data: Rows, progress: TrainingProgress) throws -> Outcome {
        let start = ContinuousClock.now
        let positives = data.rows.filter { $0.label > 0.5 }.count
        guard data.rows.count >= 100, positives >= 5, data.rows.count - positives >= 5 else {
            let hint =
                p.userLevel
                ? "users seen by the cut-off (the log must span more than the \(p.horizonDays)-day horizon, and both outcomes must occur)"
                : "labelled orders; import orders and their label events first"
            throw TrainingRun.NoData(
                description:
                    "\(data.rows.count) rows (\(positives) positive): a classifier needs at least 100, with 5 of each class, of \(hint)")
        }
        let d = data.names.count
        let (train, valid, test) = parts(data, split: p.split)
        let rows = data.rows
        progress.report(
            0.05,
            """
            \(rows.count) labelled rows (\(positives) positive): \(train.labels.count) train, \(valid.labels.count) \
            validate, \(test.labels.count) test
            """
        )
        /// The learner fitted to `t`, early-stopped on the validation rows; `shown` reports its trees as progress.
        func fit(_ t: Table, shown: Bool) throws -> Classifier.Learner {
            guard p.learner == "gbdt" else {
                return .logistic(try LogisticRegression.train(rows: t.rows, labels: t.labels, features: d, parameters: p.logistic))
            }
            return .trees(
                BoostedTrees.train(rows: t.rows, labels: t.labels, features: d, parameters: p.trees, validation: valid) { done in
                    if shown { progress.report(0.05 + 0.75 * Double(done) / Double(p.trees.trees), "tree \(done)") }
                    return !progress.isCancelled
                })
        }
        let learner = try fit(train, shown: true)
        try progress.check()
        var losses: [Double] = []
        if case .trees(let t) = learner { losses = t.validationLoss }
        /// Each row's margin under `c`.
        func margins(_ c: Classifier, _ t: Table) -> [Float] { (0..<t.labels.count).map { c.margin(Array(t.rows[$0 * d..<($0 + 1) * d])) } }
        /// The learner with its isotonic calibration and thresholds, both from the validation rows.
        func calibrated(_ learner: Classifier.Learner) -> Classifier {
            var c = Classifier(
                target: p.target, features: data.names, schemaVersion: data.schemaVersion, learner: learner,
                calibration: IsotonicCalibration(bounds: [], probabilities: []))
            let m = margins(c, valid)
            c.calibration = IsotonicCalibration(scores: m, labels: valid.labels)
            c.thresholds = suggestedThresholds(m.map(c.calibration.probability), valid.labels)
            return c
        }
        progress.report(0.85, "calibrating and testing")
        let evaluated = calibrated(learner)
        let testMargins = margins(evaluated, test)
        let testProbabilities = testMargins.map(evaluated.calibration.probability)
        let prevalence = Float(train.labels.reduce(0, +)) / Float(max(1, train.labels.count))

        var report = EvaluationReport()
        report.kind = p.learner == "gbdt" ? .gbdt : .logistic
        report.params = p.pairs.map { KeyValue(key: $0.0, value: $0.1) }
        report.metrics = metrics(testMargins, testProbabilities, test.labels)
        report.baseline = metrics(
            [Float](repeating: 0, count: test.labels.count), [Float](repeating: prevalence, count: test.labels.count), test.labels)
        report.users = UInt32(Set(rows.map(\.userId)).count)
        report.testPairs = UInt64(test.labels.count)
        let what =
            p.userLevel
            ? """
            one row per user at each of \(p.cutoffs) cut-off(s) \(p.horizonDays) days apart, label: \
            \(p.target == "churn" ? "no activity" : "a purchase") in the \(p.horizonDays) days after; rows
            """
            : "labelled orders"
        let asOf = p.userLevel ? "features as of each cut-off" : "features as of each order"
        let split =
            p.split == "time"
            ? "sorted by time: the first 70% train, the next 10% validate, the last 20% test"
            : "shuffled (seed 7): 70% train, 10% validate, 20% test"
        report.protocol =
            """
            \(what) \(split) \
            (validation: early stopping, isotonic calibration, thresholds); \(asOf) (the feature service's \
            point-in-time export); baseline: the training prevalence for every row; published: trained again on \
            train and test
            """
        report.curves = curves(testProbabilities, test.labels) + [Curve(name: "loss", x: losses.indices.map { Double($0 + 1) }, y: losses)]
        report.importance = importance(evaluated, test, features: d)
        report.confusion = evaluated.thresholds.map { confusion($0, testProbabilities, test.labels) }

        // The published model: trained on the training and test parts, same validation.
        progress.report(0.9, "training the published model on \(train.labels.count + test.labels.count) rows")
        let all = (rows: train.rows + test.rows, labels: train.labels + test.labels)
        let final = try fit(all, shown: false)
        try progress.check()
        let classifier = calibrated(final)
        report.thresholds = classifier.thresholds.map { t in
            var m = Metric()
            m.name =
                """
                \(t.name): p >= \(String(format: "%.3f", t.probability)), precision \
                \(String(format: "%.3f", t.precision)), recall \(String(format: "%.3f", t.recall)), flagged \
                \(String(format: "%.2f%%", 100 * t.flagged))
                """
            m.value = Double(t.probability)
            return m
        }
        return Outcome(classifier: classifier, report: report, seconds: start.duration(to: .now) / .seconds(1), users: Int(report.users))
    }

    /// Operating points on the validation rows: the lowest probability with 90% precision,
    /// and the probabilities that flag 1% and 5% of the orders (review budgets).
    static func suggestedThresholds(_ probabilities: [Float], _ labels: [Float]) -> [Classifier.Threshold] {
        var thresholds: [Classifier.Threshold] = []
        if let t = BinaryMetrics.threshold(forPrecision: 0.9, probabilities, labels) {
            thresholds.append(.init(name: "precision 90%", probability: t.threshold, precision: 0.9, recall: t.recall, flagged: t.flagged))
        }
        let all = max(1, labels.filter { $0 > 0.5 }.count)
        for share in [0.01, 0.05] {
            let threshold = BinaryMetrics.threshold(forShare: share, probabilities)
            let flagged = probabilities.indices.filter { probabilities[$0] >= threshold }
            let hits = flagged.filter { labels[$0] > 0.5 }.count
            thresholds.append(
                .init(
                    name: "review \(Int(share * 100))%", probability: threshold,
                    precision: flagged.isEmpty ? 0 : Double(hits) / Double(flagged.count),
                    recall: Double(hits) / Double(all), flagged: Double(flagged.count) / Double(max(1, probabilities.count))))
        }
        return thresholds
    }

    /// Rows as a dense table (row-major, NaN for missing) and their 0/1 labels.
    public typealias Table = (rows: [Float], labels: [Float])

    /// The 70/10/20 train, validation and test parts of the rows: shuffled with seed 7
    /// (`random`), or in order time (`time`).
    public static func parts(_ data: Rows, split: String) -> (train: Table, valid: Table, test: Table) {
        var rows = data.rows.sorted { ($0.timestampMs, $0.orderId, $0.userId) < ($1.timestampMs, $1.orderId, $1.userId) }
        if split == "random" {
            var rng = SplitMix(seed: 7)
            for i in stride(from: rows.count - 1, to: 0, by: -1) { rows.swapAt(i, rng.below(i + 1)) }
        }
        let d = data.names.count
        func table(_ part: ArraySlice<TrainingRow>) -> Table {
            var x: [Float] = []
            x.reserveCapacity(part.count * d)
            for r in part { x += r.values.count == d ? r.values : [Float](repeating: .nan, count: d) }
            return (x, part.map { $0.label > 0.5 ? 1 : 0 })
        }
        let trainEnd = rows.count * 7 / 10, validEnd = rows.count * 8 / 10
        return (table(rows[..<trainEnd]), table(rows[trainEnd..<validEnd]), table(rows[validEnd...]))
    }

    /// The rows flagged and not at `threshold`, against their labels.
    static func confusion(_ threshold: Classifier.Threshold, _ probabilities: [Float], _ labels: [Float]) -> Confusion {
        var c = Confusion()
        c.name = threshold.name
        c.probability = Double(threshold.probability)
        for (p, y) in zip(probabilities, labels) {
            switch (p >= threshold.probability, y > 0.5) {
            case (true, true): c.truePositives += 1
            case (true, false): c.falsePositives += 1
            case (false, true): c.falseNegatives += 1
            case (false, false): c.trueNegatives += 1
            }
        }
        return c
    }

    static func metrics(_ margins: [Float], _ probabilities: [Float], _ labels: [Float]) -> [Metric] {
        [
            Metric(name: "roc_auc", value: BinaryMetrics.rocAUC(margins, labels)),
            Metric(name: "pr_auc", value: BinaryMetrics.prAUC(margins, labels)),
            Metric(name: "log_loss", value: BinaryMetrics.logLoss(probabilities, labels)),
            Metric(name: "positives", value: Double(labels.filter { $0 > 0.5 }.count)), Metric(name: "rows", value: Double(labels.count)),
        ]
    }

    /// True against false positive rate (ROC), precision against recall, and observed rate
    /// against predicted (ten bins), on about 50 points each.
    static func curves(_ probabilities: [Float], _ labels: [Float]) -> [Curve] {
        let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }
        let positives = Double(max(1, labels.filter { $0 > 0.5 }.count))
        let negatives = Double(max(1, labels.count - labels.filter { $0 > 0.5 }.count))
        var recall: [Double] = [], precision: [Double] = [], fpr: [Double] = [0], tpr: [Double] = [0]
        var tp = 0.0
        var nextPoint = 0
        let step = max(1, order.count / 50)
        for (k, i) in order.enumerated() {
            if labels[i] > 0.5 { tp += 1 }
            // A point only where the next row scores lower (tied rows move together).
            let last = k == order.count - 1
            guard last || probabilities[order[k + 1]] < probabilities[i] else { continue }
            if last || k >= nextPoint {
                nextPoint = k + step
                recall.append(tp / positives)
                precision.append(tp / Double(k + 1))
                fpr.append((Double(k + 1) - tp) / negatives)
                tpr.append(tp / positives)
            }
        }
        var predicted: [Double] = [], observed: [Double] = []
        for b in 0..<10 {
            let inBin = probabilities.indices.filter { min(9, Int(probabilities[$0] * 10)) == b }
            guard !inBin.isEmpty else { continue }
            predicted.append(inBin.reduce(0.0) { $0 + Double(probabilities[$1]) } / Double(inBin.count))
            observed.append(inBin.reduce(0.0) { $0 + Double(labels[$1]) } / Double(inBin.count))
        }
        return [
            Curve(name: "roc", x: fpr, y: tpr), Curve(name: "precision-recall", x: recall, y: precision),
            Curve(name: "calibration", x: predicted, y: observed),
        ]
    }

    /// Global importance: each feature's total split gain (trees) or |coefficient|
    /// (logistic), and the ROC-AUC lost on the test rows when its column is shuffled.
    static func importance(_ c: Classifier, _ test: (rows: [Float], labels: [Float]), features d: Int) -> [Metric] {
        let gain: [Double]
        switch c.learner {
        case .trees(let t): gain = t.gainImportance
        case .logistic(let l): gain = l.coefficients.map { Double(abs($0)) }
        }
        let n = test.labels.count
        func auc(_ rows: [Float]) -> Double {
            BinaryMetrics.rocAUC((0..<n).map { c.margin(Array(rows[$0 * d..<($0 + 1) * d])) }, test.labels)
        }
        let full = auc(test.rows)
        var rng = SplitMix(seed: 17)
        let top = gain.indices.sorted { gain[$0] > gain[$1] }.prefix(15)
        var out: [Metric] = []
        for f in gain.indices where gain[f] > 0 {
            var permutation = ""
            if top.contains(f) {
                var shuffled = test.rows
                for i in stride(from: n - 1, to: 0, by: -1) {
                    let j = rng.below(i + 1)
                    let t = shuffled[i * d + f]
                    shuffled[i * d + f] = shuffled[j * d + f]
                    shuffled[j * d + f] = t
                }
                permutation = String(format: " permutation %.4f", full - auc(shuffled))
            }
            out.append(Metric(name: "\(c.features[f]): gain \(String(format: "%.1f", gain[f]))\(permutation)", value: gain[f]))
        }
        return out.sorted { $0.value > $1.value }
    }
}
