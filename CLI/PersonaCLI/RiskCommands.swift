import ArgumentParser
import Foundation
import RPC
import ServiceKit
import Wire

/// `persona risk ...`: the risk team's commands against risk-control.
struct RiskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "risk",
        abstract: "Score, find, explain and label risk decisions; write, backtest and publish rules; keep block and allow lists.",
        subcommands: [
            RiskScore.self, RiskQuery.self, RiskExplain.self, RiskReplay.self, RiskLabel.self, RiskCases.self, RiskRules.self,
            RiskLists.self,
            RiskStats.self,
        ])
}

/// How decisions and their parts print.
enum RiskText {
    static func time(_ ms: Int64) -> String {
        guard ms > 0 else { return "-" }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func action(_ a: Action) -> String { a == .unspecified ? "-" : a.name ?? "-" }
    static func label(_ k: LabelKind) -> String { k == .unspecified ? "-" : k.name ?? "-" }
    static func kind(_ r: ReasonKind) -> String { r == .unspecified ? "-" : r.name ?? "-" }

    static func value(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e12 ? String(Int64(v)) : String(format: "%.4g", v) }

    /// One line: what was decided, how surely, by what.
    static func summary(_ d: Decision) -> String {
        let model = d.modelName.isEmpty ? "no model" : "\(d.modelName) v\(d.modelVersion), p=\(String(format: "%.3f", d.probability))"
        let flags = (d.fraud ? " FRAUD" : "") + (d.degraded ? " (features unavailable: failure policy)" : "")
        return
            """
            decision \(d.decisionId.isEmpty ? "(dry run)" : d.decisionId): order \
            \(d.orderId.isEmpty ? "-" : d.orderId) user \(d.userId) -> \(action(d.action).uppercased()) score \
            \(d.score)\(flags)  [\(model); rules v\(d.rulesVersion); \
            \(Table.latency(.microseconds(Int64(d.latencyUs))))]
            """
    }

    static func reasons(_ d: Decision) -> String {
        guard !d.reasons.isEmpty else { return "no reasons: nothing fired, the score is under every threshold" }
        return Table.render(
            header: ["KIND", "CODE", "CONTRIBUTION", "VALUE", "DESCRIPTION"],
            rows: d.reasons.map { r in
                let contribution =
                    r.kind == .model
                    ? String(format: "%+.3f log-odds", r.contribution)
                    : r.kind == .rule || r.kind == .shadow ? (r.contribution == 0 ? "-" : String(format: "%+d", Int(r.contribution))) : "-"
                return [kind(r.kind), r.code, contribution, r.kind == .model ? value(r.value) : "-", r.description]
            })
    }

    static func list(_ decisions: [Decision]) -> String {
        Table.render(
            header: ["ID", "DECIDED", "ORDER", "USER", "AMOUNT", "SCORE", "ACTION", "LABEL", "REASONS"],
            rows: decisions.map { d in
                [
                    d.decisionId, time(d.decidedMs), d.orderId, "\(d.userId)", String(format: "%.2f", d.amount), "\(d.score)",
                    action(d.action), label(d.label),
                    d.reasons.filter { $0.kind != .model }.map { $0.kind == .shadow ? "\($0.code) (shadow)" : $0.code }.joined(
                        separator: ","),
                ]
            })
    }

    static func parse<T>(_ text: String, _ table: [String: T], _ what: String) throws -> T {
        guard let v = table[text.lowercased()] else {
            throw ValidationError("\(what) '\(text)' is not one of: \(table.keys.sorted().joined(separator: ", "))")
        }
        return v
    }

    static let actions: [String: Action] = ["allow": .allow, "review": .review, "challenge": .challenge, "decline": .decline]
    static let labels: [String: LabelKind] = [
        "chargeback": .chargeback, "confirmed_fraud": .confirmedFraud, "fraud": .confirmedFraud, "false_positive": .falsePositive,
        "legitimate": .legitimate,
    ]
    static let fields: [String: ListField] = ["user": .user, "device": .device, "ip": .ip, "instrument": .instrument, "email": .email]
    static let listKinds: [String: ListKind] = ["block": .block, "allow": .allow]

    /// A time (`TrainCommand.time`) or an age back from now (`24h`, `7d`, `30m`).
    static func since(_ text: String) throws -> Int64 {
        if let last = text.last, let n = Double(text.dropLast()),
            let unit = ["m": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0][String(last)]
        {
            return WallClock.system.nowMs - Int64(n * unit)
        }
        return try TrainCommand.time(text)
    }

    static func errors(_ errors: [Wire.RuleError], file: String) -> String {
        errors.map { "\(file):\($0.line):\($0.column): \($0.message)" }.joined(separator: "\n")
    }

    static func rules(_ rules: [Rule]) -> String {
        Table.render(
            header: ["LINE", "RULE", "PRIORITY", "OUTCOME", "TEXT"],
            rows: rules.map { r in
                var outcome = [String]()
                if r.action != .unspecified { outcome.append(action(r.action)) }
                if r.scoreDelta != 0 { outcome.append(String(format: "score %+d", r.scoreDelta)) }
                return ["\(r.line)", r.id + (r.shadow ? " (shadow)" : ""), "\(r.priority)", outcome.joined(separator: ", "), r.expression]
            })
    }
}

struct RiskScore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score", abstract: "Score an order (or a payment, login, signup, refund) and print the decision with its reasons.")

    @Option(help: "The user id.") var user: Int64
    @Option(help: "The order id.") var order = ""
    @Option(help: "The amount.") var amount: Double = 0
    @Option(help: "The currency.") var currency = "EUR"
    @Option(help: "order, payment, login, signup or refund.") var kind = "order"
    @Option(help: "Device id (raw; pseudonymised by risk-control).") var device = ""
    @Option(help: "IP address.") var ip = ""
    @Option(help: "Payment instrument.") var instrument = ""
    @Option(help: "E-mail address.") var email = ""
    @Option(help: "Channel (web, app, ...).") var channel = ""
    @Option(help: "Session id.") var session = ""
    @Option(help: "Event time (2011-10-01T10:00:00Z or milliseconds; default now).") var time: String?
    @Flag(help: "Decide but store nothing.") var dryRun = false
    @Flag(help: "Also print the feature values the decision used.") var features = false
    @Flag(help: "Name the model's reasons even when the order is allowed.") var explain = false
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var r = ScoreRequest()
        r.explain = explain
        r.userId = user
        r.orderId = order
        r.amount = amount
        r.currency = currency
        r.kind = try RiskText.parse(
            kind, ["order": .order, "payment": .payment, "login": .login, "signup": .signup, "refund": .refund], "kind")
        r.deviceId = device
        r.ip = ip
        r.paymentInstrument = instrument
        r.email = email
        r.channel = channel
        r.sessionId = session
        r.timestampMs = try time.map(TrainCommand.time) ?? 0
        r.dryRun = dryRun
        let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.score, r, timeout: .seconds(5)) }
        guard let d = response.decision else { throw ValidationError("risk-control answered without a decision") }
        print(RiskText.summary(d))
        print(RiskText.reasons(d))
        if features { print(""); print(RiskExplain.features(d)) }
    }
}

struct RiskQuery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query", abstract: "Find decisions: by user, order, time, action, score, rule or reason, label.",
        discussion:
            "Examples: persona risk query --user 42 --action decline --since 7d; persona risk query --min-score 800 --from 2024-03-04")

    @Option(help: "The user id.") var user: Int64 = 0
    @Option(help: "The order id.") var order = ""
    @Option(help: "allow, review, challenge or decline.") var action: String?
    @Option(help: "Lowest score.") var minScore: Int32 = 0
    @Option(help: "Decided at or after (a time, or an age such as 24h or 7d).") var since: String?
    @Option(help: "Decided at or after this time.") var from: String?
    @Option(help: "Decided before this time.") var to: String?
    @Option(help: "A rule that fired, a feature named as a reason, list:block:device, policy:features_unavailable.") var reason = ""
    @Option(help: "chargeback, confirmed_fraud, false_positive or legitimate.") var label: String?
    @Flag(help: "Only labelled decisions.") var labelled = false
    @Option(help: "newest, oldest or score.") var sort = "newest"
    @Option(help: "Decisions per page.") var limit: UInt32 = 50
    @Option(help: "The page token a previous page printed.") var page = ""
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var q = QueryDecisionsRequest()
        q.userId = user
        q.orderId = order
        if let action { q.action = try RiskText.parse(action, RiskText.actions, "action") }
        q.minScore = minScore
        q.fromMs = try since.map(RiskText.since) ?? from.map(TrainCommand.time) ?? 0
        q.toMs = try to.map(TrainCommand.time) ?? 0
        q.reason = reason
        if let label { q.label = try RiskText.parse(label, RiskText.labels, "label") }
        q.labelled = labelled
        q.order = try RiskText.parse(sort, ["newest": .newest, "oldest": .oldest, "score": .score], "sort")
        q.limit = limit
        q.pageToken = page
        q.withoutFeatures = true
        let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.queryDecisions, q, timeout: .seconds(10)) }
        print(RiskText.list(response.decisions))
        print(
            "\(response.decisions.count) decisions"
                + (response.nextPageToken.isEmpty ? "" : "; next page: --page \(response.nextPageToken)"))
    }
}

struct RiskExplain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Why an order was decided as it was: every decision of it with its reasons, versions and the features it used.")

    @Argument(help: "The order id.") var order: String
    @OptionGroup var endpoints: Endpoints

    static func features(_ d: Decision) -> String {
        guard !d.features.isEmpty else {
            return "no features were used" + (d.degraded ? " (the feature service did not answer in time)" : "")
        }
        let shown = zip(d.featureNames, d.features).filter { $0.1 != 0 }
        let rows = shown.map { [$0.0, RiskText.value(Double($0.1))] }
        return "features as of the request (\(shown.count) of \(d.features.count) non-zero):\n"
            + Table.render(header: ["FEATURE", "VALUE"], rows: rows)
    }

    func run() async throws {
        var q = QueryDecisionsRequest()
        q.orderId = order
        q.limit = 20
        let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.queryDecisions, q, timeout: .seconds(10)) }
        guard !response.decisions.isEmpty else { throw ValidationError("no decision for order '\(order)'") }
        for d in response.decisions {
            print(RiskText.summary(d))
            print(
                """
                decided \(RiskText.time(d.decidedMs)), request time \(RiskText.time(d.eventMs)), amount \
                \(String(format: "%.2f", d.amount)) \(d.currency)
                """
            )
            if d.label != .unspecified {
                print(
                    """
                    label: \(RiskText.label(d.label)) from \(d.labelSource.isEmpty ? "-" : d.labelSource) at \
                    \(RiskText.time(d.labelledMs))\(d.labelNote.isEmpty ? "" : ": \(d.labelNote)")
                    """
                )
            }
            print(RiskText.reasons(d))
            print(Self.features(d))
            print("")
        }
    }
}

struct RiskLabel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "label",
        abstract: "Label an order's outcome; the label is stored on its decisions and sent to ingest for the next training.")

    @Argument(help: "The order id.") var order: String
    @Argument(help: "chargeback, confirmed_fraud (or fraud), false_positive or legitimate.") var kind: String
    @Option(help: "The user id (needed when risk-control holds no decision of the order).") var user: Int64 = 0
    @Option(help: "Who says so (an issuer, an analyst).") var source = "cli"
    @Option(help: "A note.") var note = ""
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var r = LabelRequest()
        r.orderId = order
        r.kind = try RiskText.parse(kind, RiskText.labels, "label")
        r.userId = user
        r.source = source
        r.note = note
        let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.label, r, timeout: .seconds(10)) }
        print(
            """
            labelled order \(order) \(RiskText.label(r.kind)): \(response.decisions) decision(s) updated, label \
            event at log offset \(response.offset)
            """
        )
    }
}

struct RiskRules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Validate, backtest, publish (or shadow) a rule file, or show the rules in force. The language is in docs/RULES.md.",
        subcommands: [Validate.self, Publish.self, Shadow.self, Backtest.self, Show.self])

    static func read(_ file: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        return text
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a rule file; errors name line and column.")
        @Argument(help: "The rule file.") var file: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = RulesSource()
            r.source = try RiskRules.read(file)
            let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.validateRules, r) }
            guard response.errors.isEmpty else { throw ValidationError(RiskText.errors(response.errors, file: file)) }
            print("\(file): \(response.rules.count) rules, valid")
            print(RiskText.rules(response.rules))
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a rule file: it decides from the next request on, without a restart.")
        @Argument(help: "The rule file.") var file: String
        @Flag(help: "Publish as the shadow set: evaluated and recorded, not acted on.") var shadow = false
        @OptionGroup var endpoints: Endpoints

        func run() async throws { try await RiskRules.publish(file, shadow: shadow, endpoints) }
    }

    struct Shadow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish a rule file as the shadow set (an empty file withdraws it).")
        @Argument(help: "The rule file.") var file: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws { try await RiskRules.publish(file, shadow: true, endpoints) }
    }

    static func publish(_ file: String, shadow: Bool, _ endpoints: Endpoints) async throws {
        var r = RulesSource()
        r.source = try read(file)
        r.shadow = shadow
        let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.publishRules, r) }
        print("published \(shadow ? "shadow " : "")rules v\(response.version): \(response.rules.count) rules")
        print(RiskText.rules(response.rules))
    }

    struct Backtest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay a candidate rule file over stored decisions and their labels; print what would change.")
        @Argument(help: "The rule file.") var file: String
        @Option(help: "Decisions at or after (a time or an age such as 30d).") var since: String?
        @Option(help: "Decisions before this time.") var to: String?
        @Option(help: "At most this many of the newest decisions.") var limit: UInt32 = 100_000
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = BacktestRequest()
            r.source = try RiskRules.read(file)
            r.fromMs = try since.map(RiskText.since) ?? 0
            r.toMs = try to.map(TrainCommand.time) ?? 0
            r.limit = limit
            let b = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.backtest, r, timeout: .seconds(120)) }
            guard b.errors.isEmpty else { throw ValidationError(RiskText.errors(b.errors, file: file)) }
            print("\(b.decisions) decisions replayed (\(b.degraded) made without features), \(b.flipped) would change")
            print(
                Table.render(
                    header: ["FROM", "TO", "DECISIONS"],
                    rows: b.changes.map { [RiskText.action($0.from), RiskText.action($0.to), "\($0.count)"] }))
            print("")
            func row(_ name: String, _ o: LabelledOutcome?) -> [String] {
                guard let o else { return [name] }
                return [
                    name, "\(o.labelled)", "\(o.fraud)", "\(o.flagged)", String(format: "%.3f", o.precision),
                    String(format: "%.3f", o.recall), String(format: "%.2f%%", 100 * o.declineRate),
                ]
            }
            print(
                Table.render(
                    header: ["RULES", "LABELLED", "FRAUD", "FLAGGED", "PRECISION", "RECALL", "DECLINE RATE"],
                    rows: [row("in force", b.current), row("candidate", b.candidate)]))
            if !b.examples.isEmpty {
                print("")
                print(
                    Table.render(
                        header: ["ORDER", "FROM", "TO", "SCORE", "LABEL"],
                        rows: b.examples.map { f in
                            [
                                f.orderId, RiskText.action(f.from), RiskText.action(f.to), "\(f.fromScore) -> \(f.toScore)",
                                RiskText.label(f.label),
                            ]
                        }))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The rule sets in force (or one version).")
        @Option(help: "A published version (default: the ones in force).") var version: UInt32 = 0
        @Flag(help: "Print the source text.") var source = false
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = GetRulesRequest()
            r.version = version
            let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.getRules, r) }
            for set in response.sets {
                print(
                    """
                    \(set.shadow ? "shadow" : "active") rules v\(set.version), published \
                    \(RiskText.time(set.publishedMs)): \(set.rules.count) rules
                    """
                )
                print(source ? set.source : RiskText.rules(set.rules))
            }
        }
    }
}

struct RiskLists: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lists",
        abstract: "Block and allow lists of users, devices, IPs, instruments and e-mails, checked before rules and model.",
        subcommands: [Add.self, Remove.self, Show.self])

    static func entry(_ list: String, _ field: String, _ value: String) throws -> ListEntry {
        var e = ListEntry()
        e.list = try RiskText.parse(list, RiskText.listKinds, "list")
        e.field = try RiskText.parse(field, RiskText.fields, "field")
        e.value = value
        return e
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an entry: persona risk lists add block device DEVICE_ID --reason '...' --expires 30d")
        @Argument(help: "block or allow.") var list: String
        @Argument(help: "user, device, ip, instrument or email.") var field: String
        @Argument(help: "The value (raw; stored pseudonymised, as ingest stores the log).") var value: String
        @Option(help: "Why.") var reason = ""
        @Option(help: "Expire after (30d, 12h) or at a time; default never.") var expires: String?
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var e = try RiskLists.entry(list, field, value)
            e.reason = reason
            if let expires {
                if let last = expires.last, let n = Double(expires.dropLast()),
                    let unit = ["m": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0][String(last)]
                {
                    e.expiresMs = WallClock.system.nowMs + Int64(n * unit)
                } else {
                    e.expiresMs = try TrainCommand.time(expires)
                }
            }
            var r = UpdateListsRequest()
            r.add = [e]
            let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.updateLists, r) }
            print(
                """
                added to the \(list) list: \(field) \
                \(value)\(e.expiresMs > 0 ? " until \(RiskText.time(e.expiresMs))" : ""); \(response.size) entries
                """
            )
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an entry.")
        @Argument(help: "block or allow.") var list: String
        @Argument(help: "user, device, ip, instrument or email.") var field: String
        @Argument(help: "The value.") var value: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = UpdateListsRequest()
            r.remove = [try RiskLists.entry(list, field, value)]
            let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.updateLists, r) }
            print(response.removed == 0 ? "no such entry" : "removed from the \(list) list: \(field) \(value); \(response.size) entries")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the lists.")
        @Flag(help: "Include expired entries.") var expired = false
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = GetListsRequest()
            r.includeExpired = expired
            let response = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.getLists, r) }
            print(
                Table.render(
                    header: ["LIST", "FIELD", "VALUE", "ADDED", "EXPIRES", "REASON"],
                    rows: response.entries.map { e in
                        [
                            e.list == .allow ? "allow" : "block", e.field.name ?? "-", e.value, RiskText.time(e.addedMs),
                            e.expiresMs == 0 ? "never" : RiskText.time(e.expiresMs), e.reason,
                        ]
                    }))
        }
    }
}

struct RiskStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Decisions and declines per hour, the score histogram, and precision and recall of past decisions against their labels.")

    @Option(help: "Decided at or after (a time or an age such as 24h).") var since = "24h"
    @Option(help: "Decided before this time.") var to: String?
    @Option(help: "Bucket width in minutes.") var bucketMinutes: Int64 = 60
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var r = DecisionStatsRequest()
        r.fromMs = try RiskText.since(since)
        r.toMs = try to.map(TrainCommand.time) ?? 0
        r.bucketMs = bucketMinutes * 60_000
        let s = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.decisionStats, r, timeout: .seconds(60)) }
        print(
            Table.render(
                header: ["FROM", "DECISIONS", "REVIEWS", "CHALLENGES", "DECLINES"],
                rows: s.buckets.map {
                    [RiskText.time($0.startMs), "\($0.decisions)", "\($0.reviews)", "\($0.challenges)", "\($0.declines)"]
                }))
        print("")
        print(
            Table.render(
                header: ["SCORE", "DECISIONS"],
                rows: s.scoreHistogram.enumerated().map {
                    ["\($0.offset * 100)-\($0.offset == 9 ? 1000 : $0.offset * 100 + 99)", "\($0.element)"]
                }))
        if let o = s.outcome {
            print("")
            print(
                """
                \(o.decisions) decisions, \(o.declined) declined (\(String(format: "%.2f%%", 100 * o.declineRate))); \
                \(o.labelled) labelled, \(o.fraud) fraud
                """
            )
            print(
                """
                flagged (review, challenge, decline) against fraud labels: precision \
                \(String(format: "%.3f", o.precision)), recall \(String(format: "%.3f", o.recall))
                """
            )
        }
    }
}
