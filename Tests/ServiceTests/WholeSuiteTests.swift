import Foundation
import RPC
import TestSupport
import Testing
import Wire

/// All five services as real processes on loopback, with tokens on: the job `make run` does,
/// then the risk team's loop (query, label) and the audit.
@Suite("The whole suite", .serialized, .timeLimit(.minutes(5)))
struct WholeSuiteTests {
    @Test(
        """
        make run's demo against five processes with tokens: import, train, publish; recommend and risk-control \
        answer with the new versions; a decision is queried and labelled and the label reaches the log; the audit \
        names every admin call
        """
    )
    func wholeSuite() async throws {
        let tokens = try RoleTokens()
        let names = ["ingest", "feature", "model", "risk-control", "recommend"]
        let ports = Dictionary(uniqueKeysWithValues: names.map { ($0, freePort()) })
        var environment = ["PERSONA_TOKENS_FILE": tokens.file]
        for name in names {
            environment["PERSONA_\(name.uppercased().replacingOccurrences(of: "-", with: "_"))_ADDR"] = "127.0.0.1:\(ports[name]!)"
        }
        let processes = try names.map { name in
            try ChildProcess(
                "persona-\(name)",
                ["--port", "\(ports[name]!)", "--metrics-port", "0", "--data-dir", temporaryDirectory(), "--log-level", "info"],
                environment: environment)
        }
        defer { processes.forEach { $0.kill() } }
        for name in names {
            let client = RPCClient(host: "127.0.0.1", port: ports[name]!)
            _ = try await waitHealthy(client)
            await client.shutdown()
        }
        let cli = ChildProcess.productsDirectory.appendingPathComponent("persona").path
        func persona(_ arguments: [String]) async throws -> String {
            let run = try await runProcess(cli, arguments, environment: environment)
            #expect(run.status == 0, "persona \(arguments.joined(separator: " ")): \(run.stderr)")
            return String(decoding: run.stdout, as: UTF8.self)
        }

        // The demo: import the samples, train and publish five models and the rules, show a
        // profile, recommendations and a decision.
        var demoEnvironment = environment
        demoEnvironment["PERSONA"] = cli
        demoEnvironment["DATA"] = temporaryDirectory()
        // The debug build trains SASRec several times slower than release: a few epochs show
        // the kind trains and publishes (its quality is the sequence benchmark's).
        demoEnvironment["SEQUENCE_EPOCHS"] = "3"
        try FileManager.default.createDirectory(atPath: demoEnvironment["DATA"]!, withIntermediateDirectories: true)
        let demo = try await runProcess(repositoryRoot.appendingPathComponent("scripts/demo.sh").path, [], environment: demoEnvironment)
        let shown = String(decoding: demo.stdout, as: UTF8.self)
        #expect(demo.status == 0, "demo: \(demo.stderr)\n\(shown)")
        #expect(shown.contains("accepted    2562") && shown.contains("read by feature and model"))
        for kind in ["popularity", "item_knn", "als", "content", "sequence", "fraud", "segments"] {
            #expect(shown.contains("\(kind) v1 ("), "\(kind) not trained")
        }
        #expect(shown.contains("user 17850   tags:"))
        #expect(shown.contains("user 17850: 5 items from als v1"))
        // Items are shown with their catalogue titles (the sample's item_upsert events).
        let lines = shown.split(separator: "\n").map(String.init)
        let header = try #require(lines.firstIndex { $0.hasPrefix("#  ITEM") && $0.contains("TITLE") })
        let first = lines[header + 1].components(separatedBy: "  ").filter { !$0.isEmpty }
        #expect(first.count >= 3 && first[2] != "-" && first[2].uppercased() == first[2], "\(lines[header + 1])")
        let decisionLine = try #require(shown.split(separator: "\n").first { $0.hasPrefix("decision ") })
        #expect(decisionLine.contains("[fraud v1, p=") && decisionLine.contains("rules v1"))
        #expect(shown.contains("velocity"))
        let order = try #require(decisionLine.split(separator: " ").first { $0.hasPrefix("demo-") }.map(String.init))

        // The online model learned the 100 labelled orders by itself, as they reached the log.
        var online = ""
        for _ in 0..<100 where !online.contains("fraud_online") {
            online = try await persona(["models"])
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(online.contains("fraud_online"), "\(online)")

        // Recommend and risk-control serve the new versions.
        func client(_ service: String, _ role: Role) -> RPCClient {
            var config = RPCClient.Config.defaults(host: "127.0.0.1", port: ports[service]!)
            config.credential = tokens.secrets[role]!
            return RPCClient(config: config)
        }
        let recommend = client("recommend", .service)
        var ask = RecommendRequest()
        ask.userId = 17850
        ask.n = 5
        let answer = try await recommend.call(RecommendAPI.recommend, ask, timeout: .seconds(5))
        #expect(answer.modelName == "als" && answer.modelVersion == 1 && answer.items.count == 5)
        await recommend.shutdown()

        // The risk team finds the decision and labels it; the label reaches the log.
        #expect(try await persona(["risk", "query", "--order", order]).contains(order))
        // Made again from its stored request, features, model version and rules, it matches.
        let decisionID = try #require(decisionLine.split(separator: " ").dropFirst().first.map { String($0.dropLast()) })
        let replayed = try await persona(["risk", "replay", decisionID])
        #expect(replayed.contains("\nmatches") && replayed.contains("replayed: decision \(decisionID): order \(order)"), "\(replayed)")
        #expect(try await persona(["risk", "cases"]).contains("TEAM"))
        // An audience of the imported customers, defined, listed and exported as CSV.
        #expect(try await persona(["audience", "define", "spenders", "monetary >= 1000"]).contains("defined audience spenders"))
        let audiences = try await persona(["audience"])
        let size = try #require(
            audiences.split(separator: "\n").first { $0.hasPrefix("spenders") }?.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        )
        let csv = try await persona(["audience", "members", "spenders", "--csv", "-"]).split(separator: "\n")
        #expect(size > 0 && csv.first == "user_id" && csv.count == size + 1, "\(audiences)")
        #expect(try await persona(["risk", "label", order, "fraud", "--source", "suite-test"]).contains(order))
        let risk = client("risk-control", .analyst)
        var query = QueryDecisionsRequest()
        query.orderId = order
        let labelled = try await risk.call(RiskAPI.queryDecisions, query, timeout: .seconds(5)).decisions
        #expect(labelled.count == 1 && labelled.first?.label == .confirmedFraud)
        await risk.shutdown()
        let ingest = client("ingest", .consumer)
        var found = false
        for partition in 0..<4 where !found {
            var read = ReadRequest()
            read.partition = UInt32(partition)
            read.maxEvents = 10_000
            var offset: UInt64 = 0
            while !found {
                read.fromOffset = offset
                let batch = try await ingest.call(IngestAPI.read, read, timeout: .seconds(5)).events
                guard let last = batch.last else { break }
                found = batch.contains {
                    $0.event?.kind == .label && $0.event?.label?.orderId == order && $0.event?.label?.source == "suite-test"
                }
                offset = last.offset + 1
            }
        }
        #expect(found, "the label event of \(order) is not in the log")
        await ingest.shutdown()

        // Without a token only Health answers.
        #expect(await rawCall(ports["recommend"]!, RecommendAPI.recommend.id, credential: nil) == .unauthenticated)
        #expect(await rawCall(ports["recommend"]!, HealthAPI.check.id, credential: nil) == .ok)

        // The audit log names every admin call, with the CLI's admin token.
        let audit = try await persona(["audit"])
        let rows = audit.split(separator: "\n").dropFirst()
        #expect(rows.filter { $0.contains("Model/Train") && $0.contains("admin-1") }.count == 7, "\(audit)")
        #expect(rows.contains { $0.contains("Risk/PublishRules") && $0.contains("published rules v1 (5 rules)") })
        #expect(rows.contains { $0.contains("Risk/Label") && $0.contains("labelled order \(order)") })
    }
}
