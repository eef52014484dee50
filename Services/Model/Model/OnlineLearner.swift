import Classifiers
import Foundation
import Math
import Store
import Synchronization
import Wire

/// The online fraud model: FTRL-Proximal logistic regression that learns every labelled
/// order once, as its label arrives in the log, and publishes a new version every
/// `everyLabels` labels or `every` (whichever comes first) without retraining from scratch.
/// Its rows are the feature service's point-in-time export (each order's features as they
/// were at its time); the ones already learned are skipped, so a cycle learns only the new
/// labels (an order whose label changes is learned again with the new one). The learner's
/// state and the orders it learned are kept in `online/NAME.state` (written atomically
/// before the version is published), so a restart resumes where it was. The published
/// artifact is an ordinary logistic classifier: risk-control serves and explains it as
/// any other (`--model-name fraud_online`).
final class OnlineLearner: Sendable {
    struct Settings: Sendable {
        /// The model's name; empty: no online learning.
        var name = "fraud_online"
        var everyLabels = 100
        var every: Duration = .seconds(300)
        var parameters = FTRLProximal.Parameters()
    }

    struct State {
        var learner: FTRLProximal?
        var names: [String] = []
        var schemaVersion: UInt32 = 0
        /// `order:label` of every row learned.
        var learned: Set<String> = []
        /// Label events read from the log since the last cycle.
        var pending = 0
    }

    let settings: Settings
    let path: String
    private let state: Mutex<State>

    init(settings: Settings, directory: String) throws {
        self.settings = settings
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/\(settings.name).state"
        state = Mutex(try Self.load(path))
    }

    var pending: Int { state.withLock { $0.pending } }

    /// Label events the consumer folded.
    func noteLabels(_ n: Int) {
        guard n > 0 else { return }
        state.withLock { $0.pending += n }
    }

    /// Whether a cycle is due: enough labels, or some labels and the interval passed.
    func due(since last: ContinuousClock.Instant) -> Bool {
        let n = pending
        return n >= settings.everyLabels || (n > 0 && last.duration(to: .now) >= settings.every)
    }

    struct Outcome {
        var classifier: Classifier
        var learned: Int
        var total: Int
        /// Progressive validation: each new row scored before it was learned.
        var metrics: [Metric]
    }

    /// Learns the rows not learned yet, oldest order first; nil when there were none.
    func learn(_ rows: ClassifierRun.Rows) throws -> Outcome? {
        let outcome: Outcome? = state.withLock { s in
            s.pending = 0
            if s.names != rows.names || s.schemaVersion != rows.schemaVersion {
                // Another feature catalogue: the old weights mean nothing for it.
                s = State(names: rows.names, schemaVersion: rows.schemaVersion)
            }
            let fresh = rows.rows.filter { !s.learned.contains(Self.key($0)) }.sorted {
                ($0.timestampMs, $0.orderId) < ($1.timestampMs, $1.orderId)
            }
            guard !fresh.isEmpty else { return nil }
            let d = rows.names.count
            var learner = s.learner ?? FTRLProximal(standardisingBy: fresh.flatMap(\.values), features: d, parameters: settings.parameters)
            var predictions: [Float] = [], labels: [Float] = []
            for row in fresh where row.values.count == d {
                predictions.append(Float(learner.learn(row.values, label: row.label)))
                labels.append(row.label)
                s.learned.insert(Self.key(row))
            }
            s.learner = learner
            var metrics = [Metric(name: "progressive_log_loss", value: BinaryMetrics.logLoss(predictions, labels))]
            if Set(labels).count == 2 {
                metrics.append(Metric(name: "progressive_roc_auc", value: BinaryMetrics.rocAUC(predictions, labels)))
                metrics.append(Metric(name: "progressive_pr_auc", value: BinaryMetrics.prAUC(predictions, labels)))
            }
            metrics += [Metric(name: "rows_learned", value: Double(labels.count)), Metric(name: "rows_total", value: Double(learner.rows))]
            let classifier = Classifier(
                target: "fraud", features: rows.names, schemaVersion: rows.schemaVersion, learner: .logistic(learner.logistic()),
                calibration: IsotonicCalibration(bounds: [], probabilities: []))
            return Outcome(classifier: classifier, learned: labels.count, total: learner.rows, metrics: metrics)
        }
        if outcome != nil { try save() }
        return outcome
    }

    static func key(_ row: TrainingRow) -> String { "\(row.orderId):\(row.label)" }

    // MARK: State file

    private func save() throws {
        let s = state.withLock { $0 }
        var out: [UInt8] = []
        func bytes(_ b: [UInt8]) {
            withUnsafeBytes(of: UInt64(b.count).littleEndian) { out += $0 }
            out += b
        }
        bytes(s.learner?.encode() ?? [])
        bytes(Array(s.names.joined(separator: "\n").utf8))
        withUnsafeBytes(of: s.schemaVersion.littleEndian) { out += $0 }
        bytes(Array(s.learned.sorted().joined(separator: "\n").utf8))
        try AtomicFile.write(out, to: path)
    }

    private static func load(_ path: String) throws -> State {
        guard let data = try AtomicFile.read(path) else { return State() }
        var at = 0
        func bytes() throws -> [UInt8] {
            guard at + 8 <= data.count else { throw Corrupt(path: path) }
            var n = 0
            for k in 0..<8 { n |= Int(data[at + k]) << (8 * k) }
            at += 8
            guard n >= 0, at + n <= data.count else { throw Corrupt(path: path) }
            defer { at += n }
            return Array(data[at..<at + n])
        }
        var s = State()
        let learner = try bytes()
        s.learner = learner.isEmpty ? nil : try FTRLProximal.decode(learner)
        let names = String(decoding: try bytes(), as: UTF8.self)
        s.names = names.isEmpty ? [] : names.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard at + 4 <= data.count else { throw Corrupt(path: path) }
        s.schemaVersion = UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3]) << 24
        at += 4
        let learned = String(decoding: try bytes(), as: UTF8.self)
        s.learned = Set(learned.split(separator: "\n").map(String.init))
        guard s.learner.map({ $0.features == s.names.count }) ?? true else { throw Corrupt(path: path) }
        return s
    }

    struct Corrupt: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) is not an online learner's state: remove it to start learning again from every label" }
    }
}
