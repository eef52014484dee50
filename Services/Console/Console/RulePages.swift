import Foundation
import Hummingbird
import RPC
import Wire

/// Rules: the sets in force and their history, a diff between any two versions, an editor
/// that validates as you type, a backtest of the draft over stored decisions, and publish
/// (or publish as shadow, or publish an earlier version again) for rule authors.
extension Console {
    /// Every stored version, newest first (at most 100), and the versions in force.
    func ruleHistory() async throws -> (sets: [RuleSetInfo], active: UInt32, shadow: UInt32) {
        let current = try await risk.call(RiskAPI.getRules, GetRulesRequest()).sets
        let active = current.first { !$0.shadow }?.version ?? 0
        let shadow = current.first { $0.shadow }?.version ?? 0
        var sets: [RuleSetInfo] = []
        let latest = max(active, shadow)
        for version in stride(from: Int(latest), to: max(0, Int(latest) - 100), by: -1) {
            var q = GetRulesRequest()
            q.version = UInt32(version)
            if let set = try? await risk.call(RiskAPI.getRules, q).sets.first { sets.append(set) }
        }
        return (sets, active, shadow)
    }

    func rulesPage(_ request: Request, _ session: ConsoleSession, draft: String? = nil, notice: String? = nil) async throws -> Response {
        let (sets, active, shadow) = try await ruleHistory()
        let from = request.uri.queryParameters["from"].flatMap { UInt32(String($0)) }
        let source = draft ?? sets.first { $0.version == (from ?? active) }?.source ?? ""
        var object: [String: Any] = [
            "title": "Rules", "source": source, "csrf": session.csrf,
            "can_publish": session.role >= .ruleAuthor,
            "active": active, "shadow": shadow == 0 ? "none" : "v\(shadow)",
            "history": sets.map { s -> [String: Any] in
                var row: [String: Any] = [
                    "version": s.version, "published": Self.time(s.publishedMs), "shadow": s.shadow, "rules": s.rules.count,
                    "in_force": s.version == active || s.version == shadow,
                ]
                // Mustache takes a present key as true, 0 included: absent when there is no earlier version.
                if s.version > 1 { row["previous"] = s.version - 1 }
                return row
            },
        ]
        if let notice { object["notice"] = notice }
        if settings.fourEyes {
            object["four_eyes"] = true
            object["drafts"] = try people.pendingDrafts().map { d -> [String: Any] in
                [
                    "id": d.id, "author": d.author, "created": Self.time(d.createdMs), "source": d.source, "shadow": d.shadow,
                    "csrf": session.csrf, "can_review": session.role >= .ruleAuthor && session.name != d.author,
                ]
            }
        }
        return page("rules", object, session: session)
    }

    /// The draft's errors as JSON (`[{"line":..,"column":..,"message":..}]`), for the editor's script.
    func validate(_ source: String) async throws -> Response {
        var r = RulesSource()
        r.source = source
        var errors: [[String: Any]] = []
        var rules = 0
        do {
            let answer = try await risk.call(RiskAPI.validateRules, r)
            errors = answer.errors.map { ["line": Int($0.line), "column": Int($0.column), "message": $0.message] }
            rules = answer.rules.count
        } catch let e as RPCError {
            // Not checkable now (the feature service away, say): said where the errors go.
            errors = [["line": 0, "column": 0, "message": e.message]]
        }
        let json = try JSONSerialization.data(withJSONObject: ["errors": errors, "rules": rules])
        return Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }

    func backtest(_ form: [String: String], _ session: ConsoleSession) async throws -> Response {
        var r = BacktestRequest()
        r.source = form["source"] ?? ""
        r.fromMs = Filters.day(form["from"] ?? "") ?? 0
        r.toMs = Filters.day(form["to"] ?? "").map { $0 + 86_400_000 } ?? 0
        r.limit = 20
        let answer = try await risk.call(RiskAPI.backtest, r)
        func outcome(_ o: LabelledOutcome?) -> [String: Any] {
            let o = o ?? LabelledOutcome()
            return [
                "precision": String(format: "%.3f", o.precision), "recall": String(format: "%.3f", o.recall),
                "decline_rate": String(format: "%.2f%%", 100 * o.declineRate), "flagged": o.flagged, "labelled": o.labelled,
            ]
        }
        let object: [String: Any] = [
            "title": "Backtest", "source": r.source, "csrf": session.csrf, "can_publish": session.role >= .ruleAuthor,
            "errors": answer.errors.map { ["line": $0.line, "column": $0.column, "message": $0.message] },
            "valid": answer.errors.isEmpty, "decisions": answer.decisions, "flipped": answer.flipped, "degraded": answer.degraded,
            "some_degraded": answer.degraded > 0,
            "current": outcome(answer.current), "candidate": outcome(answer.candidate),
            "changes": answer.changes.map { ["from": $0.from.name ?? "", "to": $0.to.name ?? "", "count": $0.count] },
            "examples": answer.examples.map {
                [
                    "order": $0.orderId, "from": $0.from.name ?? "", "to": $0.to.name ?? "",
                    "label": $0.label == .unspecified ? "" : $0.label.name ?? "",
                ]
            },
        ]
        return page("backtest", object, session: session)
    }

    func publish(_ form: [String: String], _ request: Request, _ session: ConsoleSession) async throws -> Response {
        guard session.role >= .ruleAuthor else {
            return refusedRole("Publishing rules needs the rule-author or admin role.", session)
        }
        var r = RulesSource()
        r.source = form["source"] ?? ""
        r.shadow = form["shadow"] == "1"
        if settings.fourEyes {
            // Checked now, published when a second person approves.
            var check = RulesSource()
            check.source = r.source
            let errors = try await risk.call(RiskAPI.validateRules, check).errors
            guard errors.isEmpty else {
                let text = errors.map { "line \($0.line), column \($0.column): \($0.message)" }.joined(separator: "\n")
                return try await rulesPage(request, session, draft: r.source, notice: text)
            }
            let id = try people.submit(source: r.source, shadow: r.shadow, author: session.name, nowMs: Self.nowMs)
            logger.info("\(session.name) submitted rules draft \(id) for approval")
            return try await rulesPage(request, session, notice: "Draft \(id) awaits a second person's approval.")
        }
        return try await publishNow(r, request, session)
    }

    func publishNow(_ r: RulesSource, _ request: Request, _ session: ConsoleSession) async throws -> Response {
        do {
            let answer = try await risk.call(RiskAPI.publishRules, r)
            logger.info("\(session.name) published \(r.shadow ? "shadow " : "")rules v\(answer.version)")
            return .redirect(to: "/rules")
        } catch let e as RPCError where e.code == .invalidArgument {
            return try await rulesPage(request, session, draft: r.source, notice: e.message)
        }
    }

    /// Approves (publishes, on behalf of the approver) or rejects a pending draft.
    func review(_ form: [String: String], _ request: Request, _ session: ConsoleSession) async throws -> Response {
        guard session.role >= .ruleAuthor, let id = Int64(form["draft"] ?? "") else {
            return refusedRole("Reviewing drafts needs the rule-author or admin role.", session)
        }
        let approved = form["decision"] == "approve"
        let draft: People.Draft?
        do {
            draft = try people.review(id, approved: approved, reviewer: session.name, nowMs: Self.nowMs)
        } catch let refused as People.Refused {
            count("own_draft")
            return page("message", ["title": "Refused", "message": refused.description], session: session, status: .forbidden)
        }
        guard let draft else { throw RPCError(.notFound, "no pending draft \(id)") }
        logger.info("\(session.name) \(approved ? "approved" : "rejected") rules draft \(id) of \(draft.author)")
        guard approved else { return .redirect(to: "/rules") }
        var r = RulesSource()
        (r.source, r.shadow) = (draft.source, draft.shadow)
        return try await publishNow(r, request, session)
    }

    static var nowMs: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The lines of version `a` and `b` as a line diff (longest common subsequence).
    func diffPage(_ request: Request, _ session: ConsoleSession) async throws -> Response {
        func source(_ name: String) async throws -> (UInt32, String) {
            guard let v = request.uri.queryParameters[Substring(name)].flatMap({ UInt32(String($0)) }) else {
                throw RPCError(.invalidArgument, "the diff needs versions a and b")
            }
            var q = GetRulesRequest()
            q.version = v
            return (v, try await risk.call(RiskAPI.getRules, q).sets.first?.source ?? "")
        }
        let (a, old) = try await source("a")
        let (b, new) = try await source("b")
        let lines = Self.diff(old.components(separatedBy: "\n"), new.components(separatedBy: "\n")).map {
            ["mark": $0.mark, "text": $0.text, "kind": $0.mark == "+" ? "added" : $0.mark == "-" ? "removed" : "same"]
        }
        return page("diff", ["title": "Rules v\(a) to v\(b)", "a": a, "b": b, "lines": lines], session: session)
    }

    /// A line diff: "-" for lines only in `a`, "+" for lines only in `b`, " " for both; where
    /// lines were replaced, the old ones come first.
    static func diff(_ a: [String], _ b: [String]) -> [(mark: String, text: String)] {
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var out: [(String, String)] = []
        var (i, j) = (0, 0)
        while i < a.count || j < b.count {
            if i < a.count, j < b.count, a[i] == b[j] {
                out.append((" ", a[i]))
                (i, j) = (i + 1, j + 1)
            } else if i < a.count, j == b.count || lcs[i + 1][j] >= lcs[i][j + 1] {
                out.append(("-", a[i]))
                i += 1
            } else {
                out.append(("+", b[j]))
                j += 1
            }
        }
        return out
    }
}
