import Rules
import Testing
import Wire

@testable import RiskControl

/// The rule language: parsing, evaluation, and every validation error with its position.
@Suite struct RuleTests {
    static let names = Decide.names(features: ["account_age_days", "orders_1h", "users_sharing_device", "amount_24h", "new_device"])

    static func compile(_ source: String) throws -> RuleSet {
        try RuleSet.compile(source, names: names).get()
    }

    static func errors(_ source: String) -> [Rules.RuleError] {
        guard case .failure(let invalid) = RuleSet.compile(source, names: names) else { return [] }
        return invalid.errors
    }

    /// Which rules fire for an order with `amount` and these feature values.
    static func fired(_ set: RuleSet, amount: Double = 100, currency: String = "EUR", features: [String: Float] = [:]) -> [String] {
        var request = ScoreRequest()
        request.userId = 1
        request.amount = amount
        request.currency = currency
        request.kind = .order
        request.timestampMs = 1_700_000_000_000
        var x = DecisionInputs(request: request)
        x.featureNames = Array(features.keys)
        x.features = x.featureNames.map { features[$0]! }
        return set.evaluate(Decide.bindings(x, for: set)).map(\.id)
    }

    @Test func theIssuesExampleParsesAndFires() throws {
        let set = try Self.compile(#"amount > 5000 and account_age_days < 1 => decline "new account, high amount""#)
        #expect(set.rules.count == 1)
        let r = set.rules[0]
        #expect(r.id == "rule_1")
        #expect(r.action == .decline)
        #expect(r.description == "new account, high amount")
        #expect(Self.fired(set, amount: 6000, features: ["account_age_days": 0.5]) == ["rule_1"])
        #expect(Self.fired(set, amount: 6000, features: ["account_age_days": 2]).isEmpty)
        #expect(Self.fired(set, amount: 4000, features: ["account_age_days": 0.5]).isEmpty)
    }

    @Test func operatorsPrecedenceAndFunctions() throws {
        let set = try Self.compile(
            """
            # arithmetic binds tighter than comparison, and tighter than or
            a: amount * 2 + 1 > 201 or false => score +10
            b: not (amount >= 100) => review
            c: currency in ("USD", "EUR") and currency not in ("GBP") => score +5
            d: orders_1h in (1, 2, 3) => challenge
            e: max(amount, amount_24h) >= 500 and abs(-3) == 3 and min(1, 2, 0) == 0 => score -20
            f: amount % 7 == 2 and amount / 0 > 0 => decline
            g: -amount < -99.5 and 10 - 2 - 3 == 5 and 2 * 3 % 4 == 2 => score +1
            h: new_device == 1 and true != false => score +2
            """)
        #expect(set.rules.count == 8)
        #expect(Self.fired(set, amount: 100, features: ["orders_1h": 2, "amount_24h": 600, "new_device": 1]) == ["c", "d", "e", "g", "h"])
        // 100 * 2 + 1 = 201 is not > 201; 101 * 2 + 1 = 203 is; division by zero is never true.
        #expect(Self.fired(set, amount: 101, features: ["orders_1h": 0, "amount_24h": 0, "new_device": 0]) == ["a", "c", "g"])
        #expect(Self.fired(set, amount: 99, currency: "GBP", features: ["orders_1h": 0, "amount_24h": 0, "new_device": 0]) == ["b"])
    }

    @Test func orderIsPriorityThenLine() throws {
        let set = try Self.compile(
            """
            low: amount > 0 => review
            high: amount > 0 => decline priority 10
            neg: amount > 0 => allow priority -1
            """)
        #expect(set.rules.map(\.id) == ["high", "low", "neg"])
    }

    @Test func outcomesThresholdsAndShadow() throws {
        let set = try Self.compile(
            """
            threshold review 300
            threshold decline 700
            both: amount > 10 => review, score +150 "two things"
            shadow trial: amount > 10 => decline
            """)
        #expect(set.reviewThreshold == 300 && set.declineThreshold == 700)
        let both = set.rules.first { $0.id == "both" }!
        #expect(both.action == .review && both.scoreDelta == 150 && both.description == "two things")
        #expect(set.rules.first { $0.id == "trial" }!.shadow)
        #expect(set.described.count == 2)
    }

    @Test func rulesContinueInsideParentheses() throws {
        let set = try Self.compile(
            """
            long: (amount > 10 and
                   orders_1h > 1) => review
            """)
        #expect(set.rules.count == 1)
        #expect(Self.fired(set, amount: 20, features: ["orders_1h": 2]) == ["long"])
    }

    @Test func aRuleReadingAnUnavailableFeatureDoesNotFire() throws {
        let set = try Self.compile(
            """
            request_only: amount > 10 => review
            needs_feature: amount > 10 and account_age_days < 1 => decline
            """)
        var request = ScoreRequest()
        request.amount = 20
        var x = DecisionInputs(request: request)
        x.features = nil
        #expect(set.evaluate(Decide.bindings(x, for: set)).map(\.id) == ["request_only"])
    }

    /// Every validation error, with the line and column it names.
    @Test(
        arguments: [
            ("amount > => decline", 1, 10, "expected a value"),
            ("amount > 10 => deny", 1, 16, "unknown outcome 'deny'"),
            ("amount > 10 decline", 1, 13, "expected '=>'"),
            ("amout > 10 => decline", 1, 1, "unknown name 'amout', did you mean 'amount'?"),
            ("amount + 1 => decline", 1, 1, "condition must be true or false"),
            ("currency > \"EUR\" => review", 1, 10, "orders numbers"),
            ("amount == \"EUR\" => review", 1, 8, "compares a number with a string"),
            ("amount and true => review", 1, 8, "'and' joins conditions"),
            ("currency * 2 > 1 => review", 1, 10, "'*' works on numbers"),
            ("amount = 5 => review", 1, 8, "'=' is not an operator"),
            ("amount > 5 => review \"open", 1, 22, "string not closed"),
            ("amount > 5 => score 5", 1, 21, "expected '+' or '-'"),
            ("amount > 5 => review, decline", 1, 23, "a rule has one action"),
            ("amount > 5 => review priority high", 1, 31, "a priority is a whole number"),
            ("amount > 5 => review extra", 1, 22, "unexpected 'extra'"),
            ("currency in (1, \"a\") => review", 1, 10, "a list mixes numbers and strings"),
            ("amount in (\"a\") => review", 1, 8, "'in' looks for a number"),
            ("abs(1, 2) > 0 => review", 1, 1, "abs(...) takes one number"),
            ("amount > 1 $ => review", 1, 12, "unexpected character '$'"),
            ("threshold review 2000", 1, 18, "a threshold is a whole number"),
            ("x: amount > 1 => review\nx: amount > 2 => review", 2, 1, "rule name 'x' is used twice"),
            ("threshold decline 100\nthreshold review 200", 2, 1, "review threshold 200 is above decline threshold 100"),
            ("ok: amount > 1 => review\n\n  bad: amount >> 1 => review", 3, 16, "expected a value"),
        ] as [(String, Int, Int, String)])
    func validationErrorsNameTheirPosition(_ source: String, _ line: Int, _ column: Int, _ message: String) {
        let errors = Self.errors(source)
        #expect(errors.count == 1, "\(source): \(errors)")
        guard let e = errors.first else { return }
        #expect(e.line == line && e.column == column, "\(source): \(e)")
        #expect(e.message.contains(message), "\(source): \(e)")
    }

    @Test func everyBadLineIsReported() {
        let errors = Self.errors("a: amount > => review\nb: amount > 1 => review\nc: nope > 1 => review")
        #expect(errors.map(\.line) == [1, 3])
    }

    @Test func evaluationIsBounded() {
        let deep = String(repeating: "(", count: 60) + "amount > 1" + String(repeating: ")", count: 60) + " => review"
        #expect(Self.errors(deep).first?.message.contains("nested deeper") == true)
        let wide = (0..<200).map { "amount > \($0)" }.joined(separator: " and ") + " => review"
        #expect(Self.errors(wide).first?.message.contains("at most 256 terms") == true)
    }
}
