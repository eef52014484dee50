import Classifiers
import Foundation
import Math
import Synchronization
import Wire

/// The fraud model scored with now, swapped whole when a new version is published.
final class ServedClassifier: Sendable {
    struct Loaded: Sendable {
        let info: ModelInfo
        let classifier: Classifier
        let shap: TreeSHAP?

        init(info: ModelInfo, classifier: Classifier) {
            self.info = info
            self.classifier = classifier
            if case .trees(let t) = classifier.learner { shap = TreeSHAP(t) } else { shap = nil }
        }

        /// The `count` features that pushed this row's score up the most, with their values
        /// (contribution: the feature's share of the log-odds, TreeSHAP or coefficient x value).
        func reasons(_ row: [Float], count: Int) -> [ReasonCode] {
            guard count > 0 else { return [] }
            let (_, attributions) = classifier.explain(row, shap: shap)
            let order = attributions.indices.filter { attributions[$0] > 0 }.sorted { attributions[$0] > attributions[$1] }.prefix(count)
            return order.map { i in
                var r = ReasonCode()
                r.kind = .model
                r.code = classifier.features[i]
                r.value = Double(row[i])
                r.contribution = Double(attributions[i])
                r.description = "\(classifier.features[i]) = \(Self.format(row[i])) (+\(String(format: "%.2f", attributions[i])) log-odds)"
                return r
            }
        }

        static func format(_ v: Float) -> String { v == v.rounded() && abs(v) < 1e9 ? String(Int64(v)) : String(format: "%.3g", v) }
    }

    private let loaded = Mutex<Loaded?>(nil)

    var current: Loaded? { loaded.withLock { $0 } }

    func set(_ l: Loaded) { loaded.withLock { $0 = l } }

    /// Earlier versions fetched to replay decisions (the last four).
    private let earlier = Mutex<[Loaded]>([])

    func earlier(_ name: String, version: UInt32) -> Loaded? {
        if let l = current, l.info.name == name, l.info.version == version { return l }
        return earlier.withLock { $0.first { $0.info.name == name && $0.info.version == version } }
    }

    func keep(_ l: Loaded) {
        earlier.withLock {
            $0.append(l)
            if $0.count > 4 { $0.removeFirst() }
        }
    }
}
