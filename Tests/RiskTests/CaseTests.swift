import Foundation
import RPC
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import RiskControl

/// Cases through a real risk-control: opened by decisions to review, worked from the queue
/// to an outcome that labels the order in the event log, and rebuilt from the decision log.
@Suite("Risk cases", .serialized, .timeLimit(.minutes(3)))
struct CaseTests {
    @Test(
        """
        a review opens a case in its team's queue; two analysts taking next at once get different cases; comments, \
        status and team changes are kept with who made them; the outcome labels the order; a rebuilt view has the same cases
        """
    )
    func workCases() async throws {
        try await withCoreSuite(ingest: ingestSettings) { ingest, feature, _ in
            let settings = riskSettings(feature: feature.rpcPort, ingest: ingest.rpcPort)
            let dataDir = temporaryDirectory()
            let before = try await withHostedService(RiskControlService.self, settings: settings, dataDir: dataDir) { risk in
                let client = risk.client
                _ = try await publishRules(client, "big: amount > 100 => review \"a big order\"")
                for (n, amount) in [200.0, 300, 10, 400].enumerated() {
                    _ = try await score(
                        client, scoreRequest(user: Int64(10 + n), order: "c-\(n)", amount: amount, at: baseMs + Int64(n) * 1000))
                }
                var all = QueryCasesRequest()
                let opened = try await client.call(RiskAPI.queryCases, all)
                #expect(opened.cases.map(\.orderId) == ["c-0", "c-1", "c-3"], "the allowed order opens none")
                #expect(opened.cases.allSatisfy { $0.status == .open && $0.assignee.isEmpty && $0.team == "order" && $0.action == .review })
                #expect(opened.teams.map(\.team) == ["order"] && opened.teams[0].open == 3 && opened.teams[0].unassigned == 3)

                // Two analysts take next at once: the log orders their takes, each gets one.
                func take(_ person: String) async throws -> Case? {
                    var r = TakeNextCaseRequest()
                    r.team = "order"
                    return try await ActingFor.$person.withValue(person) { try await client.call(RiskAPI.takeNextCase, r).case }
                }
                async let a = take("alice")
                async let b = take("bob")
                let (taken1, taken2) = try await (a, b)
                let aliceCase = try #require(taken1), bobCase = try #require(taken2)
                #expect(aliceCase.caseId != bobCase.caseId)
                #expect(Set([aliceCase.orderId, bobCase.orderId]) == ["c-0", "c-1"], "the oldest two")
                #expect(aliceCase.assignee == "alice" && aliceCase.status == .investigating && bobCase.assignee == "bob")
                let third = try #require(try await take("carol"))
                #expect(third.orderId == "c-3")
                #expect(try await take("dave") == nil, "the queue is empty")

                func update(_ person: String, _ edit: (inout UpdateCaseRequest) -> Void) async throws -> Case {
                    var r = UpdateCaseRequest()
                    r.caseId = aliceCase.caseId
                    edit(&r)
                    return try await ActingFor.$person.withValue(person) { try await client.call(RiskAPI.updateCase, r) }
                }
                let waiting = try await update("alice") {
                    $0.comment = "asked the customer for a photo of the card"
                    $0.status = .waiting
                }
                #expect(waiting.status == .waiting && waiting.comments == 1)
                await #expect { try await update("alice") { $0.status = .resolved } } throws: {
                    ($0 as? RPCError)?.code == .invalidArgument
                }
                await #expect { try await update("alice") { _ in } } throws: { ($0 as? RPCError)?.code == .invalidArgument }
                await #expect { try await update("alice") { $0.team = "Bad Team!" } } throws: {
                    ($0 as? RPCError)?.code == .invalidArgument
                }
                var missing = GetCaseRequest()
                missing.caseId = "999999"
                await #expect { try await client.call(RiskAPI.getCase, missing) } throws: { ($0 as? RPCError)?.code == .notFound }

                let resolved = try await update("alice") {
                    $0.outcome = .fraud
                    $0.comment = "card reported stolen"
                }
                #expect(resolved.status == .resolved && resolved.outcome == .fraud && resolved.comments == 2)
                await #expect { try await update("bob") { $0.outcome = .legitimate } } throws: {
                    ($0 as? RPCError)?.code == .failedPrecondition
                }
                // The outcome labelled the order, in the decision view and in the event log.
                var q = QueryDecisionsRequest()
                q.orderId = aliceCase.orderId
                let labelled = try #require(try await client.call(RiskAPI.queryDecisions, q).decisions.first)
                #expect(labelled.label == .confirmedFraud && labelled.labelSource == "case:alice")
                let log = try await readLog(ingest.client)
                #expect(log.contains { $0.kind == .label && $0.label?.orderId == aliceCase.orderId && $0.label?.kind == .confirmedFraud })

                // Bob hands his case to the payments team, unassigned.
                var moveBob = UpdateCaseRequest()
                moveBob.caseId = bobCase.caseId
                moveBob.team = "payments"
                moveBob.assign = true
                moveBob.status = .open
                _ = try await ActingFor.$person.withValue("bob") { try await client.call(RiskAPI.updateCase, moveBob) }
                all.team = "payments"
                let payments = try await client.call(RiskAPI.queryCases, all)
                #expect(payments.cases.map(\.caseId) == [bobCase.caseId] && payments.cases[0].assignee.isEmpty)
                let counts = Dictionary(uniqueKeysWithValues: payments.teams.map { ($0.team, $0) })
                #expect(counts["payments"]?.open == 1 && counts["payments"]?.unassigned == 1)
                #expect(counts["order"]?.investigating == 1 && counts["order"]?.open == 0 && counts["order"]?.waiting == 0)

                var get = GetCaseRequest()
                get.caseId = aliceCase.caseId
                let history = try await client.call(RiskAPI.getCase, get).history
                #expect(history.map(\.by) == ["alice", "alice", "alice"])
                #expect(history.map(\.take) == [true, false, false] && history[2].outcome == .fraud)
                all.team = ""
                all.includeResolved = true
                return try await client.call(RiskAPI.queryCases, all)
            }
            // The view deleted while the service is down: rebuilt from the decision log, the same cases.
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dataDir + "/decision-view.db" + suffix) }
            try await withHostedService(RiskControlService.self, settings: settings, dataDir: dataDir) { risk in
                var all = QueryCasesRequest()
                all.includeResolved = true
                let after = try await risk.client.call(RiskAPI.queryCases, all)
                #expect(after.cases == before.cases && after.teams == before.teams)
                #expect(after.cases.count == 3)
            }
        }
    }
}
