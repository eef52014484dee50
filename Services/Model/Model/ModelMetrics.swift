import ServiceKit
import Wire

/// The model service's metrics, declared in one place: `persona_model_*` (jobs, versions,
/// the interaction store, erasures, the online model) beside the RPC metrics every service has.
struct ModelMetrics: Sendable {
    let metrics: ServiceMetrics

    init(_ metrics: ServiceMetrics) { self.metrics = metrics }

    func badRequest(_ reason: String) { metrics.badRequest("persona_model_bad_requests_total", reason) }

    func jobEnded(_ status: JobStatusResponse) {
        let state = status.state.name ?? "\(status.state.rawValue)", kind = status.kind.name ?? ""
        metrics.counter(
            "persona_model_jobs_total", labels: [("kind", kind), ("state", state)], help: "Training jobs ended, by kind and state"
        ).increment()
        if status.state == .succeeded, status.finishedMs > status.createdMs {
            metrics.gauge(
                "persona_model_training_seconds", labels: [("kind", kind)],
                help: "How long the latest successful job of each kind took, queue included"
            )
            .set(Double(status.finishedMs - status.createdMs) / 1000)
        }
    }

    func versionTrained(kind: String) {
        metrics.counter("persona_model_versions_total", labels: [("kind", kind)], help: "Model versions trained").increment()
    }

    func corruptArtifact() {
        metrics.counter(
            "persona_model_corrupt_artifacts_total", labels: [], help: "Artifacts refused because their checksum or structure failed"
        ).increment()
    }

    func consumed(events: Int, partition: Int, lag: UInt64) {
        metrics.consumed("persona_model_events_total", "persona_model_consumer_lag", events: events, partition: partition, lag: lag)
    }

    func readError() { metrics.readError("persona_model_read_errors_total") }

    func erased(_ users: Int) { metrics.erased("persona_model_erasures_total", users) }

    func erasureFailed() {
        metrics.counter("persona_model_erasure_failures_total", labels: [], help: "Erasures that could not be applied yet (retried)")
            .increment()
    }

    func interactions(pairs: Int, bytes: Int) {
        metrics.gauge("persona_model_interactions", labels: [], help: "(user, item) pairs in the interaction table").set(Int64(pairs))
        metrics.gauge("persona_model_interaction_bytes", labels: [], help: "Memory of the interaction table").set(Int64(bytes))
    }

    func learnedOnline(_ rows: Int) {
        metrics.counter("persona_model_online_rows_total", labels: [], help: "Labelled orders the online model learned from").increment(
            by: Int64(rows))
    }
}
