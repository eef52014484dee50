import EventLog
import Foundation
import RPC
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import RiskControl

/// Several risk-control replicas on one JetStream decision stream: decisions, labels, rule
/// sets and list entries travel the stream, and each replica builds its view and puts the
/// rules and lists in force from it.
@Suite("Risk-control replicas on one decision stream", .serialized, .timeLimit(.minutes(4)))
struct RiskReplicaTests {
    @Test(
        """
        a decision scored by one replica is queried and labelled on the other; rules published on one and a list \
        entry added on the other decide on both, at the same version; a replica started empty takes all of it from the stream
        """
    )
    func replicasShareTheDecisionStream() async throws {
        try await NATSServers.exclusively {
            let nats = try NATSServers(count: 1)
            defer { nats.stop() }
            try await withCoreSuite(ingest: ingestSettings) { ingest, feature, _ in
                try await append(ingest.client, [event(.register, user: 1, at: baseMs, device: "d-1")])
                try await waitConsumed(ingest: ingest.client, consumer: feature.client)
                let log = try LogChoice(parsing: nats.url)
                let settings = riskSettings(feature: feature.rpcPort, ingest: ingest.rpcPort) {
                    $0.log = log
                    $0.logReplicas = 1
                }
                try await withHostedService(RiskControlService.self, settings: settings) { a in
                    try await withHostedService(RiskControlService.self, settings: settings) { b in
                        try await exercise(a.client, b.client)
                    }
                }
                // A replica with an empty data directory: the rules, lists and decisions come from the stream.
                try await withHostedService(RiskControlService.self, settings: settings) { fresh in
                    try await waitHealth(fresh.client, "rules", "2")
                    try await waitHealth(fresh.client, "lists", "1")
                    let blocked = try await score(fresh.client, scoreRequest(user: 7, order: "r-4", amount: 10, at: baseMs + 4000))
                    #expect(blocked.action == .decline && blocked.rulesVersion == 2)
                    var q = QueryDecisionsRequest()
                    q.limit = 50
                    let all = try await fresh.client.call(RiskAPI.queryDecisions, q).decisions
                    #expect(Set(all.map(\.orderId)) == ["r-1", "r-2", "r-3", "r-4"])
                    #expect(all.first { $0.orderId == "r-1" }?.label == .confirmedFraud)
                }
            }
        }
    }

    private func exercise(_ a: RPCClient, _ b: RPCClient) async throws {
        // Published on A: in force on A when answered, on B as soon as B has read it.
        let version = try await publishRules(a, "big: amount > 500 => review")
        #expect(version == 1)
        try await waitHealth(b, "rules", "1")
        let onB = try await score(b, scoreRequest(user: 1, order: "r-1", amount: 900, at: baseMs + 1000, device: "d-1"))
        #expect(onB.action == .review && onB.reasons.map(\.code) == ["big"] && onB.rulesVersion == 1)

        // Scored on B, found and labelled on A; ids from one stream never collide.
        var q = QueryDecisionsRequest()
        q.orderId = "r-1"
        let seen = try await a.call(RiskAPI.queryDecisions, q).decisions
        #expect(seen.map(\.decisionId) == [onB.decisionId])
        var label = LabelRequest()
        label.orderId = "r-1"
        label.kind = .confirmedFraud
        _ = try await a.call(RiskAPI.label, label)
        let onA = try await score(a, scoreRequest(user: 1, order: "r-2", amount: 20, at: baseMs + 2000, device: "d-1"))
        #expect(onA.decisionId != onB.decisionId && onA.action == .allow)
        let labelled = try await b.call(RiskAPI.queryDecisions, q).decisions
        #expect(labelled.first?.label == .confirmedFraud)

        // A list entry added on B declines on A; a second publish on B numbers after A's.
        var lists = UpdateListsRequest()
        var block = ListEntry()
        (block.list, block.field, block.value) = (.block, .user, "7")
        lists.add = [block]
        #expect(try await b.call(RiskAPI.updateLists, lists).size == 1)
        try await waitHealth(a, "lists", "1")
        let blocked = try await score(a, scoreRequest(user: 7, order: "r-3", amount: 10, at: baseMs + 3000))
        #expect(blocked.action == .decline && blocked.reasons.first?.code == "list:block:user")
        #expect(try await publishRules(b, "big: amount > 500 => decline") == 2)
        try await waitHealth(a, "rules", "2")
    }
}
