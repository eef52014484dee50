public import Prometheus
public import RPC
import Synchronization
public import Wire

/// A service's Prometheus registry, with the RPC metrics every service exports:
///
/// - `persona_rpc_calls_total{method,status}`: calls answered, by status
/// - `persona_rpc_duration_seconds{method}`: latency histogram
/// - `persona_rpc_in_flight`: calls being served now
/// - `persona_rpc_protocol_errors_total{reason}`: connections closed for bad frames
///
/// Services add their own metrics to `registry`.
public final class ServiceMetrics: RPCServerObserver {
    public let registry: PrometheusCollectorRegistry
    private let inFlight: Gauge
    private let inFlightCount = Atomic<Int>(0)
    private let counters = Mutex<[String: Counter]>([:])
    private let histograms = Mutex<[String: DurationHistogram]>([:])

    static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.inFlight = registry.makeGauge(descriptor: Self.descriptor("persona_rpc_in_flight", help: "RPC calls being served"))
    }

    /// Calls being served right now.
    public var callsInFlight: Int { inFlightCount.load(ordering: .relaxed) }

    public func callStarted(method: String) {
        inFlightCount.add(1, ordering: .relaxed)
        inFlight.increment()
    }

    public func callFinished(method: String, status: StatusCode, duration: Duration) {
        inFlightCount.subtract(1, ordering: .relaxed)
        inFlight.decrement()
        countCall(method: method, status: status)
        let histogram = histograms.withLock { cache in
            if let h = cache[method] { return h }
            let h = registry.makeDurationHistogram(
                descriptor: Self.descriptor("persona_rpc_duration_seconds", help: "RPC latency as seen by the server"),
                labels: [("method", method)], buckets: Self.latencyBuckets)
            cache[method] = h
            return h
        }
        histogram.recordNanoseconds(
            Int64(clamping: duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000))
    }

    public func callRefused(method: String, status: StatusCode) {
        countCall(method: method, status: status)
    }

    public func accessRefused(method: String, role: String, status: StatusCode) {
        counter(
            "persona_rpc_refused_total", labels: [("method", method), ("role", role), ("status", status.name ?? "\(status.rawValue)")],
            help: "Calls refused by access control, by method, the role of the token presented (none: no token) and status"
        ).increment()
    }

    private func countCall(method: String, status: StatusCode) {
        counter(
            "persona_rpc_calls_total", labels: [("method", method), ("status", status.name ?? "\(status.rawValue)")],
            help: "RPC calls answered, by method and status"
        ).increment()
    }

    public func protocolError(_ code: FrameError.Code) {
        counter(
            "persona_rpc_protocol_errors_total", labels: [("reason", code.name)],
            help: "Connections closed because the peer sent bytes that are not frames"
        ).increment()
    }

    /// A labelled counter, created on first use and cached.
    public func counter(_ name: String, labels: [(String, String)], help: String) -> Counter {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(descriptor: Self.descriptor(name, help: help), labels: labels)
            cache[key] = c
            return c
        }
    }

    /// A gauge of the registry, with help text (the registry returns the same gauge for the
    /// same name and labels).
    public func gauge(_ name: String, labels: [(String, String)], help: String) -> Gauge {
        registry.makeGauge(descriptor: Self.descriptor(name, help: help), labels: labels)
    }

    /// A call refused as invalid, by reason (`persona_<service>_bad_requests_total{reason}`,
    /// named in full by the caller so that a grep for a metric finds it).
    public func badRequest(_ name: String, _ reason: String) {
        counter(name, labels: [("reason", reason)], help: "Calls refused as invalid, by reason").increment()
    }

    /// Users erased (`persona_<service>_erasures_total`).
    public func erased(_ name: String, _ users: Int) {
        counter(name, labels: [], help: "Users erased").increment(by: Int64(users))
    }

    /// A log consumer's read: the events it brought (`persona_<service>_events_total`) and how
    /// far the partition is still ahead (`persona_<service>_consumer_lag{partition}`).
    public func consumed(_ eventsName: String, _ lagName: String, events: Int, partition: Int, lag: UInt64) {
        counter(eventsName, labels: [], help: "Events read from the log").increment(by: Int64(events))
        gauge(lagName, labels: [("partition", "\(partition)")], help: "Events in the partition not yet folded").set(Int64(clamping: lag))
    }

    /// A read from ingest that failed and is retried (`persona_<service>_read_errors_total`).
    public func readError(_ name: String) {
        counter(name, labels: [], help: "Failed reads from ingest (retried)").increment()
    }

    public func render() -> String { registry.emitToString() }

    static func descriptor(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
