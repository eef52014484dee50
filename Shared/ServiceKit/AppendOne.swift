public import RPC
public import Wire

extension RPCClient {
    /// Appends one event a service writes itself (a label, an audience) to ingest's log:
    /// its status once durable, or INVALID_ARGUMENT naming `what` when ingest refuses it.
    public func appendOne(_ event: Event, what: String, timeout: Duration = .seconds(5)) async throws -> EventStatus {
        var append = AppendRequest()
        append.events = [event]
        let answer = try await call(IngestAPI.append, append, timeout: timeout)
        guard let status = answer.statuses.first, status.code != .rejected else {
            throw RPCError(.invalidArgument, "ingest refused the \(what): \(answer.statuses.first?.detail ?? "no status")")
        }
        return status
    }
}
