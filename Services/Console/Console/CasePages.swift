import Foundation
import Hummingbird
import RPC
import Wire

/// Cases: the queue of each team, "take next", and a case worked to its outcome; each a
/// QueryCases, GetCase, UpdateCase or TakeNextCase call to risk-control made for the person.
extension Console {
    /// The schema's names: open, investigating, waiting, resolved; fraud, legitimate, false_positive.
    static let caseStatuses = CaseStatus.allKnown.dropFirst().compactMap(\.name)
    static let caseOutcomes = CaseOutcome.allKnown.dropFirst().compactMap(\.name)

    static func caseRow(_ c: Case) -> [String: Any] {
        var row: [String: Any] = [
            "id": c.caseId, "order": c.orderId, "user": c.userId, "team": c.team, "status": c.status.name ?? "",
            "assignee": c.assignee.isEmpty ? "nobody" : c.assignee, "opened": time(c.openedMs), "updated": time(c.updatedMs),
            "score": c.score, "action": c.action.name ?? "", "amount": String(format: "%.2f %@", c.amount, c.currency as NSString),
            "comments": c.comments,
        ]
        if c.outcome != .unspecified { row["outcome"] = c.outcome.name ?? "" }
        return row
    }

    func casesPage(_ request: Request, _ session: ConsoleSession) async throws -> Response {
        let filters = Filters(request)
        var q = QueryCasesRequest()
        q.team = filters["team"]
        q.status = CaseStatus(name: filters["status"]) ?? .unspecified
        if filters["mine"] == "1" { q.assignee = session.name }
        q.pageToken = filters["page"]
        q.limit = 50
        let answer = try await risk.call(RiskAPI.queryCases, q)
        var object: [String: Any] = ["title": "Cases", "csrf": session.csrf, "team": q.team]
        object["teams"] = answer.teams.map { t -> [String: Any] in
            [
                "team": t.team, "open": t.`open`, "investigating": t.investigating, "waiting": t.waiting, "unassigned": t.unassigned,
                "selected": t.team == q.team, "csrf": session.csrf,
            ]
        }
        object["statuses"] = Self.caseStatuses.map { ["name": $0, "selected": $0 == filters["status"]] }
        if filters["mine"] == "1" { object["mine"] = true }
        object["cases"] = answer.cases.map(Self.caseRow)
        if let notice = request.uri.queryParameters["notice"] { object["notice"] = String(notice) }
        if !answer.nextPageToken.isEmpty {
            var f = filters.fields
            f["page"] = answer.nextPageToken
            var c = URLComponents()
            c.queryItems = f.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            object["next"] = "/cases?" + (c.percentEncodedQuery ?? "")
        }
        return page("cases", object, session: session)
    }

    /// Gives the person the oldest open case of the team nobody works, and opens it.
    func takeNext(_ form: [String: String], _ session: ConsoleSession) async throws -> Response {
        var r = TakeNextCaseRequest()
        r.team = form["team"] ?? ""
        guard let taken = try await risk.call(RiskAPI.takeNextCase, r).case else {
            let team = r.team.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            return .redirect(to: "/cases?team=\(team)&notice=no+open+case+left+in+this+queue")
        }
        logger.info("\(session.name) took case \(taken.caseId)")
        return .redirect(to: "/cases/\(taken.caseId)")
    }

    func casePage(id: Int64, _ session: ConsoleSession) async throws -> Response {
        var r = GetCaseRequest()
        r.caseId = String(id)
        let answer = try await risk.call(RiskAPI.getCase, r)
        guard let c = answer.case else { throw RPCError(.notFound, "no case \(id)") }
        let d = try await decision(id)
        var object = Self.caseRow(c)
        object["csrf"] = session.csrf
        object["reasons"] = d.reasons.map { ["code": $0.code, "description": $0.description] }
        object["statuses"] = Self.caseStatuses.filter { $0 != "resolved" }.map { ["name": $0] }
        if c.status == .resolved {
            object["resolved"] = true
        } else {
            object["outcomes"] = Self.caseOutcomes.map { ["name": $0, "csrf": session.csrf, "id": c.caseId] }
        }
        if c.assignee != session.name { object["not_mine"] = true }
        object["history"] = answer.history.map { change -> [String: Any] in
            var row: [String: Any] = ["by": change.by, "at": Self.time(change.atMs), "what": change.summary]
            if !change.comment.isEmpty { row["comment"] = change.comment }
            return row
        }
        return page("case", ["title": "Case \(c.caseId)", "case": object], session: session)
    }

    /// A change to a case from its page's forms: status, "assign to me" or to nobody, team,
    /// comment, or an outcome (which resolves it and labels the order).
    func changeCase(id: Int64, _ form: [String: String], _ session: ConsoleSession) async throws -> Response {
        var r = UpdateCaseRequest()
        r.caseId = String(id)
        if let status = form["status"], !status.isEmpty {
            guard let s = CaseStatus(name: status), s != .unspecified, s != .resolved else {
                return badCaseForm("'\(status)' is not a status a case is set to (resolve it with an outcome)", session)
            }
            r.status = s
        }
        switch form["assign"] ?? "" {
        case "": break
        case "me": (r.assign, r.assignee) = (true, session.name)
        case "nobody":
            // Back to the queue: nobody's and open, so that "take next" finds it.
            (r.assign, r.assignee) = (true, "")
            if r.status == .unspecified { r.status = .`open` }
        default: return badCaseForm("assign is 'me' or 'nobody'", session)
        }
        r.team = (form["team"] ?? "").trimmingCharacters(in: .whitespaces)
        r.comment = (form["comment"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if let outcome = form["outcome"], !outcome.isEmpty {
            guard let o = CaseOutcome(name: outcome), o != .unspecified else {
                return badCaseForm("'\(outcome)' is not an outcome", session)
            }
            r.outcome = o
        }
        let after = try await risk.call(RiskAPI.updateCase, r)
        logger.info("\(session.name) changed case \(after.caseId)")
        return .redirect(to: "/cases/\(id)")
    }

    private func badCaseForm(_ message: String, _ session: ConsoleSession) -> Response {
        count("case_form")
        return page("message", ["title": "Refused", "message": message], session: session, status: .badRequest)
    }
}
