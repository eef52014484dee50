import Foundation
import NIOCore
import RPC
import Store
public import Wire

/// A service's audit log of admin calls (`audit.log` in its data directory): one JSON
/// object a line, appended and fsync'd before the call is answered, never rewritten.
/// Each line says who called (the token's id and role, never its secret), from where,
/// what the call did and how it ended. `Audit/Read` and `persona audit` read it back.
public final class AuditLog: Sendable {
    public var path: String { file.path }
    private let service: String
    private let file: AppendOnlyFile

    /// One line of the file (and an `AuditEntry` on the wire).
    struct Line: Codable {
        var time_ms: Int64
        var service: String
        var method: String
        var token_id: String
        var role: String
        var status: String
        var what: String
        var peer: String
        /// Absent in lines written before request ids were recorded.
        var request_id: String?
        /// The person the caller acted for (the console's analyst); absent when none.
        var acting_for: String?
    }

    public init(path: String, service: String) throws {
        self.service = service
        file = try AppendOnlyFile(path: path)
        // A line torn by a crash is ended here, so the next one starts on its own line (a
        // torn line is skipped when read).
        if let last = try file.lastByte(), last != UInt8(ascii: "\n") { try file.append([UInt8(ascii: "\n")]) }
    }

    /// Appends one entry and makes it durable.
    func append(_ line: Line) throws {
        try file.append(Array(try JSONEncoder().encode(line)) + [UInt8(ascii: "\n")])
    }

    /// Records one call that ran: who made it (from the call's context), what it did (or why
    /// it was refused) and the status it ended with.
    func record(method: String, status: StatusCode, what: String, context: RPCContext?, time: Date = Date()) throws {
        try append(
            Line(
                time_ms: Int64(time.timeIntervalSince1970 * 1000), service: service, method: method,
                token_id: context?.caller?.token ?? "", role: context?.caller?.role.rawValue ?? "",
                status: status.name ?? "\(status.rawValue)", what: what, peer: context?.peer ?? "", request_id: context?.requestID,
                acting_for: context?.actingFor))
    }

    /// The entries the request asks for, oldest first: at or after `since_ms`, of one token
    /// when it names one, the newest `limit` (1000 when 0).
    public func read(_ request: AuditRequest) throws -> [AuditEntry] {
        let data = try AtomicFile.read(path) ?? []
        let decoder = JSONDecoder()
        var out: [AuditEntry] = []
        for raw in data.split(separator: UInt8(ascii: "\n")) {
            guard let line = try? decoder.decode(Line.self, from: Data(raw)) else { continue }
            guard line.time_ms >= request.sinceMs, request.tokenId.isEmpty || line.token_id == request.tokenId else { continue }
            var e = AuditEntry()
            e.timeMs = line.time_ms
            e.service = line.service
            e.method = line.method
            e.tokenId = line.token_id
            e.role = line.role
            e.status = line.status
            e.what = line.what
            e.peer = line.peer
            e.requestId = line.request_id ?? ""
            e.actingFor = line.acting_for ?? ""
            out.append(e)
        }
        let limit = request.limit == 0 ? 1000 : Int(request.limit)
        return Array(out.suffix(limit))
    }

    /// Wraps the audited methods registered in `router` so each call is recorded once it has
    /// run, before it is answered, and registers `Audit/Read`. A call whose entry cannot be
    /// written is answered INTERNAL: an admin action is never acknowledged unrecorded.
    func install(in router: inout Router, metrics: ServiceMetrics) {
        router.wrap(AccessTable.audited) { [self] method, handler in
            let note = AuditNote()
            let result: Result<ByteBuffer, any Error>
            do { result = .success(try await AuditNote.$current.withValue(note) { try await handler() }) } catch {
                result = .failure(error)
            }
            let (status, failure): (StatusCode, String?) =
                switch result {
                case .success: (.ok, nil)
                case .failure(let e as RPCError): (e.code, e.message)
                case .failure(is CancellationError): (.cancelled, nil)
                case .failure: (.internal, nil)
                }
            do {
                try record(method: method, status: status, what: note.text ?? failure ?? "", context: RPCContext.current)
                metrics.counter("persona_audit_entries_total", labels: [("method", method)], help: "Admin calls written to the audit log")
                    .increment()
            } catch {
                metrics.counter("persona_audit_errors_total", labels: [], help: "Admin calls whose audit entry could not be written")
                    .increment()
                throw RPCError(.internal, "the call ran but its audit entry could not be written: \(error)")
            }
            return try result.get()
        }
        router.register(AuditAPI.read) { [self] request in
            var response = AuditResponse()
            do { response.entries = try read(request) } catch { throw RPCError(.internal, "cannot read the audit log: \(error)") }
            return response
        }
    }
}
