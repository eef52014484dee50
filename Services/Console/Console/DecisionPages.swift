import Foundation
import Hummingbird
import RPC
import Wire

/// The decisions list, a decision, and labels: each a QueryDecisions or Label call to
/// risk-control.
extension Console {
    /// The list's filters as the query string carries them.
    struct Filters {
        var fields: [String: String]

        init(_ request: Request) {
            var f: [String: String] = [:]
            for (key, value) in request.uri.queryParameters { f[String(key)] = String(value) }
            fields = f
        }

        subscript(_ name: String) -> String { fields[name] ?? "" }

        /// The QueryDecisions request they make (a bad number is left out, not guessed).
        var query: QueryDecisionsRequest {
            var q = QueryDecisionsRequest()
            q.action = Action(name: self["action"]) ?? .unspecified
            q.minScore = Int32(self["min_score"]) ?? 0
            q.maxScore = Int32(self["max_score"]) ?? 0
            q.reason = self["reason"].trimmingCharacters(in: .whitespaces)
            q.label = LabelKind(name: self["label"]) ?? .unspecified
            q.userId = Int64(self["user"]) ?? 0
            q.orderId = self["order"].trimmingCharacters(in: .whitespaces)
            q.fromMs = Self.day(self["from"]) ?? 0
            q.toMs = Self.day(self["to"]).map { $0 + 86_400_000 } ?? 0
            q.order = Self.sorts.first { $0.value == self["sort"] }?.order ?? .newest
            q.withoutFeatures = true
            q.limit = 50
            return q
        }

        /// The list's orders, as the sort select offers them.
        static let sorts: [(value: String, name: String, order: DecisionOrder)] = [
            ("", "newest first", .newest), ("oldest", "oldest first", .oldest), ("score", "highest score first", .score),
        ]

        /// Midnight UTC of a `yyyy-mm-dd` date, in ms.
        static func day(_ text: String) -> Int64? {
            let parts = text.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 3 else { return nil }
            var c = DateComponents()
            (c.year, c.month, c.day) = (parts[0], parts[1], parts[2])
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            return calendar.date(from: c).map { Int64($0.timeIntervalSince1970 * 1000) }
        }

        /// The query string with `page` set (or left out).
        func with(page: String?) -> String {
            var f = fields
            f["page"] = page
            f["after"] = nil
            var c = URLComponents()
            c.queryItems = f.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            return "/decisions" + (c.percentEncodedQuery.map { "?" + $0 } ?? "")
        }
    }

    /// `ms` as UTC `2026-12-07T21:40:42Z`, from its calendar fields (a page formats hundreds
    /// of times; a date formatter made per call was a third of a page's time).
    static func time(_ ms: Int64) -> String {
        var seconds = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
        var t = tm()
        gmtime_r(&seconds, &t)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(t.tm_year) + 1900, Int(t.tm_mon) + 1, Int(t.tm_mday), Int(t.tm_hour),
            Int(t.tm_min), Int(t.tm_sec))
    }

    static func row(_ d: Decision) -> [String: Any] {
        [
            "id": d.decisionId, "decided": time(d.decidedMs), "order": d.orderId, "user": d.userId,
            "amount": String(format: "%.2f %@", d.amount, d.currency as NSString), "score": d.score,
            "action": d.action.name ?? "", "reasons": d.reasons.map(\.code).joined(separator: ", "),
            "label": d.label == .unspecified ? "" : d.label.name ?? "",
        ]
    }

    func decisionsPage(_ request: Request, _ session: ConsoleSession) async throws -> Response {
        let filters = Filters(request)
        var q = filters.query
        q.pageToken = filters["page"]
        let answer = try await risk.call(RiskAPI.queryDecisions, q)
        let rows = pages.render(["decisions": answer.decisions.map(Self.row)], withTemplate: "rows") ?? ""
        var object: [String: Any] = ["title": "Decisions", "rows": rows]
        for name in ["min_score", "max_score", "reason", "user", "order", "from", "to"] { object[name] = filters[name] }
        object["sorts"] = Filters.sorts.map { ["value": $0.value, "name": $0.name, "selected": $0.value == filters["sort"]] }
        object["actions"] = ["allow", "review", "challenge", "decline"].map { ["name": $0, "selected": $0 == filters["action"]] }
        object["labels"] = ["chargeback", "confirmed_fraud", "false_positive", "legitimate"].map {
            ["name": $0, "selected": $0 == filters["label"]]
        }
        if !answer.nextPageToken.isEmpty { object["next"] = filters.with(page: answer.nextPageToken) }
        return page("decisions", object, session: session)
    }

    /// The rows of decisions newer than `after` under the same filters, newest first: what the
    /// list's script adds at its top every few seconds.
    func newerRows(_ request: Request) async throws -> Response {
        let filters = Filters(request)
        var q = filters.query
        q.order = .oldest
        q.pageToken = String(Int64(filters["after"]) ?? 0)
        let answer = try await risk.call(RiskAPI.queryDecisions, q)
        let html = pages.render(["decisions": answer.decisions.reversed().map(Self.row)], withTemplate: "rows") ?? ""
        return Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func decision(_ id: Int64) async throws -> Decision {
        var q = QueryDecisionsRequest()
        q.decisionId = id
        q.limit = 1
        guard let d = try await risk.call(RiskAPI.queryDecisions, q).decisions.first else {
            throw RPCError(.notFound, "no decision \(id)")
        }
        return d
    }

    func decisionPage(id: Int64, _ session: ConsoleSession) async throws -> Response {
        let d = try await decision(id)
        var others = QueryDecisionsRequest()
        others.userId = d.userId
        others.withoutFeatures = true
        others.limit = 20
        let theirs = try await risk.call(RiskAPI.queryDecisions, others).decisions.filter { $0.decisionId != d.decisionId }
        // Other accounts seen on this device or IP, with how many of their decisions (of the newest 200).
        func sharing(_ edit: (inout QueryDecisionsRequest) -> Void) async throws -> [[String: Any]] {
            var q = QueryDecisionsRequest()
            (q.withoutFeatures, q.limit) = (true, 200)
            edit(&q)
            var counts: [Int64: Int] = [:]
            for other in try await risk.call(RiskAPI.queryDecisions, q).decisions where other.userId != d.userId {
                counts[other.userId, default: 0] += 1
            }
            return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(20).map {
                ["user": $0.key, "decisions": $0.value]
            }
        }
        // The user's recent events from ingest's log; the page is shown without them when ingest does not answer.
        let timeline = try? await timeline(of: d.userId)
        let sameDevice = d.device.isEmpty ? [] : try await sharing { $0.device = d.device }
        let sameIP = d.ip.isEmpty ? [] : try await sharing { $0.ip = d.ip }
        let scale = max(1, d.reasons.map { abs($0.contribution) }.max() ?? 1)
        var object = Self.row(d)
        object["currency"] = d.currency
        object["amount"] = String(format: "%.2f", d.amount)
        object["latency"] = d.latencyUs
        object["model"] = d.modelName.isEmpty ? "none" : "\(d.modelName) v\(d.modelVersion)"
        object["rules"] = d.rulesVersion
        object["degraded"] = d.degraded
        func shown(_ text: String) -> String { text.isEmpty ? "none" : text }
        (object["device"], object["ip"], object["channel"]) = (shown(d.device), shown(d.ip), shown(d.channel))
        object["reasons"] = d.reasons.map { r -> [String: Any] in
            [
                "kind": r.kind.name ?? "", "code": r.code, "description": r.description,
                "contribution": String(format: "%+.1f", r.contribution), "negative": r.contribution < 0,
                "width": Int(200 * abs(r.contribution) / scale),
            ]
        }
        // Mustache takes a present key as true, "" included: no label, no key.
        if d.label == .unspecified { object["label"] = nil }
        object["label_source"] = d.labelSource
        object["can_label"] = true
        if d.action == .review || d.action == .challenge { object["has_case"] = true }
        object["csrf"] = session.csrf
        object["kinds"] = ["confirmed_fraud", "chargeback", "false_positive", "legitimate"].map {
            ["kind": $0, "id": d.decisionId, "csrf": session.csrf]
        }
        object["others"] = theirs.map(Self.row)
        if let timeline {
            object["timeline"] = timeline.events.map(Self.timelineRow)
            object["timeline_note"] =
                timeline.events.isEmpty
                ? "No events of this user \(timeline.complete ? "in the log" : "among the latest \(timeline.scanned) of their partition")."
                : "The \(timeline.events.count) newest events of the user, newest first."
        } else {
            object["timeline_note"] = "Ingest did not answer: the user's events are not shown."
        }
        object["same_device"] = sameDevice
        object["same_ip"] = sameIP
        object["features"] = zip(d.featureNames, d.features).map { ["name": $0, "value": String(format: "%g", $1)] }
        return page("decision", ["title": "Decision \(d.decisionId)", "decision": object], session: session)
    }

    /// The decision made again from its stored inputs and versions (Replay), beside the stored one.
    func replayPage(id: Int64, _ session: ConsoleSession) async throws -> Response {
        var r = ReplayRequest()
        r.decisionId = String(id)
        let answer = try await risk.call(RiskAPI.replay, r, timeout: .seconds(30))
        let stored = answer.stored ?? Decision(), replayed = answer.replayed ?? Decision()
        func side(_ d: Decision) -> [String: Any] {
            [
                "score": d.score, "action": d.action.name ?? "", "probability": String(format: "%.6f", d.probability),
                "reasons": d.reasons.map {
                    ["kind": $0.kind.name ?? "", "code": $0.code, "contribution": String(format: "%+.3f", $0.contribution)]
                },
            ]
        }
        var object: [String: Any] = [
            "title": "Replay of decision \(id)", "id": id, "stored": side(stored), "replayed": side(replayed),
            "model": stored.modelName.isEmpty ? "none" : "\(stored.modelName) v\(stored.modelVersion)", "rules": stored.rulesVersion,
            "differences": answer.differences, "notes": answer.notes,
        ]
        if answer.matches { object["matches"] = true }
        return page("replay", object, session: session)
    }

    /// Labels the decision's order on behalf of the person signed in.
    func label(id: Int64, kind: String, _ session: ConsoleSession) async throws -> Response {
        guard let k = LabelKind(name: kind), k != .unspecified else {
            count("label_kind")
            return page("message", ["title": "Refused", "message": "'\(kind)' is not a label."], session: session, status: .badRequest)
        }
        let d = try await decision(id)
        var l = LabelRequest()
        l.orderId = d.orderId
        l.userId = d.userId
        l.kind = k
        l.source = "console:\(session.name)"
        _ = try await risk.call(RiskAPI.label, l)
        logger.info("\(session.name) labelled order \(d.orderId) \(kind)")
        return .redirect(to: "/decisions/\(id)")
    }
}
