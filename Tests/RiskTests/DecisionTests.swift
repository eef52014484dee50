import Foundation
import Rules
import TestSupport
import Testing
import Wire

@testable import RiskControl

/// The decision function (lists, model score, rules, thresholds, failure policy) and the
/// decision store (group commit, queries, labels, durability).
@Suite struct DecisionTests {
    static let policy = DecisionPolicy(review: 500, decline: 800, failOpen: true)

    static func inputs(amount: Double = 100, probability: Float? = nil, features: [String: Float]? = [:]) -> DecisionInputs {
        var r = ScoreRequest()
        r.userId = 7
        r.amount = amount
        r.orderId = "o-1"
        r.timestampMs = 1_700_000_000_000
        var x = DecisionInputs(request: r)
        if let features {
            x.featureNames = Array(features.keys)
            x.features = x.featureNames.map { features[$0]! }
        } else {
            x.features = nil
        }
        x.probability = probability
        return x
    }

    static func rules(_ source: String) throws -> RuleSet {
        try RuleSet.compile(source, names: Decide.names(features: ["account_age_days"])).get()
    }

    @Test func listsComeBeforeRulesAndModel() throws {
        let rules = try Self.rules("everything: amount > 0 => decline priority 100")
        var x = Self.inputs(probability: 0.99)
        var entry = ListEntry()
        entry.list = .allow
        entry.field = .device
        x.listMatch = entry
        let allowed = Decide.decide(x, rules: rules, shadow: nil, policy: Self.policy)
        #expect(allowed.action == .allow && allowed.score == 0)
        #expect(allowed.reasons.map(\.code) == ["list:allow:device"])
        entry.list = .block
        x.listMatch = entry
        x.probability = 0.01
        let blocked = Decide.decide(x, rules: try Self.rules("never: amount < 0 => allow"), shadow: nil, policy: Self.policy)
        #expect(blocked.action == .decline && blocked.score == 1000 && blocked.fraud)
    }

    @Test func theModelsProbabilityMapsMonotonicallyAndThresholdsDecide() throws {
        let none = RuleSet.empty
        let scores = [Float(0), 0.2, 0.4999, 0.5, 0.79, 0.8, 1].map {
            Decide.decide(Self.inputs(probability: $0), rules: none, shadow: nil, policy: Self.policy)
        }
        #expect(scores.map(\.score) == [0, 200, 500, 500, 790, 800, 1000])
        #expect(scores.map(\.action) == [.allow, .allow, .review, .review, .review, .decline, .decline])
        // A rule set's thresholds override the configured ones.
        let strict = try Self.rules("threshold review 100\nthreshold decline 300")
        #expect(Decide.decide(Self.inputs(probability: 0.2), rules: strict, shadow: nil, policy: Self.policy).action == .review)
        #expect(Decide.decide(Self.inputs(probability: 0.3), rules: strict, shadow: nil, policy: Self.policy).action == .decline)
    }

    @Test func ruleModifiersAddAndTheFirstActionWins() throws {
        let rules = try Self.rules(
            """
            bump: amount > 50 => score +250 "large"
            cut: amount > 50 => score -100
            stop: amount > 90 => challenge priority 5
            late: amount > 90 => decline
            shadow watch: amount > 10 => decline
            """)
        let v = Decide.decide(Self.inputs(amount: 100, probability: 0.3), rules: rules, shadow: nil, policy: Self.policy)
        #expect(v.score == 450)
        #expect(v.action == .challenge)
        #expect(v.reasons.filter { $0.kind == .rule }.map(\.code) == ["stop", "bump", "cut", "late"])
        #expect(v.reasons.filter { $0.kind == .shadow }.map(\.code) == ["watch"])
        // Clamped to 0...1000.
        let big = try Self.rules("a: amount > 0 => score +900\nb: amount > 0 => score +900")
        #expect(Decide.decide(Self.inputs(probability: 0.5), rules: big, shadow: nil, policy: Self.policy).score == 1000)
    }

    @Test func aShadowSetIsRecordedButChangesNothing() throws {
        let shadow = try Self.rules("trial: amount > 10 => decline, score +900")
        let v = Decide.decide(Self.inputs(amount: 100, probability: 0.1), rules: .empty, shadow: shadow, policy: Self.policy)
        #expect(v.action == .allow && v.score == 100)
        #expect(v.reasons.map(\.code) == ["trial"] && v.reasons[0].kind == .shadow)
    }

    @Test func withoutFeaturesTheFailurePolicyDecides() throws {
        let rules = try Self.rules(
            """
            big: amount > 1000 => review
            young: account_age_days < 1 => decline
            """)
        let open = Decide.decide(Self.inputs(amount: 10, features: nil), rules: rules, shadow: nil, policy: Self.policy)
        #expect(open.action == .allow && open.reasons.map(\.code) == ["policy:features_unavailable"])
        let closed = Decide.decide(
            Self.inputs(amount: 10, features: nil), rules: rules, shadow: nil,
            policy: DecisionPolicy(review: 500, decline: 800, failOpen: false))
        #expect(closed.action == .decline)
        // A rule over the request alone still decides; one over features is not evaluated.
        let big = Decide.decide(Self.inputs(amount: 5000, features: nil), rules: rules, shadow: nil, policy: Self.policy)
        #expect(big.action == .review && big.reasons.map(\.code) == ["big", "policy:features_unavailable"])
    }

    // MARK: Store

    /// A whole number of ten-minute buckets since 1970.
    static let base: Int64 = 1_699_999_800_000

    static func decision(_ i: Int, user: Int64, action: Action, score: Int32, reasons: [String] = []) -> Decision {
        var d = Decision()
        d.orderId = "order-\(i)"
        d.userId = user
        d.action = action
        d.score = score
        d.decidedMs = Self.base + Int64(i) * 60_000
        d.amount = Double(i)
        d.featureNames = ["a", "b"]
        d.features = [Float(i), 0.5]
        d.reasons = reasons.map { code in
            var r = ReasonCode()
            r.code = code
            r.kind = .rule
            r.description = "rule \(code)"
            return r
        }
        return d
    }

    @Test func reasonsAreStoredAsJSONAnyToolReads() throws {
        var r = ReasonCode()
        r.kind = .model
        r.code = "amount_1h"
        r.description = "a \"quoted\" line\nand a tab\t, a \\ and ünïcode \u{1}"
        r.contribution = 0.125
        r.value = 1500
        var p = ReasonCode()
        p.kind = .policy
        p.code = "policy:features_unavailable"
        let json = StoredNames.reasonsJSON([r, p])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [[String: Any]]
        #expect(parsed.count == 2 && parsed[0]["kind"] as? String == "model" && parsed[0]["value"] as? Int == 1500)
        let back = StoredNames.reasons(json)
        #expect(back == [r, p])
    }

    @Test("decisions appended at once share the log's group commits; the view built from the log survives a reopen")
    func concurrentDecisionsThroughTheLog() async throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let log = try DecisionLog(.file, directory: dir + "/decision-log", replicas: 1)
        let offsets = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for i in 0..<200 {
                group.addTask {
                    var record = DecisionRecord()
                    record.decision = Self.decision(i, user: Int64(1 + i % 4), action: i % 10 == 0 ? .decline : .allow, score: Int32(i * 5))
                    record.request = ScoreRequest()
                    return try await log.append(record, id: "d-\(i)")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(offsets) == Set(0..<200))
        let (records, next) = try await log.read(from: 0, max: 1000, wait: .zero)
        #expect(records.count == 200 && next == 200)
        await log.close()
        let store = try DecisionDatabase(path: dir + "/view.db")
        try await store.apply(records, next: next)
        store.close()

        let reopened = try DecisionDatabase(path: dir + "/view.db")
        defer { reopened.close() }
        #expect(try reopened.viewOffset() == 200)
        var q = QueryDecisionsRequest()
        q.limit = 1000
        let all = try reopened.query(q).decisions
        #expect(all.count == 200)
        #expect(all.first!.features.count == 2 && all.first!.featureNames == ["a", "b"])
        // Newest first: ids (offsets + 1) descend.
        #expect(all.map(\.decisionId) == (1...200).reversed().map(String.init))
    }

    @Test func queriesFilterPageAndAggregate() async throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try DecisionDatabase(path: dir + "/decisions.db")
        defer { store.close() }
        for i in 0..<30 {
            let action: Action = i % 3 == 0 ? .decline : i % 3 == 1 ? .review : .allow
            try await store.applyDecision(
                Self.decision(i, user: i < 10 ? 42 : 7, action: action, score: Int32(i * 30), reasons: i % 5 == 0 ? ["velocity"] : []),
                at: UInt64(i))
        }
        func query(_ edit: (inout QueryDecisionsRequest) -> Void) throws -> [Decision] {
            var q = QueryDecisionsRequest()
            q.limit = 100
            edit(&q)
            return try store.query(q).decisions
        }
        #expect(try query { $0.userId = 42 }.count == 10)
        #expect(
            try query {
                $0.userId = 42; $0.action = .decline
            }.map(\.orderId) == ["order-9", "order-6", "order-3", "order-0"])
        #expect(try query { $0.minScore = 800 }.allSatisfy { $0.score >= 800 })
        #expect(try query { $0.minScore = 800 }.count == 3)
        #expect(try query { $0.reason = "velocity" }.count == 6)
        #expect(try query { $0.orderId = "order-12" }.map(\.userId) == [7])
        #expect(
            try query {
                $0.fromMs = Self.base + 10 * 60_000; $0.toMs = Self.base + 20 * 60_000
            }.count == 10)
        #expect(
            try query {
                $0.order = .score; $0.limit = 3
            }.map(\.score) == [870, 840, 810])

        // Pages: every decision once, in order, for each sort.
        for order in [DecisionOrder.newest, .oldest, .score] {
            var seen: [String] = []
            var token = ""
            repeat {
                var q = QueryDecisionsRequest()
                q.limit = 7
                q.order = order
                q.pageToken = token
                let page = try store.query(q)
                seen += page.decisions.map(\.orderId)
                token = page.next
            } while !token.isEmpty
            #expect(seen.count == 30 && Set(seen).count == 30, "\(order)")
        }
        var bad = QueryDecisionsRequest()
        bad.pageToken = "nonsense"
        #expect(throws: DecisionDatabase.BadQuery.self) { try store.query(bad) }

        // Labels land on the order's decisions.
        try await store.applyLabel(order: "order-3", kind: .chargeback, source: "bank", note: "cb 1", at: 30)
        try await store.applyLabel(order: "order-4", kind: .falsePositive, source: "analyst", note: "", at: 31)
        try await store.applyLabel(order: "order-5", kind: .confirmedFraud, source: "analyst", note: "", at: 32)
        let labelled = try query { $0.labelled = true }
        #expect(Set(labelled.map(\.orderId)) == ["order-3", "order-4", "order-5"])
        #expect(try query { $0.label = .chargeback }.first?.labelSource == "bank")

        var s = DecisionStatsRequest()
        s.bucketMs = 600_000
        let stats = try store.stats(s)
        #expect(stats.buckets.map(\.decisions) == [10, 10, 10])
        #expect(stats.buckets.map(\.declines).reduce(0, +) == 10)
        #expect(stats.scoreHistogram.reduce(0, +) == 30 && stats.scoreHistogram[9] == 0 && stats.scoreHistogram[0] == 4)
        // order-3 declined fraud, order-4 reviewed (a false positive), order-5 allowed fraud.
        let outcome = try #require(stats.outcome)
        #expect(outcome.labelled == 3 && outcome.fraud == 2 && outcome.flagged == 2 && outcome.flaggedFraud == 1)
        #expect(outcome.precision == 0.5 && outcome.recall == 0.5)

        // Over whole hours the stats come from the running counts, which follow every change:
        // a record applied again, a new label, an erasure. They equal a count of the decisions.
        func hourly() throws -> (DecisionStatsResponse, DecisionStatsResponse) {
            var byHours = DecisionStatsRequest()
            byHours.bucketMs = 3_600_000
            var counted = byHours
            counted.fromMs = 1  // not a whole hour: the decisions are counted
            return (try store.stats(byHours), try store.stats(counted))
        }
        var (fromHours, fromRows) = try hourly()
        #expect(fromHours == fromRows && fromHours.outcome?.labelled == 3 && fromHours.buckets.map(\.decisions).reduce(0, +) == 30)
        try await store.applyDecision(Self.decision(4, user: 42, action: .review, score: 120, reasons: []), at: 4)
        try await store.applyLabel(order: "order-3", kind: .legitimate, source: "bank", note: "", at: 33)
        try await store.applyLabel(order: "order-6", kind: .confirmedFraud, source: "bank", note: "", at: 34)
        var erasure = DecisionRecord()
        erasure.erasure = DecisionErasure()
        erasure.erasure?.userId = 42
        erasure.erasure?.pseudonym = -5
        erasure.erasure?.decisions = try store.decisions(ofUser: 42).prefix(4).map {
            var e = $0
            e.decision?.userId = -5
            return e
        }
        try await store.apply([(35, erasure)], next: 36)
        (fromHours, fromRows) = try hourly()
        #expect(fromHours == fromRows, "\(fromHours) \(fromRows)")
        #expect(fromHours.buckets.map(\.decisions).reduce(0, +) == 24 && fromHours.outcome?.labelled == 1 && fromHours.outcome?.fraud == 0)
        // A store opened on decisions stored before the counts existed computes them once.
        try await store.write { db in try db.execute("DROP TABLE decision_hours") }
        let reopened = try DecisionDatabase(path: dir + "/decisions.db")
        defer { reopened.close() }
        #expect(try reopened.stats(DecisionStatsRequest()) == fromRows)
    }
}

/// A thread-safe count.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

extension DecisionDatabase {
    /// Applies `d` as the decision log's record at `offset` (what the view does with it).
    func applyDecision(_ d: Decision, at offset: UInt64) async throws {
        var record = DecisionRecord()
        record.decision = d
        record.request = ScoreRequest()
        try await apply([(offset, record)], next: offset + 1)
    }

    /// Applies a label of `order` as the decision log's record at `offset`.
    func applyLabel(order: String, kind: LabelKind, source: String, note: String, at offset: UInt64) async throws {
        var label = Label()
        (label.orderId, label.kind, label.source, label.note) = (order, kind, source, note)
        var record = DecisionRecord()
        record.label = label
        record.atMs = Int64(offset)
        try await apply([(offset, record)], next: offset + 1)
    }
}
