import Datasets
import Foundation
import Hummingbird
import RPC
import Wire

/// Lists: the block and allow entries with their expiry, added and removed one at a time or
/// from CSV (`list,field,value,reason,expires`), and downloaded as the same CSV. Changes are
/// for rule authors and admins.
extension Console {
    static let listFields: [ListField] = [.user, .device, .ip, .instrument, .email]

    func entries() async throws -> [ListEntry] {
        var q = GetListsRequest()
        q.includeExpired = true
        return try await risk.call(RiskAPI.getLists, q).entries
    }

    func listsPage(_ session: ConsoleSession, notice: String? = nil) async throws -> Response {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var object: [String: Any] = [
            "title": "Lists", "csrf": session.csrf, "can_edit": session.role >= .ruleAuthor,
            "fields": Self.listFields.map { $0.name ?? "" },
            "entries": try await entries().map { e -> [String: Any] in
                [
                    "list": e.list.name ?? "", "field": e.field.name ?? "", "value": e.value, "reason": e.reason,
                    "added": Self.time(e.addedMs), "expires": e.expiresMs == 0 ? "never" : Self.time(e.expiresMs),
                    "expired": e.expiresMs != 0 && e.expiresMs <= now, "csrf": session.csrf, "can_edit": session.role >= .ruleAuthor,
                ]
            },
        ]
        if let notice { object["notice"] = notice }
        return page("lists", object, session: session)
    }

    /// One entry from form or CSV fields; nil with the reason when a field is not one.
    static func entry(list: String, field: String, value: String, reason: String, expires: String) -> Result<ListEntry, RPCError> {
        var e = ListEntry()
        guard let l = ListKind(name: list.trimmingCharacters(in: .whitespaces).lowercased()), l != .unspecified else {
            return .failure(RPCError(.invalidArgument, "'\(list)' is not a list: block or allow"))
        }
        guard let f = ListField(name: field.trimmingCharacters(in: .whitespaces).lowercased()), f != .unspecified else {
            return .failure(RPCError(.invalidArgument, "'\(field)' is not a field: user, device, ip, instrument or email"))
        }
        (e.list, e.field, e.value, e.reason) = (l, f, value.trimmingCharacters(in: .whitespaces), reason)
        let day = expires.trimmingCharacters(in: .whitespaces)
        if !day.isEmpty {
            guard let ms = Filters.day(day) else { return .failure(RPCError(.invalidArgument, "expiry '\(day)' is not yyyy-mm-dd")) }
            e.expiresMs = ms
        }
        return .success(e)
    }

    /// Adds, removes or imports, as the form says; refused to analysts.
    func changeLists(_ action: String, _ form: [String: String], _ session: ConsoleSession) async throws -> Response {
        guard session.role >= .ruleAuthor else {
            return refusedRole("Changing lists needs the rule-author or admin role.", session)
        }
        var request = UpdateListsRequest()
        switch action {
        case "import":
            for (n, line) in (form["csv"] ?? "").split(whereSeparator: \.isNewline).enumerated() {
                let cells = CSV.fields(line)
                if n == 0, cells.first?.lowercased() == "list" { continue }  // the header
                guard cells.count >= 3 else {
                    return try await listsPage(session, notice: "line \(n + 1): list,field,value[,reason,expires]")
                }
                switch Self.entry(
                    list: cells[0], field: cells[1], value: cells[2], reason: cells.count > 3 ? cells[3] : "",
                    expires: cells.count > 4 ? cells[4] : "")
                {
                case .success(let e): request.add.append(e)
                case .failure(let e): return try await listsPage(session, notice: "line \(n + 1): \(e.message)")
                }
            }
        default:
            switch Self.entry(
                list: form["list"] ?? "", field: form["field"] ?? "", value: form["value"] ?? "", reason: form["reason"] ?? "",
                expires: form["expires"] ?? "")
            {
            case .success(let e): if action == "remove" { request.remove = [e] } else { request.add = [e] }
            case .failure(let e): return try await listsPage(session, notice: e.message)
            }
        }
        do {
            let answer = try await risk.call(RiskAPI.updateLists, request)
            logger.info("\(session.name) \(action): \(answer.added) added, \(answer.removed) removed")
        } catch let e as RPCError where e.code == .invalidArgument {
            return try await listsPage(session, notice: e.message)
        }
        return .redirect(to: "/lists")
    }

    func listsCSV() async throws -> Response {
        var csv = "list,field,value,reason,expires\n"
        for e in try await entries() {
            let expires = e.expiresMs == 0 ? "" : String(Self.time(e.expiresMs).prefix(10))
            csv += [e.list.name ?? "", e.field.name ?? "", e.value, e.reason, expires].map(CSV.cell).joined(separator: ",") + "\n"
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"persona-lists.csv\"",
                .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: csv)))
    }
}
