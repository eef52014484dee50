import ServiceKit
import Wire

/// The ingest counters: `persona_ingest_events_total{result}` and
/// `persona_ingest_rejections_total{reason}`.
struct IngestMetrics: Sendable {
    let metrics: ServiceMetrics

    init(_ metrics: ServiceMetrics) {
        self.metrics = metrics
    }

    func accepted(_ n: Int) {
        metrics.counter("persona_ingest_events_total", labels: [("result", "accepted")], help: "Events appended, by result").increment(
            by: Int64(n))
    }

    func duplicates(_ n: Int) {
        metrics.counter("persona_ingest_events_total", labels: [("result", "duplicate")], help: "Events appended, by result").increment(
            by: Int64(n))
    }

    func rejected(_ reason: RejectReason) {
        metrics.counter("persona_ingest_events_total", labels: [("result", "rejected")], help: "Events appended, by result").increment()
        metrics.counter(
            "persona_ingest_rejections_total", labels: [("reason", reason.name ?? "\(reason.rawValue)")], help: "Events rejected, by reason"
        ).increment()
    }

    func rejectedBatch() {
        metrics.counter("persona_ingest_rejections_total", labels: [("reason", "batch_too_large")], help: "Events rejected, by reason")
            .increment()
    }

    func erased(events: Int) {
        metrics.counter("persona_ingest_erasures_total", labels: [], help: "Users erased").increment()
        metrics.counter("persona_ingest_erased_events_total", labels: [], help: "Stored events removed by erasures").increment(
            by: Int64(events))
    }

    func readError() {
        metrics.counter("persona_ingest_read_errors_total", labels: [], help: "Reads that hit a corrupt or unreadable batch").increment()
    }
}
