import RPC
import ServiceKit
import Wire

/// Recommend's metrics, declared in one place: `persona_recommend_*` (answers, feature reads,
/// models held, impressions, erasures).
struct RecommendMetrics: Sendable {
    let metrics: ServiceMetrics

    init(_ metrics: ServiceMetrics) { self.metrics = metrics }

    func badRequest(_ reason: String) { metrics.badRequest("persona_recommend_bad_requests_total", reason) }

    func answered(fallback: Bool) {
        metrics.counter(
            "persona_recommend_answers_total", labels: [("fallback", fallback ? "true" : "false")],
            help: "Recommend answers, by whether a fallback answered"
        ).increment()
    }

    func featureFailed(_ read: String, _ error: any Error) {
        let code = (error as? RPCError)?.code.name ?? "UNKNOWN"
        metrics.counter(
            "persona_recommend_feature_failures_total", labels: [("read", read), ("code", code)],
            help: "Feature reads that failed or timed out, by read"
        ).increment()
    }

    func modelVersion(_ info: ModelInfo) {
        metrics.gauge("persona_recommend_model_version", labels: [("model", info.name)], help: "Version of each model held").set(
            Int64(info.version))
    }

    func impressionsDropped(_ n: Int) {
        metrics.counter(
            "persona_recommend_impressions_dropped_total", labels: [], help: "Impressions dropped while ingest was away too long"
        ).increment(by: Int64(n))
    }

    func impressionsQueued(_ depth: Int) {
        metrics.gauge("persona_recommend_impressions_queued", labels: [], help: "Impressions waiting to be appended to ingest").set(
            Int64(depth))
    }

    func erased(_ users: Int) { metrics.erased("persona_recommend_erasures_total", users) }
}
