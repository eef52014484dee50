import ServiceKit
import Wire

/// Risk-control's metrics, declared in one place: `persona_risk_*` (decisions, list hits, the
/// failure policy, the decision store, rules and model versions, labels, erasures).
struct RiskMetrics: Sendable {
    let metrics: ServiceMetrics

    init(_ metrics: ServiceMetrics) { self.metrics = metrics }

    func badRequest(_ reason: String) { metrics.badRequest("persona_risk_bad_requests_total", reason) }

    func decided(_ action: Action) {
        metrics.counter(
            "persona_risk_decisions_total", labels: [("action", StoredNames.action(action))], help: "Decisions answered, by action"
        ).increment()
    }

    /// A stored decision replayed: whether it came out the same.
    func replayed(matches: Bool) {
        metrics.counter(
            "persona_risk_replays_total", labels: [("matches", matches ? "true" : "false")],
            help: "Decisions replayed, by whether they matched"
        ).increment()
    }

    func listHit(_ entry: ListEntry) {
        metrics.counter(
            "persona_risk_list_hits_total", labels: [("list", StoredNames.list(entry.list)), ("field", StoredNames.field(entry.field))],
            help: "Decisions made by a list entry"
        ).increment()
    }

    /// A feature read that failed or timed out, so the failure policy decided.
    func degraded(code: String, policy: String) {
        metrics.counter("persona_risk_feature_failures_total", labels: [("code", code)], help: "Feature reads that failed or timed out")
            .increment()
        metrics.counter("persona_risk_degraded_total", labels: [("policy", policy)], help: "Decisions made by the failure policy")
            .increment()
    }

    func viewApplied(rows: Int, queued: Int) {
        metrics.counter("persona_risk_view_commits_total", labels: [], help: "Commits of the decision view (a batch of log records each)")
            .increment()
    }

    func committed(rows: Int, queued: Int) {
        metrics.gauge("persona_risk_store_queue_depth", labels: [], help: "Writes waiting for the next group commit").set(Int64(queued))
        metrics.counter("persona_risk_store_commits_total", labels: [], help: "Group commits of the decision database").increment()
        metrics.counter("persona_risk_store_writes_total", labels: [], help: "Writes (decisions, labels, rules, lists) committed")
            .increment(by: Int64(rows))
    }

    func modelVersion(_ info: ModelInfo) {
        metrics.gauge("persona_risk_model_version", labels: [("model", info.name)], help: "Version of the fraud model scored with").set(
            Int64(info.version))
    }

    func rulesVersion(_ version: UInt32, shadow: Bool) {
        metrics.gauge(
            "persona_risk_rules_version", labels: [("set", shadow ? "shadow" : "active")], help: "Version of the rule set in force"
        ).set(Int64(version))
    }

    func labelled(_ kind: LabelKind) {
        metrics.counter("persona_risk_labels_total", labels: [("label", StoredNames.label(kind))], help: "Labels taken").increment()
    }

    func erased(_ users: Int) { metrics.erased("persona_risk_erasures_total", users) }
}
