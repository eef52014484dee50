import Datasets
import Foundation
import Ingest
import Logging
import RPC
import RiskControl
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Console

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite("Risk console over HTTP", .serialized, .timeLimit(.minutes(3)))
struct ConsoleTests {
    @Test(
        """
        sign-in refuses a wrong password and locks after five; the decisions list and a decision come from risk-control; \
        a label posted from the page reaches it on behalf of the person; its case is taken, commented and resolved, labelling the \
        order; a form without its CSRF token is refused; sign-out ends the session
        """
    )
    func signInListLabel() async throws {
        // Labels go through ingest's log; the feature service is away (decisions are made by the failure policy).
        try await withHostedService(IngestService.self, settings: IngestSettings()) { ingest in
            var riskSettings = RiskSettings()
            (riskSettings.featurePort, riskSettings.ingestPort, riskSettings.modelPort) = (freePort(), ingest.rpcPort, freePort())
            riskSettings.featureTimeout = .milliseconds(200)
            try await withHostedService(RiskControlService.self, settings: riskSettings) { risk in
                var rules = RulesSource()
                rules.source = "big: amount > 500 => review"
                _ = try await risk.client.call(RiskAPI.publishRules, rules)
                for (i, amount) in [40.0, 900, 25].enumerated() {
                    var r = ScoreRequest()
                    // Orders 1 and 2 come from one device, of users 7 and 8.
                    (r.userId, r.orderId, r.amount, r.currency) = (i == 2 ? 8 : 7, "web-\(i)", amount, "EUR")
                    r.deviceId = i == 0 ? "own-device" : "shared-device"
                    r.timestampMs = 1_764_000_000_000 + Int64(i) * 1000
                    _ = try await risk.client.call(RiskAPI.score, r, timeout: .seconds(5))
                }

                // User 7's events in the log: the decision page's timeline.
                var login = Event(), view = Event(), failed = Event()
                (login.eventId, login.kind, login.userId, login.timestampMs, login.deviceId) = (
                    "e1", .login, 7, 1_763_999_000_000, "own-device"
                )
                login.login = Login()
                login.login?.success = true
                (view.eventId, view.kind, view.userId, view.timestampMs, view.itemId) = ("e2", .view, 7, 1_763_999_100_000, 4242)
                (failed.eventId, failed.kind, failed.userId, failed.timestampMs) = ("e3", .login, 7, 1_763_999_200_000)
                failed.login = Login()
                var other = view
                (other.eventId, other.userId) = ("e4", 8)
                try await append(ingest.client, [login, view, failed, other])

                var settings = ConsoleSettings(port: 0, dataDir: temporaryDirectory())
                settings.riskPort = risk.rpcPort
                settings.otherPeers[.ingest] = ("127.0.0.1", ingest.rpcPort)
                settings.bcryptCost = 4
                let console = try Console(
                    settings: settings,
                    logger: {
                        var l = Logger(label: "console-test")
                        l.logLevel = .critical  // cancelling the server's task logs its shutdown as an error
                        return l
                    }())
                let people = try People(path: settings.dataDir + "/console.db", bcryptCost: 4)
                try people.add(name: "alice", role: .analyst, password: "correct horse battery", nowMs: 0)
                try people.add(name: "bob", role: .analyst, password: "staple battery horse", nowMs: 0)
                let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
                let running = Task { try await console.application { portSink.yield($0) }.runService(gracefulShutdownSignals: []) }
                defer { running.cancel() }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())

                // Signed out, every page sends you to sign in.
                let alice = Browser(port: port)
                #expect(try await alice.get("/decisions").location == "/signin")
                let form = try await alice.get("/signin")
                #expect(!form.body.contains("nil") && !form.body.contains(#"id="error""#), "no error on a fresh form")
                let signInToken = try #require(Browser.csrf(form))
                let wrong = try await alice.post("/signin", ["csrf": signInToken, "name": "alice", "password": "wrong password!"])
                #expect(wrong.status == 401 && wrong.body.contains("Wrong name or password"))
                // Without the sign-in form's token, even the right password is refused.
                let forged = try await Browser(port: port).post("/signin", ["name": "alice", "password": "correct horse battery"])
                #expect(forged.status == 403)
                let signedIn = try await alice.post("/signin", ["csrf": signInToken, "name": "alice", "password": "correct horse battery"])
                #expect(signedIn.status == 303 && signedIn.location == "/decisions")
                #expect(alice.cookies["persona_session"]?.count == 64)

                // The list, newest first, filtered by action.
                let list = try await alice.get("/decisions")
                #expect(list.status == 200 && list.body.contains("web-2") && list.body.contains("web-0"))
                let reviews = try await alice.get("/decisions?action=review")
                #expect(reviews.body.contains("web-1") && !reviews.body.contains("web-0"))
                let id = try #require(
                    reviews.body.range(of: #"href="/decisions/([0-9]+)""#, options: .regularExpression).map {
                        String(reviews.body[$0].dropFirst(#"href="/decisions/"#.count).dropLast())
                    })
                let decision = try await alice.get("/decisions/\(id)")
                #expect(decision.status == 200 && decision.body.contains("big") && decision.body.contains(#"id="action">review"#))
                #expect(decision.body.contains("Not labelled"))
                // The user's events, newest first, from ingest's log; user 8's view is not among them.
                #expect(decision.body.contains("The 3 newest events of the user, newest first."), "\(decision.body)")
                let timeline = try #require(decision.body.range(of: #"<table id="timeline">[\s\S]*?</table>"#, options: .regularExpression))
                let rows = decision.body[timeline].components(separatedBy: "<tr").dropFirst()
                #expect(rows.count == 3 && rows.first?.contains("failed") == true && rows.last?.contains("succeeded") == true)
                #expect(decision.body[timeline].contains("item 4242") && rows.first?.hasPrefix(#" class="removed""#) == true)
                #expect(
                    decision.body.contains(#"<td>device</td><td><a href="/decisions?user=8">8</a></td><td>1</td>"#),
                    "user 8 shares the device")
                // QueryDecisions takes a raw device and compares its pseudonym.
                var byDevice = QueryDecisionsRequest()
                byDevice.device = "shared-device"
                #expect(Set(try await risk.client.call(RiskAPI.queryDecisions, byDevice).decisions.map(\.orderId)) == ["web-1", "web-2"])
                #expect(try await alice.get("/decisions/999999").status == 404)
                let replay = try await alice.get("/decisions/\(id)/replay")
                #expect(replay.status == 200 && replay.body.contains("<strong>Matches</strong>"), "\(replay.body)")

                // A label from the page, with the session's token; without it, refused.
                let token = try #require(Browser.csrf(decision))
                #expect(try await alice.post("/decisions/\(id)/label", ["kind": "confirmed_fraud"]).status == 403)
                let labelled = try await alice.post("/decisions/\(id)/label", ["csrf": token, "kind": "confirmed_fraud"])
                #expect(labelled.status == 303 && labelled.location == "/decisions/\(id)", "\(labelled.body)")
                var q = QueryDecisionsRequest()
                q.orderId = "web-1"
                let stored = try #require(try await risk.client.call(RiskAPI.queryDecisions, q).decisions.first)
                #expect(stored.label == .confirmedFraud && stored.labelSource == "console:alice")
                // Risk-control's audit log names the person the console acted for, beside its token.
                let audit = try await risk.client.call(AuditAPI.read, AuditRequest()).entries
                #expect(audit.contains { $0.method == "Risk/Label" && $0.actingFor == "alice" && $0.status == "ok" }, "\(audit)")
                #expect(try await alice.get("/decisions/\(id)").body.contains("Labelled <strong>confirmed_fraud</strong> by console:alice"))

                // The review opened a case: taken from the order team's queue, commented, resolved.
                let queue = try await alice.get("/cases")
                #expect(queue.status == 200 && queue.body.contains(#"id="take-order""#) && queue.body.contains("web-1"))
                #expect(try await alice.post("/cases/take", ["team": "order"]).status == 403, "no CSRF token")
                let took = try await alice.post("/cases/take", ["csrf": token, "team": "order"])
                #expect(took.status == 303 && took.location == "/cases/\(id)", "the case's id is its decision's")
                let casePage = try await alice.get("/cases/\(id)")
                #expect(casePage.body.contains(#"id="status">investigating"#) && casePage.body.contains(#"id="assignee">alice"#))
                let empty = try await alice.post("/cases/take", ["csrf": token, "team": "order"])
                #expect(empty.location?.hasPrefix("/cases?team=order&notice=") == true)
                #expect(try await alice.post("/cases/\(id)", ["csrf": token, "comment": ""]).status == 400, "an empty change")
                _ = try await alice.post("/cases/\(id)", ["csrf": token, "comment": "customer confirmed the order by phone"])
                let resolved = try await alice.post("/cases/\(id)", ["csrf": token, "comment": "not fraud", "outcome": "false_positive"])
                #expect(resolved.status == 303)
                let closed = try await alice.get("/cases/\(id)")
                #expect(
                    closed.body.contains(#"id="outcome">false_positive"#) && closed.body.contains("customer confirmed the order by phone"))
                #expect(closed.body.contains("resolved it: false_positive"))
                let relabelled = try #require(try await risk.client.call(RiskAPI.queryDecisions, q).decisions.first)
                #expect(relabelled.label == .falsePositive && relabelled.labelSource == "case:alice")
                #expect(try await alice.post("/cases/\(id)", ["csrf": token, "outcome": "fraud"]).status == 409, "resolved already")

                // Five wrong passwords lock bob out, the right one included, until the lock ends.
                let bob = Browser(port: port)
                let bobToken = try #require(Browser.csrf(try await bob.get("/signin")))
                for _ in 0..<5 { _ = try await bob.post("/signin", ["csrf": bobToken, "name": "bob", "password": "not his password"]) }
                let locked = try await bob.post("/signin", ["csrf": bobToken, "name": "bob", "password": "staple battery horse"])
                #expect(locked.status == 401 && locked.body.contains("locked"))

                // Sign-out ends the session on the server, not only in the browser.
                let session = try #require(alice.cookies["persona_session"])
                #expect(try await alice.post("/signout", ["csrf": token]).location == "/signin")
                alice.cookies["persona_session"] = session
                #expect(try await alice.get("/decisions").location == "/signin")
                let metrics = try await alice.get("/metrics")
                #expect(metrics.body.contains(#"persona_console_refused_total{reason="csrf"} 3"#))
                running.cancel()
                _ = await running.result
                await console.close()
            }
        }
    }

    @Test("times print as ISO 8601 in UTC, as Foundation's formatter prints them")
    func times() {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        for ms: Int64 in [0, 1_764_000_000_000, 1_709_510_399_999, 951_782_400_000, -86_400_001, 4_102_444_800_000] {
            #expect(Console.time(ms) == f.string(from: Date(timeIntervalSince1970: (Double(ms) / 1000).rounded(.down))), "\(ms)")
        }
    }

    @Test("the rules diff marks removed lines before the lines that replace them, and keeps the common ones")
    func rulesDiff() {
        let diff = Console.diff(
            ["a: x > 1 => review", "b: y > 2 => decline", "c: z => allow"],
            ["a: x > 1 => review", "b: y > 3 => decline", "c: z => allow", "d: w => review"])
        #expect(
            diff.map { "\($0.mark)\($0.text)" } == [
                " a: x > 1 => review", "-b: y > 2 => decline", "+b: y > 3 => decline", " c: z => allow", "+d: w => review",
            ])
        #expect(Console.diff([], ["x"]).map(\.mark) == ["+"] && Console.diff(["x"], []).map(\.mark) == ["-"])
    }

    @Test("list CSV cells: quoted where they hold commas or quotes, and read back the same")
    func listCSV() {
        let cells = ["block", "email", "a@b.c", "said \"no\", twice", ""]
        let line = cells.map(CSV.cell).joined(separator: ",")
        #expect(line == #"block,email,a@b.c,"said ""no"", twice","#)
        #expect(CSV.fields(line) == cells)
        #expect(CSV.fields(#""a, b",c,"#) == ["a, b", "c", ""])
    }

    @Test(
        """
        four-eyes: a rule author's publish waits as a draft; its author and an analyst may not approve it; a second \
        person's approval publishes it
        """
    )
    func fourEyes() async throws {
        var riskSettings = RiskSettings()
        (riskSettings.featurePort, riskSettings.ingestPort, riskSettings.modelPort) = (freePort(), freePort(), freePort())
        riskSettings.featureTimeout = .milliseconds(200)
        try await withHostedService(RiskControlService.self, settings: riskSettings) { risk in
            var settings = ConsoleSettings(port: 0, dataDir: temporaryDirectory())
            (settings.riskPort, settings.bcryptCost, settings.fourEyes) = (risk.rpcPort, 4, true)
            var logger = Logger(label: "console-test")
            logger.logLevel = .critical
            let console = try Console(settings: settings, logger: logger)
            let people = try People(path: settings.dataDir + "/console.db", bcryptCost: 4)
            for (name, role) in [("rob", ConsoleRole.ruleAuthor), ("ada", .admin), ("alice", .analyst)] {
                try people.add(name: name, role: role, password: "password of \(name)", nowMs: 0)
            }
            let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
            let running = Task { try await console.application { portSink.yield($0) }.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            func signedIn(_ name: String) async throws -> (Browser, String) {
                let b = Browser(port: port)
                let token = try #require(Browser.csrf(try await b.get("/signin")))
                #expect(try await b.post("/signin", ["csrf": token, "name": name, "password": "password of \(name)"]).status == 303)
                return (b, try #require(Browser.csrf(try await b.get("/rules"))))
            }
            func version() async throws -> UInt32 {
                try await risk.client.call(RiskAPI.getRules, GetRulesRequest()).sets.first { !$0.shadow }?.version ?? 0
            }

            let (rob, robToken) = try await signedIn("rob")
            let submitted = try await rob.post("/rules/publish", ["csrf": robToken, "source": "big: amount > 500 => review"])
            #expect(submitted.status == 200 && submitted.body.contains("awaits a second person"))
            #expect(try await version() == 0, "nothing is published before approval")
            let invalid = try await rob.post("/rules/publish", ["csrf": robToken, "source": "big: amount > => review"])
            #expect(invalid.body.contains("line 1, column"), "a draft with errors is not kept")
            #expect(try people.pendingDrafts().count == 1)

            #expect(try await rob.post("/rules/review", ["csrf": robToken, "draft": "1", "decision": "approve"]).status == 403)
            let (alice, aliceToken) = try await signedIn("alice")
            #expect(try await alice.post("/rules/review", ["csrf": aliceToken, "draft": "1", "decision": "approve"]).status == 403)
            #expect(try await version() == 0)

            let (ada, adaToken) = try await signedIn("ada")
            #expect(try await ada.get("/rules").body.contains(#"id="approve-1""#))
            #expect(try await ada.post("/rules/review", ["csrf": adaToken, "draft": "1", "decision": "approve"]).status == 303)
            #expect(try await version() == 1)
            #expect(try people.pendingDrafts().isEmpty)
            let audit = try await risk.client.call(AuditAPI.read, AuditRequest()).entries
            #expect(audit.contains { $0.method == "Risk/PublishRules" && $0.actingFor == "ada" })
            running.cancel()
            _ = await running.result
            await console.close()
        }
    }
}
