import Datasets
import Foundation
public import RPC
import ServiceKit
public import Wire

/// The Online Retail sample's events (Samples/online-retail-2010-12.csv: 1 to 7 December
/// 2010), as `persona import --format online-retail` reads them.
public func onlineRetailSample() throws -> [Event] {
    let text = try String(contentsOf: repositoryRoot.appendingPathComponent("Samples/online-retail-2010-12.csv"), encoding: .utf8)
    var skips = DatasetFormat.Skips()
    return DatasetFormat.onlineRetail.events(lines: text.split(separator: "\n").dropFirst().map { $0 }, skips: &skips)
}

/// An item action (a view unless `kind` says otherwise) of `user` on `item` at `ms`, with
/// an id made of its fields.
public func view(_ user: Int64, _ item: Int64, at ms: Int64, category: Int64 = 0, kind: EventKind = .view) -> Event {
    var e = Event()
    e.eventId = "e-\(user)-\(item)-\(ms)-\(kind.rawValue)"
    e.kind = kind
    e.userId = user
    e.itemId = item
    e.categoryId = category
    e.timestampMs = ms
    return e
}

/// Appends fixture events to ingest in batches; a rejected event fails the test's setup.
public func append(_ client: RPCClient, _ events: [Event], batch: Int = 1000) async throws {
    var start = 0
    while start < events.count {
        var request = AppendRequest()
        request.events = Array(events[start..<min(events.count, start + batch)])
        let response = try await client.call(IngestAPI.append, request)
        guard response.rejected == 0 else {
            throw ServiceError("fixture events rejected: \(response.statuses.filter { $0.code == .rejected }.map(\.detail))")
        }
        start += batch
    }
}

/// Waits until a service that folds the log (feature, model) has consumed everything ingest
/// holds now: its Health `offsets` line is at or past every partition's end.
public func waitConsumed(ingest: RPCClient, consumer: RPCClient, timeout: Duration = .seconds(60)) async throws {
    let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest())
    let ends = info.partitions.sorted { $0.partition < $1.partition }.map(\.endOffset)
    let deadline = ContinuousClock.now + timeout
    var reached = "no answer"
    while ContinuousClock.now < deadline {
        let health = try? await consumer.call(HealthAPI.check, HealthRequest(), timeout: .seconds(2))
        if let health { reached = health.checks.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        // At or past the ends: events appended since (a recommend call's impressions) count too.
        let offsets = health?.checks.first { $0.key == "offsets" }?.value.split(separator: ",").compactMap { UInt64($0) } ?? []
        if offsets.count == ends.count && zip(offsets, ends).allSatisfy({ $0 >= $1 }) { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw ServiceError(
        "the consumer did not reach offsets \(ends.map(String.init).joined(separator: ",")) in time: its health says \(reached)")
}
