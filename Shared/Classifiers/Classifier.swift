import Foundation
public import Math
public import Store
import Wire

/// A trained binary classifier as the model service publishes it and risk-control serves
/// it: the learner (boosted trees or logistic regression) over named features in a fixed
/// order, the isotonic map from its margin to a calibrated probability, and the score
/// thresholds suggested on held-out rows.
public struct Classifier: Sendable, Equatable {
    public enum Learner: Sendable, Equatable {
        case trees(BoostedTrees)
        case logistic(LogisticRegression)

        public var name: String {
            switch self {
            case .trees: "gbdt"
            case .logistic: "logistic"
            }
        }
    }

    /// A suggested operating point: flag rows whose calibrated probability is at least
    /// `probability`; on the held-out rows it had this precision and recall, and flagged
    /// this share.
    public struct Threshold: Sendable, Equatable {
        public var name: String
        public var probability: Float
        public var precision: Double
        public var recall: Double
        public var flagged: Double

        public init(name: String, probability: Float, precision: Double, recall: Double, flagged: Double) {
            self.name = name
            self.probability = probability
            self.precision = precision
            self.recall = recall
            self.flagged = flagged
        }
    }

    /// What the model predicts (`fraud`, `propensity`, `churn`).
    public var target: String
    public var features: [String]
    /// The feature service's schema version the names belong to.
    public var schemaVersion: UInt32
    public var learner: Learner
    public var calibration: IsotonicCalibration
    public var thresholds: [Threshold]

    public init(
        target: String, features: [String], schemaVersion: UInt32, learner: Learner, calibration: IsotonicCalibration,
        thresholds: [Threshold] = []
    ) {
        self.target = target
        self.features = features
        self.schemaVersion = schemaVersion
        self.learner = learner
        self.calibration = calibration
        self.thresholds = thresholds
    }

    /// The learner's log-odds for a row of `features` values (NaN: missing).
    public func margin(_ row: [Float]) -> Float {
        switch learner {
        case .trees(let t): t.margin(row)
        case .logistic(let l): l.margin(row)
        }
    }

    /// The calibrated probability.
    public func probability(_ row: [Float]) -> Float { calibration.probability(margin(row)) }

    /// Each feature's push on the margin: exact Shapley values for trees, coefficient times
    /// standardised value for logistic; with the margin they sum to (less `expected`).
    public func explain(_ row: [Float], shap: TreeSHAP? = nil) -> (expected: Float, attributions: [Float]) {
        switch learner {
        case .trees(let t):
            let s = shap ?? TreeSHAP(t)
            return (s.expected, s.attributions(row))
        case .logistic(let l):
            return (l.intercept, l.attributions(row))
        }
    }

    // MARK: Artifact

    public static let formatVersion: UInt32 = 1

    /// The bytes the registry stores: a checksummed container ("PCLF": LZ4 flag, body size,
    /// body) around the body ("PCLB": target, names, learner tables, calibration,
    /// thresholds). A reader refuses any artifact whose checksum, magic or tables do not hold.
    public func encode() -> [UInt8] {
        var w = SnapshotWriter(magic: "PCLB", version: Self.formatVersion, expectedBytes: 1 << 16)
        w.string(target)
        w.array(features) { $0.string($1) }
        w.u32(schemaVersion)
        switch learner {
        case .trees(let t):
            w.string("gbdt")
            t.write(to: &w)
        case .logistic(let l):
            w.string("logistic")
            w.plain(l.means)
            w.plain(l.scales)
            w.plain(l.coefficients)
            w.f32(l.intercept)
        }
        w.plain(calibration.bounds)
        w.plain(calibration.probabilities)
        w.array(thresholds) { w, t in
            w.string(t.name)
            w.f32(t.probability)
            w.f64(t.precision)
            w.f64(t.recall)
            w.f64(t.flagged)
        }
        return ArtifactContainer.seal(w.finish(), magic: "PCLF", version: Self.formatVersion)
    }

    public struct Corrupt: Error, CustomStringConvertible {
        public var description: String
    }

    public static func decode(_ bytes: [UInt8]) throws -> Classifier {
        do {
            var r = try SnapshotReader(
                try ArtifactContainer.open(bytes, magic: "PCLF", version: formatVersion, maxBytes: 1 << 30), magic: "PCLB")
            let target = try r.string()
            let features = try r.array { try $0.string() }
            let schema = try r.u32()
            let learner: Learner
            switch try r.string() {
            case "gbdt":
                let trees = try BoostedTrees.read(from: &r)
                guard trees.features == features.count else {
                    throw Corrupt(description: "trees over \(trees.features) features, \(features.count) named")
                }
                learner = .trees(trees)
            case "logistic":
                let l = LogisticRegression(
                    means: try r.plain(Float.self), scales: try r.plain(Float.self), coefficients: try r.plain(Float.self),
                    intercept: try r.f32())
                guard l.means.count == features.count, l.scales.count == features.count, l.coefficients.count == features.count else {
                    throw Corrupt(description: "logistic tables disagree with \(features.count) features")
                }
                learner = .logistic(l)
            case let other:
                throw Corrupt(description: "unknown learner '\(other)'")
            }
            let calibration = IsotonicCalibration(bounds: try r.plain(Float.self), probabilities: try r.plain(Float.self))
            guard calibration.bounds.count == calibration.probabilities.count else {
                throw Corrupt(description: "calibration tables disagree")
            }
            let thresholds = try r.array { r in
                Threshold(name: try r.string(), probability: try r.f32(), precision: try r.f64(), recall: try r.f64(), flagged: try r.f64())
            }
            return Classifier(
                target: target, features: features, schemaVersion: schema, learner: learner, calibration: calibration,
                thresholds: thresholds)
        } catch let error as StoreError {
            throw Corrupt(description: "\(error)")
        } catch let error as WireError {
            throw Corrupt(description: "\(error)")
        }
    }
}

extension BoostedTrees {
    /// The trees as an artifact's body holds them: feature count, base margin, then each
    /// tree's node tables column by column.
    public func write(to w: inout SnapshotWriter) {
        w.u32(UInt32(features))
        w.f32(base)
        w.array(trees) { w, tree in
            w.plain(tree.nodes.map(\.feature))
            w.plain(tree.nodes.map(\.threshold))
            w.plain(tree.nodes.map { $0.missingLeft ? UInt8(1) : 0 })
            w.plain(tree.nodes.map(\.left))
            w.plain(tree.nodes.map(\.right))
            w.plain(tree.nodes.map(\.value))
            w.plain(tree.nodes.map(\.cover))
            w.plain(tree.nodes.map(\.gain))
        }
    }

    /// Trees as `write` wrote them, refused when a table or link does not hold.
    public static func read(from r: inout SnapshotReader) throws -> BoostedTrees {
        let d = Int(try r.u32())
        let base = try r.f32()
        let trees = try r.array { r -> BoostedTrees.Tree in
            let feature = try r.plain(Int32.self), threshold = try r.plain(Float.self), missing = try r.plain(UInt8.self)
            let left = try r.plain(Int32.self), right = try r.plain(Int32.self), value = try r.plain(Float.self)
            let cover = try r.plain(Float.self), gain = try r.plain(Float.self)
            let n = feature.count
            guard n > 0,
                [threshold.count, missing.count, left.count, right.count, value.count, cover.count, gain.count].allSatisfy({ $0 == n })
            else {
                throw Classifier.Corrupt(description: "a tree's tables disagree")
            }
            var nodes: [BoostedTrees.Node] = []
            for i in 0..<n {
                // Children come after their parent: every walk ends at a leaf.
                if feature[i] >= 0 {
                    guard Int(feature[i]) < d, left[i] > Int32(i), right[i] > Int32(i), Int(left[i]) < n, Int(right[i]) < n else {
                        throw Classifier.Corrupt(description: "a tree's links are broken")
                    }
                }
                nodes.append(
                    .init(
                        feature: feature[i], threshold: threshold[i], missingLeft: missing[i] != 0, left: left[i], right: right[i],
                        value: value[i], cover: cover[i], gain: gain[i]))
            }
            return BoostedTrees.Tree(nodes: nodes)
        }
        return BoostedTrees(features: d, base: base, trees: trees)
    }
}
