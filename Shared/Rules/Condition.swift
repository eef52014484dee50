/// A true-or-false expression of the rules language on one line, with no outcome: an
/// audience's definition (`segment_id == 0 and churn >= 0.6 and recency_days > 30`). It is
/// checked like a rule set (names, types, bounds), and each error names its column.
public struct Condition: Sendable {
    public let source: String
    let expression: Expr
    /// The names it reads, by slot (`Bindings`).
    public let slotNames: [String]

    /// Compiles `source` against the names it may read; errors with line 1 and their column.
    public static func compile(_ source: String, names: [String: ValueType]) -> Result<Condition, RuleSet.Invalid> {
        func invalid(_ message: String, column: Int = 1) -> Result<Condition, RuleSet.Invalid> {
            .failure(RuleSet.Invalid(errors: [RuleError(line: 1, column: column, message: message)]))
        }
        guard !source.contains("\n") else { return invalid("an audience's expression is one line") }
        guard !source.allSatisfy(\.isWhitespace) else { return invalid("the expression is empty") }
        if let tokens = try? Lexer.tokens(source), let arrow = tokens.first(where: { $0.kind == .symbol("=>") }) {
            return invalid("an audience is an expression, with no '=>' and outcome", column: arrow.column)
        }
        // Compiled as the condition of one rule: `c: (source) => allow`, its columns moved back.
        let prefix = "c: ("
        var parser = RuleParser(names: names)
        let rules = parser.parse(prefix + source + ") => allow")
        guard parser.errors.isEmpty, let rule = rules.first else {
            return .failure(
                RuleSet.Invalid(
                    errors: parser.errors.map {
                        var e = $0
                        e.column = max(1, min(e.column - prefix.count, source.count + 1))
                        if e.message.hasPrefix("a rule's condition") { e.message = "an audience" + e.message.dropFirst(18) }
                        return e
                    }))
        }
        return .success(Condition(source: source, expression: rule.condition, slotNames: parser.slotNames))
    }

    /// Whether it holds for `b`; false when a name it reads has no value (`present`).
    public func holds(_ b: Bindings) -> Bool {
        for slot in slotNames.indices where !b.present[slot] { return false }
        return RuleSet.truth(expression, b)
    }
}
