import Foundation
public import Recommenders

/// A training job's parameters: names checked against what its kind takes (a typo is
/// refused with the valid names, never ignored), values parsed and range-checked, defaults
/// filled in. The defaults are what `persona train KIND` uses; the README lists them.
public struct TrainingParameters: Sendable, Equatable {
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public let kind: RecommenderModel.Kind
    public private(set) var values: [String: String]

    /// Parameters every kind takes: the interaction weights, time decay, and the K of the report.
    static let common: [String: String] = [
        "weight_view": "1", "weight_cart": "3", "weight_favorite": "2", "weight_purchase": "5", "half_life_days": "0", "k": "10",
    ]

    /// Each kind's own parameters and their defaults.
    public static func defaults(_ kind: RecommenderModel.Kind) -> [String: String] {
        let own: [String: String]
        switch kind {
        case .popularity: own = [:]
        case .itemKNN: own = ["similarity": "bm25", "neighbors": "100", "bm25_k1": "100", "bm25_b": "0.8"]
        case .als:
            own = [
                "factors": "128", "iterations": "15", "regularization": "10", "alpha": "1", "cg_steps": "3", "seed": "42",
                "confidence": "relative",
            ]
        case .bpr: own = ["factors": "64", "iterations": "100", "learning_rate": "0.05", "regularization": "0.01", "seed": "42"]
        case .ease: own = ["lambda": "200", "max_items": "20000", "min_users": "2", "keep": "0"]
        case .content: own = ["neighbors": "50", "min_df": "1"]
        case .sequence:
            own = [
                "dim": "64", "max_length": "50", "blocks": "2", "dropout": "0.2", "learning_rate": "0.001", "batch": "128", "epochs": "200",
                "patience": "5", "seed": "42",
            ]
        case .ranker:
            own = [
                "trees": "300", "learning_rate": "0.05", "leaves": "15", "min_rows": "20", "pool": "50", "max_users": "5000", "seed": "42",
            ]
        }
        return common.merging(own) { a, _ in a }
    }

    public init(kind: RecommenderModel.Kind, _ given: [(String, String)] = []) throws {
        self.kind = kind
        var values = Self.defaults(kind)
        for (name, value) in given {
            guard values[name] != nil else {
                throw Invalid(
                    description: "\(kind.rawValue) has no parameter '\(name)'; valid: \(values.keys.sorted().joined(separator: ", "))")
            }
            values[name] = value.trimmingCharacters(in: .whitespaces)
        }
        self.values = values
        try validate()
    }

    public func with(_ changes: [String: String]) throws -> TrainingParameters {
        try TrainingParameters(kind: kind, values.merging(changes) { $1 }.map { ($0.key, $0.value) })
    }

    private func validate() throws {
        for name in ["weight_view", "weight_cart", "weight_favorite", "weight_purchase", "half_life_days"] { _ = try number(name, 0...1e6) }
        _ = try integer("k", 1...1000)
        switch kind {
        case .popularity: break
        case .itemKNN:
            guard ["cosine", "bm25"].contains(values["similarity"]!) else {
                throw Invalid(description: "similarity '\(values["similarity"]!)' is not one of cosine, bm25")
            }
            _ = try integer("neighbors", 1...10_000)
            _ = try number("bm25_k1", 0...1e6)
            _ = try number("bm25_b", 0...1)
        case .als:
            _ = try integer("factors", 1...1024)
            _ = try integer("iterations", 1...1000)
            _ = try number("regularization", 0...1e6)
            _ = try number("alpha", 0...1e6)
            _ = try integer("cg_steps", 1...100)
            guard ["relative", "linear"].contains(values["confidence"]!) else {
                throw Invalid(description: "confidence '\(values["confidence"]!)' is not one of relative, linear")
            }
            _ = try integer("seed", 0...Int.max)
        case .bpr:
            _ = try integer("factors", 1...1024)
            _ = try integer("iterations", 1...10_000)
            _ = try number("learning_rate", 1e-6...10)
            _ = try number("regularization", 0...100)
            _ = try integer("seed", 0...Int.max)
        case .ease:
            _ = try number("lambda", 1e-6...1e9)
            _ = try integer("max_items", 1...50_000)
            _ = try integer("min_users", 1...1_000_000)
            _ = try integer("keep", 0...50_000)
        case .content:
            _ = try integer("neighbors", 1...10_000)
            _ = try integer("min_df", 1...1_000_000)
        case .sequence:
            _ = try integer("dim", 2...1024)
            _ = try integer("max_length", 2...1000)
            _ = try integer("blocks", 1...16)
            _ = try number("dropout", 0...0.9)
            _ = try number("learning_rate", 1e-6...1)
            _ = try integer("batch", 1...100_000)
            _ = try integer("epochs", 1...10_000)
            _ = try integer("patience", 1...1000)
            _ = try integer("seed", 0...Int.max)
        case .ranker:
            _ = try integer("trees", 1...5000)
            _ = try number("learning_rate", 1e-4...1)
            _ = try integer("leaves", 2...255)
            _ = try integer("min_rows", 1...100_000)
            _ = try integer("pool", 10...500)
            _ = try integer("max_users", 10...10_000_000)
            _ = try integer("seed", 0...Int.max)
        }
    }

    func number(_ name: String, _ range: ClosedRange<Double>) throws -> Double {
        guard let text = values[name], let v = Double(text), v.isFinite, range.contains(v) else {
            throw Invalid(description: "\(name) '\(values[name] ?? "")' is not a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    func integer(_ name: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let text = values[name], let v = Int(text), range.contains(v) else {
            throw Invalid(description: "\(name) '\(values[name] ?? "")' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    // Typed reads of validated values.
    public func int(_ name: String) -> Int { Int(values[name]!)! }
    public func float(_ name: String) -> Float { Float(values[name]!)! }
    public func string(_ name: String) -> String { values[name]! }

    /// What ALS multiplies a pair's value by: `alpha` over the median pair's value
    /// (`confidence=relative`, the default: alpha means the same for a typical pair whatever
    /// the shop's weights and repeat rates make of the values, a purchase-only shop's pairs
    /// all worth 5 or more, a browsing shop's about 1), or `alpha` itself (`linear`).
    public func confidenceScale(_ values: [Float]) -> Float {
        let alpha = float("alpha")
        guard string("confidence") == "relative" else { return alpha }
        let positive = values.filter { $0 > 0 }.sorted()
        return positive.isEmpty ? alpha : alpha / positive[positive.count / 2]
    }

    public var weights: InteractionWeights {
        InteractionWeights(
            view: float("weight_view"), cart: float("weight_cart"), favorite: float("weight_favorite"), purchase: float("weight_purchase"),
            halfLifeDays: Double(values["half_life_days"]!)!)
    }

    public var k: Int { int("k") }

    /// As key-value pairs, sorted by name (for the registry and reports).
    public var pairs: [(String, String)] { values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }

    /// The small grid `--search` tries for this kind, each point a change to these parameters.
    var grid: [[String: String]] {
        switch kind {
        case .popularity: return [["half_life_days": "0"], ["half_life_days": "7"], ["half_life_days": "30"]]
        case .itemKNN:
            return ["cosine", "bm25"].flatMap { s in ["20", "100", "400"].map { ["similarity": s, "neighbors": $0] } }
        case .als:
            return ["64", "128"].flatMap { f in
                ["1", "10", "30"].flatMap { r in ["0.5", "1", "2"].map { ["factors": f, "regularization": r, "alpha": $0] } }
            }
        case .bpr:
            return ["32", "64", "128"].flatMap { f in ["0.01", "0.05"].map { ["factors": f, "learning_rate": $0] } }
        case .ease:
            return ["50", "200", "500", "2000"].map { ["lambda": $0] }
        case .content:
            return ["10", "50", "200"].flatMap { n in ["1", "2"].map { ["neighbors": n, "min_df": $0] } }
        case .sequence:
            return ["0.2", "0.5"].flatMap { p in ["32", "64"].map { ["dropout": p, "dim": $0] } }
        case .ranker:
            // The ranker stops early on its own validation users; it has nothing to search.
            return []
        }
    }
}

/// A training run's progress and its cancel flag, shared between the job's thread and the
/// calls that ask about it.
public final class TrainingProgress: @unchecked Sendable {
    public struct Cancelled: Error {}

    private let lock = NSLock()
    private var _fraction = 0.0
    private var _message = ""
    private var _cancelled = false
    private var _losses: [Double] = []
    /// The part of the whole job the current step covers (search, evaluation, final fit).
    private var span: (start: Double, width: Double) = (0, 1)

    public init() {}

    public var fraction: Double { lock.withLock { _fraction } }
    public var message: String { lock.withLock { _message } }
    public var isCancelled: Bool { lock.withLock { _cancelled } }
    public var losses: [Double] { lock.withLock { _losses } }

    public func cancel() { lock.withLock { _cancelled = true } }

    /// Throws `Cancelled` once cancel was asked for; trainers call it between steps.
    public func check() throws {
        if isCancelled { throw Cancelled() }
    }

    /// Progress within the current step (0...1) and what it is doing.
    public func report(_ fraction: Double, _ message: String) {
        lock.withLock {
            _fraction = span.start + span.width * min(1, max(0, fraction))
            _message = message
        }
    }

    func step(from start: Double, width: Double) { lock.withLock { span = (start, width) } }

    /// The training loss of one iteration of the model being fit (the report's curve).
    func loss(_ value: Double) { lock.withLock { _losses.append(value) } }
    func resetLosses() { lock.withLock { _losses.removeAll() } }
}
