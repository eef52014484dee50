import Classifiers
import Foundation
import Wire

/// The online fraud model's cycle: newly labelled rows learned, a new version published.
extension ModelService {
    /// One online cycle: the export's rows not learned yet are learned, and the model is
    /// published as a new version. A failure (the feature service away) is logged and the
    /// labels stay pending for the next cycle.
    func learnOnline(_ online: OnlineLearner) async {
        let started = ContinuousClock.now
        do {
            let rows = try await exportTraining(from: 0, to: 0)
            guard let outcome = try online.learn(rows) else { return }
            let p = online.settings.parameters
            var report = EvaluationReport()
            report.kind = .ftrl
            report.metrics = outcome.metrics
            report.params = [("alpha", p.alpha), ("beta", p.beta), ("l1", p.l1), ("l2", p.l2)].map { KeyValue(key: $0.0, value: "\($0.1)") }
            report.protocol =
                """
                progressive validation: each of the \(outcome.learned) newly labelled orders scored by the model \
                before it learned from it (features as of each order, from the feature service's point-in-time \
                export), oldest first; \(outcome.total) orders learned in all
                """
            report.importance = Self.importance(outcome.classifier)
            var info = versionInfo(.ftrl, job: "", report: report, seconds: started.duration(to: .now) / .seconds(1))
            info.featureSchemaVersion = rows.schemaVersion
            info.interactions = UInt64(outcome.total)
            info.items = UInt32(rows.names.count)
            let stored = try addVersion(
                online.settings.name, artifact: outcome.classifier.encode(), info: info, report: report, kind: "ftrl", publish: true)
            metrics.learnedOnline(outcome.learned)
            context.logger.info(
                """
                online model \(online.settings.name) v\(stored.version): learned \(outcome.learned) new labelled \
                orders (\(outcome.total) in all), published
                """
            )
        } catch {
            online.noteLabels(1)
            context.logger.warning("online model \(online.settings.name): cycle failed, retried: \(error)")
        }
    }

    /// The online model's weights, largest first (on standardised inputs).
    static func importance(_ classifier: Classifier) -> [Metric] {
        guard case .logistic(let l) = classifier.learner else { return [] }
        return zip(classifier.features, l.coefficients).filter { $0.1 != 0 }.sorted { abs($0.1) > abs($1.1) }.prefix(20)
            .map { Metric(name: "\($0.0): weight \(String(format: "%+.4f", $0.1))", value: Double(abs($0.1))) }
    }
}
