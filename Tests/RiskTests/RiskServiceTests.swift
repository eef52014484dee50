import Datasets
import Feature
import Foundation
import Ingest
import Model
import RPC
import ServiceKit
import Synchronization
import TestSupport
import Testing
import Wire

@testable import RiskControl

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// 2024-03-04 00:00:00 UTC.
let baseMs: Int64 = 1_709_510_400_000

/// One pseudonym key file for ingest and risk-control, as a suite shares it.
let sharedKeyFile: String = {
    let path = temporaryDirectory() + ".key"
    try! Data((0..<32).map { UInt8($0 * 7 + 3) }).write(to: URL(fileURLWithPath: path))
    return path
}()

/// Ingest's settings with the shared pseudonym key.
var ingestSettings: IngestSettings {
    var s = IngestSettings()
    s.pseudonymKeyFile = sharedKeyFile
    return s
}

/// Settings for a risk-control talking to these peers, with the pseudonym key ingest uses.
func riskSettings(feature: Int, ingest: Int = freePort(), model: Int = freePort(), _ edit: (inout RiskSettings) -> Void = { _ in })
    -> RiskSettings
{
    var s = RiskSettings()
    (s.featurePort, s.ingestPort, s.modelPort) = (feature, ingest, model)
    s.pseudonymKeyFile = sharedKeyFile
    s.featureTimeout = .milliseconds(500)
    edit(&s)
    return s
}

func event(_ kind: EventKind, user: Int64, at ms: Int64, device: String = "", ip: String = "", order: String = "", amount: Double = 0)
    -> Event
{
    var e = Event()
    e.eventId = "\(kind.rawValue)-\(user)-\(ms)"
    e.kind = kind
    e.userId = user
    e.timestampMs = ms
    e.deviceId = device
    e.ip = ip
    switch kind {
    case .register: e.register = Register()
    case .login:
        var l = Login()
        l.success = true
        e.login = l
    case .purchase:
        var o = Order()
        o.orderId = order
        o.total = amount
        var line = OrderLine()
        line.itemId = 1
        line.quantity = 1
        line.unitPrice = amount
        o.lines = [line]
        e.order = o
    default: break
    }
    return e
}

func scoreRequest(user: Int64, order: String, amount: Double, at ms: Int64, device: String = "", ip: String = "") -> ScoreRequest {
    var r = ScoreRequest()
    r.userId = user
    r.orderId = order
    r.amount = amount
    r.currency = "EUR"
    r.timestampMs = ms
    r.deviceId = device
    r.ip = ip
    return r
}

func score(_ client: RPCClient, _ r: ScoreRequest, timeout: Duration = .seconds(5)) async throws -> Decision {
    try #require(try await client.call(RiskAPI.score, r, timeout: timeout).decision)
}

func featureValue(_ d: Decision, _ name: String) -> Float? {
    d.featureNames.firstIndex(of: name).map { d.features[$0] }
}

func publishRules(_ client: RPCClient, _ source: String, shadow: Bool = false) async throws -> UInt32 {
    var r = RulesSource()
    r.source = source
    r.shadow = shadow
    return try await client.call(RiskAPI.publishRules, r).version
}

func metricsText(_ port: Int) async throws -> String {
    let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
    return String(decoding: data, as: UTF8.self)
}

@Suite("Risk-control service", .serialized, .timeLimit(.minutes(4)))
struct RiskServiceTests {
    @Test(
        """
        Score reads features as of the request (a device the log has not seen with this user counts them in), rules \
        and lists decide, decisions are queried, labelled into the log and backtested
        """
    )
    func scoreQueryLabelBacktest() async throws {
        try await withCoreSuite(ingest: ingestSettings) { ingest, feature, _ in
            // Users 1 and 2 were seen with the same device; user 3 is new.
            try await append(
                ingest.client,
                [
                    event(.register, user: 1, at: baseMs, device: "ring-device", ip: "10.0.0.1"),
                    event(.login, user: 1, at: baseMs + 1000, device: "ring-device", ip: "10.0.0.1"),
                    event(.purchase, user: 2, at: baseMs + 2000, device: "ring-device", ip: "10.0.0.2", order: "old-1", amount: 30),
                ])
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            let settings = riskSettings(feature: feature.rpcPort, ingest: ingest.rpcPort)
            try await withHostedService(RiskControlService.self, settings: settings) { risk in
                let client = risk.client
                // Validation names line and column; nothing is published.
                var bad = RulesSource()
                bad.source = "ok: amount > 1 => review\nring: users_sharing_devce >= 2 => review"
                let validated = try await client.call(RiskAPI.validateRules, bad)
                #expect(validated.errors.count == 1 && validated.errors[0].line == 2 && validated.errors[0].column == 7)
                #expect(validated.errors[0].message.contains("did you mean 'users_sharing_device'"))
                await #expect { try await client.call(RiskAPI.publishRules, bad) } throws: { ($0 as? RPCError)?.code == .invalidArgument }

                let v1 = try await publishRules(
                    client,
                    """
                    ring: users_sharing_device >= 2 => review, score +300 "device shared with other accounts"
                    big_new: amount > 5000 and not known_user => decline "new account, high amount"
                    """)
                #expect(v1 == 1)

                let ringed = try await score(
                    client, scoreRequest(user: 3, order: "o-3", amount: 50, at: baseMs + 3000, device: "ring-device", ip: "10.9.9.9"))
                #expect(
                    featureValue(ringed, "users_sharing_device") == 2,
                    "users 1 and 2, plus this one: \(ringed.featureNames) \(ringed.features)")
                #expect(featureValue(ringed, "users_sharing_ip") == nil)
                #expect(ringed.action == .review && ringed.score == 300 && !ringed.fraud)
                #expect(ringed.reasons.map(\.code) == ["ring"] && ringed.reasons[0].kind == .rule)
                #expect(ringed.rulesVersion == 1 && !ringed.decisionId.isEmpty && ringed.latencyUs > 0 && !ringed.knownUser)
                // Stored pseudonymised, as ingest stores the log.
                #expect(ringed.device.hasPrefix("p:") && ringed.device != "ring-device")

                let fresh = try await score(
                    client, scoreRequest(user: 4, order: "o-4", amount: 9000, at: baseMs + 4000, device: "fresh-device"))
                #expect(featureValue(fresh, "users_sharing_device") == 0)
                #expect(fresh.action == .decline && fresh.fraud && fresh.reasons.map(\.code) == ["big_new"])

                // A known user passes the same amount.
                let known = try await score(
                    client, scoreRequest(user: 2, order: "o-2", amount: 9000, at: baseMs + 5000, device: "other-device"))
                #expect(known.knownUser && known.action == .allow, "\(known.reasons)")

                // Lists come first: block the fresh device, allow user 3.
                var lists = UpdateListsRequest()
                var block = ListEntry()
                block.list = .block
                block.field = .device
                block.value = "fresh-device"
                block.reason = "seen in a chargeback ring"
                var allow = ListEntry()
                allow.list = .allow
                allow.field = .user
                allow.value = "3"
                lists.add = [block, allow]
                #expect(try await client.call(RiskAPI.updateLists, lists).size == 2)
                let blocked = try await score(
                    client, scoreRequest(user: 5, order: "o-5", amount: 1, at: baseMs + 6000, device: "fresh-device"))
                #expect(blocked.action == .decline && blocked.score == 1000 && blocked.reasons.map(\.code) == ["list:block:device"])
                #expect(blocked.reasons[0].description == "seen in a chargeback ring")
                let allowed = try await score(
                    client, scoreRequest(user: 3, order: "o-3b", amount: 9000, at: baseMs + 7000, device: "ring-device"))
                #expect(allowed.action == .allow && allowed.reasons.map(\.code) == ["list:allow:user"])
                let entries = try await client.call(RiskAPI.getLists, GetListsRequest()).entries
                #expect(entries.count == 2 && entries.contains { $0.field == .device && $0.value.hasPrefix("p:") })
                // An expired entry no longer matches.
                var expired = UpdateListsRequest()
                block.value = "old-device"
                block.expiresMs = 1
                expired.add = [block]
                _ = try await client.call(RiskAPI.updateLists, expired)
                let notBlocked = try await score(
                    client, scoreRequest(user: 6, order: "o-6", amount: 1, at: baseMs + 8000, device: "old-device"))
                #expect(notBlocked.action == .allow)

                // A dry run answers and stores nothing.
                var dry = scoreRequest(user: 7, order: "o-dry", amount: 1, at: baseMs + 9000)
                dry.dryRun = true
                #expect(try await score(client, dry).decisionId.isEmpty)

                // Queries.
                func query(_ edit: (inout QueryDecisionsRequest) -> Void) async throws -> [Decision] {
                    var q = QueryDecisionsRequest()
                    edit(&q)
                    return try await client.call(RiskAPI.queryDecisions, q).decisions
                }
                #expect(try await query { $0.reason = "ring" }.map(\.orderId) == ["o-3"])
                #expect(try await query { $0.userId = 3 }.map(\.orderId) == ["o-3b", "o-3"])
                #expect(try await query { $0.action = .decline }.map(\.orderId) == ["o-5", "o-4"])
                #expect(try await query { $0.minScore = 900 }.map(\.orderId) == ["o-5"])
                #expect(try await query { $0.orderId = "o-dry" }.isEmpty)
                let why = try #require(try await query { $0.orderId = "o-4" }.first)
                #expect(why.reasons.first?.description == "new account, high amount" && featureValue(why, "users_sharing_device") == 0)

                // A label lands on the decision and in the log.
                var label = LabelRequest()
                label.orderId = "o-4"
                label.kind = .chargeback
                label.source = "issuer"
                label.note = "cb 4411"
                let labelled = try await client.call(RiskAPI.label, label)
                #expect(labelled.applied && labelled.decisions == 1)
                #expect(try await query { $0.label = .chargeback }.map(\.orderId) == ["o-4"])
                let logged = try await readLog(ingest.client).filter { $0.kind == .label }
                #expect(
                    logged.count == 1 && logged[0].label?.orderId == "o-4" && logged[0].userId == 4 && logged[0].label?.kind == .chargeback)
                label.orderId = "nobody-scored-this"
                await #expect { try await client.call(RiskAPI.label, label) } throws: { ($0 as? RPCError)?.code == .notFound }
                label.orderId = "o-3"
                label.kind = .legitimate
                _ = try await client.call(RiskAPI.label, label)

                // Backtest a stricter candidate over the stored decisions.
                var backtest = BacktestRequest()
                backtest.source = "ring: users_sharing_device >= 2 => decline\nbig_new: amount > 5000 and not known_user => decline"
                let report = try await client.call(RiskAPI.backtest, backtest)
                #expect(report.errors.isEmpty && report.decisions == 6)
                // o-3 goes from review to decline; the list decisions stay as they were.
                #expect(report.flipped == 1 && report.examples.map(\.orderId) == ["o-3"] && report.examples.first?.to == .decline)
                #expect(report.examples.first?.label == .legitimate)
                let current = try #require(report.current), candidate = try #require(report.candidate)
                #expect(
                    current.labelled == 2 && current.fraud == 1 && current.flagged == 2 && current.precision == 0.5 && current.recall == 1)
                #expect(candidate.declined == current.declined + 1)
                backtest.source = "nonsense =>"
                #expect(try await client.call(RiskAPI.backtest, backtest).errors.count == 1)

                // Stats, rules and Health.
                let stats = try await client.call(RiskAPI.decisionStats, DecisionStatsRequest())
                #expect(stats.buckets.map(\.decisions).reduce(0, +) == 6 && stats.buckets.map(\.declines).reduce(0, +) == 2)
                let rules = try await client.call(RiskAPI.getRules, GetRulesRequest())
                #expect(rules.sets.count == 1 && rules.sets[0].version == 1 && rules.sets[0].rules.map(\.id) == ["ring", "big_new"])
                let health = try await client.call(HealthAPI.check, HealthRequest())
                #expect(health.checks.contains { $0.key == "rules" && $0.value == "1" })
                let metrics = try await metricsText(risk.metricsPort)
                #expect(metrics.contains("persona_risk_decisions_total{action=\"decline\"} 2"))
                #expect(metrics.contains("persona_risk_list_hits_total"))

                // Bad input: a typed error, counted.
                await #expect { try await score(client, scoreRequest(user: 0, order: "x", amount: 1, at: baseMs)) } throws: {
                    ($0 as? RPCError)?.code == .invalidArgument
                }
                await #expect { try await score(client, scoreRequest(user: 1, order: "x", amount: -5, at: baseMs)) } throws: {
                    ($0 as? RPCError)?.code == .invalidArgument
                }
                #expect(try await metricsText(risk.metricsPort).contains("persona_risk_bad_requests_total{reason=\"invalid_amount\"} 1"))
            }
        }
    }

    @Test(
        """
        the published fraud model scores each request, its TreeSHAP reasons name the features that pushed it, a \
        new version is swapped in without a restart, and a decision replayed from its stored inputs and versions matches
        """
    )
    func modelScores() async throws {
        try await withCoreSuite(ingest: ingestSettings) { ingest, feature, model in
            var skips = DatasetFormat.Skips()
            let events = DatasetFormat.fraud.events(lines: plantedFraudRows(600), skips: &skips).sorted { $0.timestampMs < $1.timestampMs }
            try await append(ingest.client, events)
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            let job = try await waitJob(model.client, try await train(model.client, .gbdt, params: ["trees": "60"], publish: true))
            #expect(job.state == .succeeded, "\(job.message)")
            try await withHostedService(
                RiskControlService.self, settings: riskSettings(feature: feature.rpcPort, ingest: ingest.rpcPort, model: model.rpcPort)
            ) { risk in
                try await waitHealth(risk.client, "model", "fraud=1")
                // The planted pattern: a purchase seconds after signup, on a device other accounts used.
                let end = events.last!.timestampMs
                let signup = event(.register, user: 90_001, at: end + 1000, device: "fresh-1")
                try await append(ingest.client, [signup])
                try await waitConsumed(ingest: ingest.client, consumer: feature.client)
                let ring = try await score(
                    risk.client, scoreRequest(user: 90_001, order: "r-1", amount: 40, at: end + 31_000, device: "RING3"))
                let calm = try await score(
                    risk.client, scoreRequest(user: 1000, order: "c-1", amount: 40, at: end + 5 * 86_400_000, device: "DEV0"))
                #expect(ring.modelName == "fraud" && ring.modelVersion == 1)
                #expect(ring.probability > calm.probability + 0.3, "ring \(ring.probability) calm \(calm.probability)")
                #expect(ring.score == Int32((Double(ring.probability) * 1000).rounded()))
                let reasons = ring.reasons.filter { $0.kind == .model }
                #expect(!reasons.isEmpty && reasons.count <= 3 && reasons.allSatisfy { $0.contribution > 0 })
                #expect(zip(reasons, reasons.dropFirst()).allSatisfy { $0.contribution >= $1.contribution })
                #expect(
                    reasons.contains {
                        ["account_age_days", "seconds_since_signup", "register_1h", "register_24h", "users_sharing_device"].contains(
                            $0.code)
                    }, "\(reasons.map(\.code))")
                // Each reason's value is the feature's value the decision stored.
                for r in reasons { #expect(Double(featureValue(ring, r.code)!) == r.value) }

                // A new version is followed.
                let second = try await waitJob(model.client, try await train(model.client, .logistic, name: "fraud", publish: true))
                #expect(second.state == .succeeded)
                try await waitHealth(risk.client, "model", "fraud=2")
                // Reasons for an allow only when asked (--explain flagged, the default).
                if calm.action == .allow { #expect(calm.reasons.filter { $0.kind == .model }.isEmpty) }
                var asked = scoreRequest(user: 90_001, order: "r-2", amount: 40, at: end + 32_000, device: "RING3")
                asked.explain = true
                let again = try await score(risk.client, asked)
                #expect(again.modelVersion == 2 && !again.reasons.filter { $0.kind == .model }.isEmpty)

                // Replay: a decision made again from its stored request and features, the model
                // version it named (v1, no longer served: fetched) and the rules in force then.
                func replay(_ d: Decision) async throws -> ReplayResponse {
                    var r = ReplayRequest()
                    r.decisionId = d.decisionId
                    return try await risk.client.call(RiskAPI.replay, r)
                }
                let first = try await replay(ring)
                #expect(first.matches && first.differences.isEmpty, "\(first.differences)")
                #expect(first.replayed?.probability == ring.probability && first.replayed?.modelVersion == 1)
                #expect(first.replayed?.reasons.map(\.code) == ring.reasons.map(\.code))
                // Rules published since do not change how an older decision replays; a decision under them replays with them.
                _ = try await publishRules(risk.client, "tiny: amount > 1 => decline \"any amount\"")
                _ = try await publishRules(risk.client, "watch: amount > 1 => score +5", shadow: true)
                #expect(try await replay(ring).matches)
                let declined = try await score(risk.client, scoreRequest(user: 1000, order: "c-2", amount: 40, at: end + 6 * 86_400_000))
                #expect(declined.action == .decline && declined.reasons.contains { $0.kind == .shadow && $0.code == "watch" })
                let replayed = try await replay(declined)
                #expect(
                    replayed.matches && replayed.replayed?.action == .decline && replayed.replayed?.modelVersion == 2,
                    "\(replayed.differences)")
                var changed = declined
                changed.score -= 1
                changed.reasons[0].contribution += 1
                #expect(RiskControlService.differences(changed, try #require(replayed.replayed)).count == 2)
                var missing = ReplayRequest()
                missing.decisionId = "999999"
                await #expect { try await risk.client.call(RiskAPI.replay, missing) } throws: { ($0 as? RPCError)?.code == .notFound }
            }
        }
    }

    @Test(
        "with the feature service gone, decisions are made by the fail-open or fail-closed policy, never DEADLINE_EXCEEDED, and are counted"
    )
    func failurePolicy() async throws {
        let featurePort = freePort()
        let ingest = freePort()
        for policy in [RiskSettings.FailurePolicy.open, .closed] {
            let settings = riskSettings(feature: featurePort, ingest: ingest) { $0.failurePolicy = policy }
            try await withHostedService(RiskControlService.self, settings: settings) { risk in
                // Rules are published while the feature service is there (it names the features).
                try await withHostedService(
                    FeatureService.self,
                    settings: {
                        var f = FeatureSettings(); f.ingestPort = ingest; f.modelPort = freePort(); return f
                    }(), port: featurePort
                ) { _ in
                    _ = try await publishRules(risk.client, "young: account_age_days < 1 => review\nhuge: amount > 10000 => decline")
                }
                // The contract: the feature read gives up within its budget (never past half the
                // caller's deadline), so the policy answers instead of the caller timing out.
                let d = try await score(risk.client, scoreRequest(user: 1, order: "p-1", amount: 10, at: baseMs), timeout: .seconds(10))
                #expect(d.degraded && d.reasons.last?.code == "policy:features_unavailable")
                #expect(d.action == (policy == .open ? .allow : .decline))
                // A rule over the request alone still decides.
                let huge = try await score(
                    risk.client, scoreRequest(user: 1, order: "p-2", amount: 20_000, at: baseMs), timeout: .seconds(10))
                #expect(huge.action == .decline && huge.reasons.first?.code == "huge")
                #expect(try await metricsText(risk.metricsPort).contains("persona_risk_degraded_total{policy=\"\(policy.rawValue)\"} 2"))
            }
        }
    }

    @Test("an answered decision, the rules and the lists survive kill -9 of the risk-control process")
    func survivesSigkill() async throws {
        let dir = temporaryDirectory()
        let port = freePort()
        func start() throws -> ChildProcess {
            try ChildProcess(
                "persona-risk-control",
                [
                    "--port", "\(port)", "--metrics-port", "0", "--data-dir", dir, "--feature", "127.0.0.1:\(freePort())",
                    "--model", "127.0.0.1:\(freePort())", "--ingest", "127.0.0.1:\(freePort())",
                ])
        }
        let first = try start()
        defer { first.kill() }
        let client = RPCClient(host: "127.0.0.1", port: port)
        defer { Task { await client.shutdown() } }
        try await waitHealthy(client)
        var ids: [String] = []
        try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<20 {
                group.addTask {
                    try await score(client, scoreRequest(user: Int64(1 + i), order: "k-\(i)", amount: Double(i), at: baseMs)).decisionId
                }
            }
            for try await id in group { ids.append(id) }
        }
        _ = try await publishRules(client, "big: amount > 15 => review")
        var lists = UpdateListsRequest()
        var e = ListEntry()
        e.list = .block
        e.field = .ip
        e.value = "10.6.6.6"
        lists.add = [e]
        _ = try await client.call(RiskAPI.updateLists, lists)
        first.signal(SIGKILL)
        _ = await first.waitForExit()

        let second = try start()
        defer { second.kill() }
        try await waitHealthy(client)
        var q = QueryDecisionsRequest()
        q.limit = 100
        let stored = try await client.call(RiskAPI.queryDecisions, q).decisions
        #expect(Set(stored.map(\.decisionId)) == Set(ids))
        let health = try await client.call(HealthAPI.check, HealthRequest())
        #expect(
            health.checks.contains { $0.key == "rules" && $0.value == "1" }
                && health.checks.contains { $0.key == "lists" && $0.value == "1" })
        let blocked = try await score(client, scoreRequest(user: 99, order: "k-99", amount: 1, at: baseMs, ip: "10.6.6.6"))
        #expect(blocked.action == .decline)
        let reviewed = try await score(client, scoreRequest(user: 98, order: "k-98", amount: 20, at: baseMs))
        #expect(reviewed.action == .review && reviewed.rulesVersion == 1)
    }
}

extension RiskServiceTests {
    @Test("SIGKILL while callers score: every answered decision is found after the restart; a deleted view is rebuilt from the log")
    func decisionLogSurvivesSigkill() async throws {
        let dir = temporaryDirectory()
        let port = freePort()
        // Labels go to ingest first: a real one, in process.
        try await withHostedService(IngestService.self, settings: ingestSettings) { ingest in
            func start() throws -> ChildProcess {
                try ChildProcess(
                    "persona-risk-control",
                    [
                        "--port", "\(port)", "--metrics-port", "0", "--data-dir", dir, "--feature", "127.0.0.1:\(freePort())",
                        "--model", "127.0.0.1:\(freePort())", "--ingest", "127.0.0.1:\(ingest.rpcPort)",
                        "--pseudonym-key-file", sharedKeyFile,
                    ])
            }
            var process = try start()
            defer { process.kill() }
            let client = RPCClient(host: "127.0.0.1", port: port)
            defer { Task { await client.shutdown() } }
            try await waitHealthy(client)
            let answered = AnsweredDecisions()
            let scoring = (0..<8).map { worker in
                Task {
                    for i in 0..<100_000 {
                        let order = "w\(worker)-\(i)"
                        let request = scoreRequest(user: Int64(1 + i % 50), order: order, amount: Double(i % 90), at: baseMs)
                        guard let d = try? await score(client, request) else { return }
                        answered.all.withLock { $0[order] = d }
                    }
                }
            }
            // Some labels, then the kill lands while the workers score.
            try await Task.sleep(for: .milliseconds(800))
            for order in ["w0-0", "w1-1", "w2-2"] {
                var l = LabelRequest()
                l.orderId = order
                l.kind = .chargeback
                l.source = "bank"
                _ = try await client.call(RiskAPI.label, l)
            }
            try await Task.sleep(for: .milliseconds(400))
            process.signal(SIGKILL)
            _ = await process.waitForExit()
            for task in scoring { await task.value }
            let before = answered.all.withLock { $0 }
            #expect(before.count > 100, "only \(before.count) decisions answered before the kill")

            func everyDecision() async throws -> [String: Decision] {
                var out: [String: Decision] = [:]
                var q = QueryDecisionsRequest()
                q.limit = 1000
                q.order = .oldest
                repeat {
                    let page = try await client.call(RiskAPI.queryDecisions, q)
                    for d in page.decisions { out[d.orderId] = d }
                    q.pageToken = page.nextPageToken
                } while !q.pageToken.isEmpty
                return out
            }
            process = try start()
            try await waitHealthy(client)
            let afterKill = try await everyDecision()
            for (order, d) in before {
                let stored = afterKill[order]
                #expect(stored?.decisionId == d.decisionId && stored?.action == d.action && stored?.score == d.score, "order \(order)")
            }
            #expect(["w0-0", "w1-1", "w2-2"].allSatisfy { afterKill[$0]?.label == .chargeback })

            // The view deleted while the service is down comes back from the log, the same.
            process.signal(SIGTERM)
            _ = await process.waitForExit()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dir + "/decision-view.db" + suffix) }
            process = try start()
            try await waitHealthy(client)
            #expect(try await everyDecision() == afterKill)
        }
    }
}

/// Decisions answered to concurrent callers, by order.
final class AnsweredDecisions: Sendable {
    let all = Mutex<[String: Decision]>([:])
}

/// Every event in ingest's log.
func readLog(_ ingest: RPCClient) async throws -> [Event] {
    let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest())
    var out: [Event] = []
    for p in info.partitions where p.endOffset > p.startOffset {
        var r = ReadRequest()
        r.partition = p.partition
        r.fromOffset = p.startOffset
        r.maxEvents = 10_000
        out += try await ingest.call(IngestAPI.read, r).events.compactMap(\.event)
    }
    return out
}
