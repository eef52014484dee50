import ServiceKit
import Wire

/// The feature counters: `persona_feature_events_total`, `persona_feature_observations_total{kind}`
/// (events skipped or folded with something odd), consumer lag, snapshots.
struct FeatureMetrics: Sendable {
    let metrics: ServiceMetrics

    init(_ metrics: ServiceMetrics) {
        self.metrics = metrics
    }

    func observed(_ seen: [FeatureState.Observation: Int]) {
        for (o, count) in seen {
            metrics.counter(
                "persona_feature_observations_total", labels: [("kind", o.rawValue)],
                help:
                    """
                    Events skipped (unknown_kind, invalid_user, missing_detail, erased_user) or folded with a note \
                    (unknown_item, out_of_order, erasure)
                    """
            ).increment(by: Int64(count))
        }
    }

    func consumed(events: Int, partition: Int, lag: UInt64) {
        metrics.consumed("persona_feature_events_total", "persona_feature_consumer_lag", events: events, partition: partition, lag: lag)
    }

    func readError() { metrics.readError("persona_feature_read_errors_total") }

    func badRequest(_ reason: String) { metrics.badRequest("persona_feature_bad_requests_total", reason) }

    func erased(_ n: Int = 1) { metrics.erased("persona_feature_erasures_total", n) }

    func snapshot(bytes: Int, encoding: Duration, writing: Duration) {
        metrics.counter("persona_feature_snapshots_total", labels: [], help: "Snapshots written").increment()
        metrics.gauge("persona_feature_snapshot_bytes", labels: [], help: "Size of the latest snapshot").set(Int64(bytes))
        metrics.gauge(
            "persona_feature_snapshot_encode_seconds", labels: [],
            help: "Time the latest snapshot took to encode and hand to the file system (folding waits)"
        )
        .set(encoding / .seconds(1))
        metrics.gauge("persona_feature_snapshot_seconds", labels: [], help: "Time the latest snapshot took to fsync and put in place").set(
            writing / .seconds(1))
    }

    func misrouted() { metrics.badRequest("persona_feature_bad_requests_total", "partition_not_served") }

    func tookOver(partitions: Int, seconds: Double) {
        metrics.counter("persona_feature_takeovers_total", labels: [], help: "Partitions taken over from a replica that stopped answering")
            .increment(by: Int64(partitions))
        metrics.gauge("persona_feature_takeover_seconds", labels: [], help: "Time the latest takeover took to rebuild from the log")
            .set(seconds)
    }
}
