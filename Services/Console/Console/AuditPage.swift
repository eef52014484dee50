import Datasets
import Foundation
import Hummingbird
import RPC
import ServiceKit
import Wire

/// The audit log of every service merged in time order, filtered by service, token, person
/// acted for, method and date, shown or downloaded as CSV. Admins only.
extension Console {
    /// Every service's entries the filters select, oldest first, and the services that did not answer.
    func auditEntries(_ filters: Filters) async -> (entries: [AuditEntry], unreachable: [String]) {
        var request = AuditRequest()
        request.sinceMs = Filters.day(filters["from"]) ?? 0
        request.tokenId = filters["token"]
        request.limit = 1000
        var entries: [AuditEntry] = []
        var unreachable: [String] = []
        // All at once, each within a second: a service that is down costs the page one second, not one a service.
        let chosen = auditClients.filter { filters["service"].isEmpty || filters["service"] == $0.0.rawValue }
        let asked = request
        await withTaskGroup(of: (Peer, [AuditEntry]?).self) { group in
            for (peer, client) in chosen {
                group.addTask { (peer, try? await client.call(AuditAPI.read, asked, timeout: .seconds(1)).entries) }
            }
            for await (peer, answer) in group {
                if let answer { entries += answer } else { unreachable.append(peer.rawValue) }
            }
        }
        unreachable.sort()
        let until = Filters.day(filters["to"]).map { $0 + 86_400_000 } ?? .max
        let person = filters["person"], method = filters["method"].lowercased()
        entries = entries.filter {
            $0.timeMs < until && (person.isEmpty || $0.actingFor == person) && (method.isEmpty || $0.method.lowercased().contains(method))
        }
        entries.sort { ($0.timeMs, $0.service) < ($1.timeMs, $1.service) }
        return (entries, unreachable)
    }

    func auditPage(_ request: Request, _ session: ConsoleSession) async throws -> Response {
        guard session.role == .admin else {
            return refusedRole("The audit log is for admins.", session)
        }
        let filters = Filters(request)
        let (entries, unreachable) = await auditEntries(filters)
        var object: [String: Any] = [
            "title": "Audit",
            "entries": entries.reversed().map { e -> [String: Any] in
                [
                    "time": Self.time(e.timeMs), "service": e.service, "token": e.tokenId, "role": e.role, "person": e.actingFor,
                    "method": e.method, "status": e.status, "what": e.what,
                ]
            },
            "services": Peer.allCases.map { ["name": $0.rawValue, "selected": $0.rawValue == filters["service"]] },
            "csv": "/audit.csv" + (request.uri.query.map { "?" + $0 } ?? ""),
        ]
        for name in ["token", "person", "method", "from", "to"] { object[name] = filters[name] }
        if !unreachable.isEmpty { object["unreachable"] = unreachable.joined(separator: ", ") }
        return page("audit", object, session: session)
    }

    func auditCSV(_ request: Request, _ session: ConsoleSession) async throws -> Response {
        guard session.role == .admin else {
            count("role")
            return Response(status: .forbidden)
        }
        var csv = "time,service,token_id,role,acting_for,method,status,what,peer,request_id\n"
        for e in await auditEntries(Filters(request)).entries {
            csv +=
                [Self.time(e.timeMs), e.service, e.tokenId, e.role, e.actingFor, e.method, e.status, e.what, e.peer, e.requestId]
                .map(CSV.cell).joined(separator: ",") + "\n"
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"persona-audit.csv\"",
                .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: csv)))
    }
}
