public import Wire

/// The risk rules' language (docs/RULES.md): one rule per line,
///
///     [shadow] [name:] expression => outcome ["description"] [priority N]
///     threshold review|decline N
///
/// where an outcome is an action (`allow`, `review`, `challenge`, `decline`), a score
/// modifier (`score +200`, `score -50`) or both (`review, score +100`). Expressions have
/// numbers, strings, true/false, names (request fields, features, the model's output),
/// `+ - * / %`, comparisons, `and`/`or`/`not`, `in (...)`/`not in (...)`, and `min`, `max`,
/// `abs`. Nothing loops and nothing reaches outside the values it is given; a rule has at
/// most `maxNodes` nodes and a set at most `maxRules` rules, so evaluation is bounded.
/// Every error names its line and column (1-based).
public struct RuleError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String
    /// The error is a name the rules may not read (of all the names known when compiled).
    public var unknownName = false

    public var description: String { "\(line):\(column): \(message)" }
}

/// The types values take; booleans are their own type (features that are 0/1 are numbers).
public enum ValueType: String, Sendable {
    case number, string, bool
}

public enum CompareOp: String, Sendable {
    case lt = "<", le = "<=", gt = ">", ge = ">=", eq = "==", ne = "!="
}

public enum ArithOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", mod = "%"
}

public enum Function: String, Sendable {
    case min, max, abs
}

/// A typed expression; names are resolved to slots of `Bindings`.
public indirect enum Expr: Sendable {
    case number(Double)
    case string(String)
    case bool(Bool)
    case variable(slot: Int, ValueType)
    case not(Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case compare(CompareOp, Expr, Expr)
    case arith(ArithOp, Expr, Expr)
    case negate(Expr)
    case numberIn(Expr, Set<Double>, negated: Bool)
    case stringIn(Expr, Set<String>, negated: Bool)
    case call(Function, [Expr])
}

/// One parsed rule.
public struct ParsedRule: Sendable {
    public var id: String
    public var line: Int
    public var expression: String
    public var condition: Expr
    public var action: Action?
    public var scoreDelta: Int
    public var description: String
    public var priority: Int
    public var shadow: Bool
    /// Slots the condition reads (to skip a rule whose features are unavailable).
    public var slots: Set<Int>
}

/// Parses a rule set's source against the names a request can bind.
public struct RuleParser {
    public static let maxRules = 1000
    public static let maxNodes = 256
    public static let maxListLength = 10_000
    public static let maxDepth = 48

    /// Name -> type of every name a rule may read.
    public let names: [String: ValueType]
    /// Names used, in slot order.
    private(set) var slotNames: [String] = []
    private var slots: [String: Int] = [:]
    private(set) var errors: [RuleError] = []
    private(set) var thresholds: (review: Int?, decline: Int?) = (nil, nil)

    public init(names: [String: ValueType]) { self.names = names }

    public mutating func parse(_ source: String) -> [ParsedRule] {
        var rules: [ParsedRule] = []
        var ids: Set<String> = []
        var tokens: [Token]
        do {
            tokens = try Lexer.tokens(source)
        } catch let e as RuleError {
            errors.append(e)
            return []
        } catch { return [] }
        var lines: [[Token]] = [[]]
        for t in tokens {
            if case .newline = t.kind {
                if !lines[lines.count - 1].isEmpty { lines.append([]) }
            } else {
                lines[lines.count - 1].append(t)
            }
        }
        let sourceLines = source.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines where !line.isEmpty {
            var p = LineParser(tokens: line, parser: self)
            do {
                if case .name("threshold") = line[0].kind {
                    let (which, value) = try p.threshold()
                    if which == "review" { thresholds.review = value } else { thresholds.decline = value }
                    if let r = thresholds.review, let d = thresholds.decline, r > d {
                        throw RuleError(
                            line: line[0].line, column: line[0].column, message: "review threshold \(r) is above decline threshold \(d)")
                    }
                    continue
                }
                var rule = try p.rule()
                self = p.parser
                guard rules.count < Self.maxRules else {
                    throw RuleError(line: rule.line, column: 1, message: "more than \(Self.maxRules) rules")
                }
                if rule.id.isEmpty { rule.id = "rule_\(rule.line)" }
                guard ids.insert(rule.id).inserted else {
                    throw RuleError(line: rule.line, column: line[0].column, message: "rule name '\(rule.id)' is used twice")
                }
                let text = rule.line - 1 < sourceLines.count ? sourceLines[rule.line - 1] : ""
                rule.expression = String(
                    text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
                rules.append(rule)
            } catch let e as RuleError {
                self.slotNames = p.parser.slotNames
                self.slots = p.parser.slots
                errors.append(e)
            } catch {}
        }
        return rules
    }

    public mutating func slot(_ name: String) -> Int {
        if let s = slots[name] { return s }
        slots[name] = slotNames.count
        slotNames.append(name)
        return slotNames.count - 1
    }
}

// MARK: Tokens

public struct Token {
    public enum Kind: Equatable {
        case number(Double)
        case string(String)
        case name(String)
        case symbol(String)
        case newline
    }

    public var kind: Kind
    public var line: Int
    public var column: Int
}

public enum Lexer {
    public static func tokens(_ source: String) throws -> [Token] {
        var out: [Token] = []
        let chars = Array(source.unicodeScalars)
        var i = 0, line = 1, column = 1, depth = 0
        func error(_ message: String) -> RuleError { RuleError(line: line, column: column, message: message) }
        func advance() {
            if chars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
        while i < chars.count {
            let c = chars[i]
            let (l, col) = (line, column)
            if c == "\n" {
                if depth == 0 { out.append(Token(kind: .newline, line: l, column: col)) }
                advance()
            } else if c == " " || c == "\t" || c == "\r" {
                advance()
            } else if c == "#" {
                while i < chars.count && chars[i] != "\n" { advance() }
            } else if c.properties.isAlphabetic || c == "_" {
                var s = ""
                while i < chars.count && (chars[i].properties.isAlphabetic || chars[i] == "_" || ("0"..."9").contains(chars[i])) {
                    s.unicodeScalars.append(chars[i])
                    advance()
                }
                out.append(Token(kind: .name(s), line: l, column: col))
            } else if ("0"..."9").contains(c) || (c == "." && i + 1 < chars.count && ("0"..."9").contains(chars[i + 1])) {
                var s = ""
                while i < chars.count && (("0"..."9").contains(chars[i]) || chars[i] == "." || chars[i] == "_") {
                    if chars[i] != "_" { s.unicodeScalars.append(chars[i]) }
                    advance()
                }
                guard let v = Double(s) else { throw RuleError(line: l, column: col, message: "'\(s)' is not a number") }
                out.append(Token(kind: .number(v), line: l, column: col))
            } else if c == "\"" {
                advance()
                var s = ""
                while true {
                    guard i < chars.count, chars[i] != "\n" else { throw RuleError(line: l, column: col, message: "string not closed") }
                    if chars[i] == "\"" { advance(); break }
                    if chars[i] == "\\" && i + 1 < chars.count {
                        advance()
                        s.unicodeScalars.append(chars[i] == "n" ? "\n" : chars[i])
                    } else {
                        s.unicodeScalars.append(chars[i])
                    }
                    advance()
                }
                out.append(Token(kind: .string(s), line: l, column: col))
            } else {
                let two = i + 1 < chars.count ? String(c) + String(chars[i + 1]) : ""
                if ["<=", ">=", "==", "!=", "=>"].contains(two) {
                    advance(); advance()
                    out.append(Token(kind: .symbol(two), line: l, column: col))
                } else if "()<>+-*/%,:".unicodeScalars.contains(c) {
                    if c == "(" { depth += 1 }
                    if c == ")" { depth = max(0, depth - 1) }
                    advance()
                    out.append(Token(kind: .symbol(String(c)), line: l, column: col))
                } else if c == "=" {
                    throw error("'=' is not an operator: compare with '==', end the condition with '=>'")
                } else {
                    throw error("unexpected character '\(c)'")
                }
            }
        }
        return out
    }
}

// MARK: One line

private struct LineParser {
    public var tokens: [Token]
    public var parser: RuleParser
    public var i = 0
    public var nodes = 0
    public var depth = 0
    public var read: Set<Int> = []

    public init(tokens: [Token], parser: RuleParser) {
        self.tokens = tokens
        self.parser = parser
    }

    public var current: Token? { i < tokens.count ? tokens[i] : nil }

    public func error(_ message: String, at token: Token? = nil) -> RuleError {
        let t = token ?? current ?? tokens.last!
        let column = token == nil && current == nil ? t.column + 1 : t.column
        return RuleError(line: t.line, column: column, message: message)
    }

    public func describe(_ t: Token?) -> String {
        switch t?.kind {
        case .number(let v)?: "number \(v)"
        case .string(let s)?: "string \"\(s)\""
        case .name(let n)?: "'\(n)'"
        case .symbol(let s)?: "'\(s)'"
        case .newline?, nil: "the end of the line"
        }
    }

    public mutating func take(_ symbol: String) -> Bool {
        if case .symbol(symbol)? = current?.kind { i += 1; return true }
        return false
    }

    public mutating func takeName(_ name: String) -> Bool {
        if case .name(name)? = current?.kind { i += 1; return true }
        return false
    }

    public mutating func expect(_ symbol: String, _ what: String) throws {
        guard take(symbol) else { throw error("expected \(what), found \(describe(current))") }
    }

    public mutating func threshold() throws -> (String, Int) {
        i = 1
        guard case .name(let which)? = current?.kind, which == "review" || which == "decline" else {
            throw error("expected 'review' or 'decline' after 'threshold', found \(describe(current))")
        }
        i += 1
        guard case .number(let v)? = current?.kind, v >= 0, v <= 1000, v == v.rounded() else {
            throw error("a threshold is a whole number 0...1000, found \(describe(current))")
        }
        i += 1
        guard current == nil else { throw error("unexpected \(describe(current)) after the threshold") }
        return (which, Int(v))
    }

    public mutating func rule() throws -> ParsedRule {
        let first = tokens[0]
        let shadow = takeName("shadow")
        var id = ""
        if case .name(let n)? = current?.kind, i + 1 < tokens.count, tokens[i + 1].kind == .symbol(":") {
            id = n
            i += 2
        }
        let start = current
        let condition = try expression()
        guard type(condition) == .bool else {
            throw error("a rule's condition must be true or false, not a \(type(condition).rawValue)", at: start)
        }
        try expect("=>", "'=>' and an outcome")
        var action: Action?
        var delta = 0
        repeat {
            guard case .name(let word)? = current?.kind else {
                throw error("expected an outcome (allow, review, challenge, decline or score +N), found \(describe(current))")
            }
            let at = current
            i += 1
            switch word {
            case "allow", "review", "challenge", "decline":
                guard action == nil else { throw error("a rule has one action", at: at) }
                action = word == "allow" ? .allow : word == "review" ? .review : word == "challenge" ? .challenge : .decline
            case "score":
                let sign: Double
                if take("+") {
                    sign = 1
                } else if take("-") {
                    sign = -1
                } else {
                    throw error("expected '+' or '-' after 'score', found \(describe(current))")
                }
                guard case .number(let v)? = current?.kind, v == v.rounded(), v <= 1000 else {
                    throw error("a score modifier is a whole number up to 1000, found \(describe(current))")
                }
                i += 1
                delta += Int(sign * v)
            default:
                throw error("unknown outcome '\(word)': allow, review, challenge, decline or score +N", at: at)
            }
        } while take(",")
        var description = ""
        if case .string(let s)? = current?.kind {
            description = s
            i += 1
        }
        var priority = 0
        if takeName("priority") {
            var sign = 1
            if take("-") { sign = -1 }
            guard case .number(let v)? = current?.kind, v == v.rounded(), v <= 1_000_000 else {
                throw error("a priority is a whole number, found \(describe(current))")
            }
            priority = sign * Int(v)
            i += 1
        }
        guard current == nil else { throw error("unexpected \(describe(current)) after the rule") }
        return ParsedRule(
            id: id, line: first.line, expression: "", condition: condition, action: action, scoreDelta: delta,
            description: description, priority: priority, shadow: shadow, slots: read)
    }

    // Precedence, lowest first: or, and, not, comparison/in, + -, * / %, unary minus.

    /// One level deeper for `body`: parentheses, and each `not` or unary `-` (a chain of
    /// them recurses as parentheses do), at most `maxDepth` in all.
    public mutating func nested(_ body: (inout Self) throws -> Expr) throws -> Expr {
        depth += 1
        defer { depth -= 1 }
        guard depth <= RuleParser.maxDepth else { throw error("expression nested deeper than \(RuleParser.maxDepth)") }
        return try body(&self)
    }

    public mutating func expression() throws -> Expr {
        try nested { try $0.disjunction() }
    }

    public mutating func disjunction() throws -> Expr {
        var left = try conjunction()
        while case .name("or")? = current?.kind {
            let at = current
            i += 1
            let right = try conjunction()
            try requireBool(left, right, "or", at)
            left = try node(.or(left, right))
        }
        return left
    }

    public mutating func conjunction() throws -> Expr {
        var left = try negation()
        while case .name("and")? = current?.kind {
            let at = current
            i += 1
            let right = try negation()
            try requireBool(left, right, "and", at)
            left = try node(.and(left, right))
        }
        return left
    }

    public mutating func negation() throws -> Expr {
        if case .name("not")? = current?.kind {
            let at = current
            i += 1
            let inner = try nested { try $0.negation() }
            guard type(inner) == .bool else { throw error("'not' needs true or false, not a \(type(inner).rawValue)", at: at) }
            return try node(.not(inner))
        }
        return try comparison()
    }

    public mutating func comparison() throws -> Expr {
        let left = try sum()
        if case .symbol(let s)? = current?.kind, let op = CompareOp(rawValue: s) {
            let at = current
            i += 1
            let right = try sum()
            let (a, b) = (type(left), type(right))
            guard a == b else { throw error("'\(s)' compares a \(a.rawValue) with a \(b.rawValue)", at: at) }
            if a != .number && op != .eq && op != .ne { throw error("'\(s)' orders numbers; \(a.rawValue)s compare with == or !=", at: at) }
            return try node(.compare(op, left, right))
        }
        var negated = false
        if case .name("not")? = current?.kind, i + 1 < tokens.count, tokens[i + 1].kind == .name("in") {
            negated = true
            i += 1
        }
        if takeName("in") {
            let at = tokens[i - 1]
            try expect("(", "'(' and a list")
            var numbers: Set<Double> = []
            var strings: Set<String> = []
            repeat {
                let neg = take("-")
                switch current?.kind {
                case .number(let v)?: numbers.insert(neg ? -v : v)
                case .string(let s)? where !neg: strings.insert(s)
                default: throw error("a list holds numbers or strings, found \(describe(current))")
                }
                i += 1
                guard numbers.count + strings.count <= RuleParser.maxListLength else {
                    throw error("a list holds at most \(RuleParser.maxListLength) values")
                }
            } while take(",")
            try expect(")", "')' closing the list")
            guard numbers.isEmpty || strings.isEmpty else { throw error("a list mixes numbers and strings", at: at) }
            switch type(left) {
            case .number where strings.isEmpty: return try node(.numberIn(left, numbers, negated: negated))
            case .string where numbers.isEmpty: return try node(.stringIn(left, strings, negated: negated))
            default: throw error("'in' looks for a \(type(left).rawValue) in a list of \(numbers.isEmpty ? "strings" : "numbers")", at: at)
            }
        }
        return left
    }

    public mutating func sum() throws -> Expr {
        var left = try product()
        while case .symbol(let s)? = current?.kind, s == "+" || s == "-" {
            let at = current
            i += 1
            let right = try product()
            try requireNumbers(left, right, s, at)
            left = try node(.arith(ArithOp(rawValue: s)!, left, right))
        }
        return left
    }

    public mutating func product() throws -> Expr {
        var left = try unary()
        while case .symbol(let s)? = current?.kind, s == "*" || s == "/" || s == "%" {
            let at = current
            i += 1
            let right = try unary()
            try requireNumbers(left, right, s, at)
            left = try node(.arith(ArithOp(rawValue: s)!, left, right))
        }
        return left
    }

    public mutating func unary() throws -> Expr {
        if take("-") {
            let at = tokens[i - 1]
            let inner = try nested { try $0.unary() }
            guard type(inner) == .number else { throw error("'-' needs a number, not a \(type(inner).rawValue)", at: at) }
            return try node(.negate(inner))
        }
        return try primary()
    }

    public mutating func primary() throws -> Expr {
        guard let t = current else { throw error("expected a value, found the end of the line") }
        switch t.kind {
        case .number(let v):
            i += 1
            return try node(.number(v))
        case .string(let s):
            i += 1
            return try node(.string(s))
        case .symbol("("):
            i += 1
            let inner = try expression()
            try expect(")", "')'")
            return inner
        case .name("true"):
            i += 1
            return try node(.bool(true))
        case .name("false"):
            i += 1
            return try node(.bool(false))
        case .name(let n):
            i += 1
            if let f = Function(rawValue: n), case .symbol("(")? = current?.kind {
                i += 1
                var args: [Expr] = []
                repeat { args.append(try expression()) } while take(",")
                try expect(")", "')' closing \(n)(...)")
                guard args.allSatisfy({ type($0) == .number }) else { throw error("\(n)(...) takes numbers", at: t) }
                guard f == .abs ? args.count == 1 : args.count >= 2 else {
                    throw error(f == .abs ? "abs(...) takes one number" : "\(n)(...) takes two numbers or more", at: t)
                }
                return try node(.call(f, args))
            }
            if ["and", "or", "not", "in"].contains(n) { throw error("expected a value, found '\(n)'", at: t) }
            guard let type = parser.names[n] else {
                var e = error("unknown name '\(n)'\(Self.suggestion(n, parser.names.keys))", at: t)
                e.unknownName = true
                throw e
            }
            let slot = parser.slot(n)
            read.insert(slot)
            return try node(.variable(slot: slot, type))
        default:
            throw error("expected a value, found \(describe(t))", at: t)
        }
    }

    public mutating func node(_ e: Expr) throws -> Expr {
        nodes += 1
        guard nodes <= RuleParser.maxNodes else { throw error("a rule has at most \(RuleParser.maxNodes) terms") }
        return e
    }

    public func requireBool(_ a: Expr, _ b: Expr, _ op: String, _ at: Token?) throws {
        guard type(a) == .bool, type(b) == .bool else {
            throw error("'\(op)' joins conditions (true or false), not a \(type(a) == .bool ? type(b).rawValue : type(a).rawValue)", at: at)
        }
    }

    public func requireNumbers(_ a: Expr, _ b: Expr, _ op: String, _ at: Token?) throws {
        guard type(a) == .number, type(b) == .number else {
            throw error("'\(op)' works on numbers, not a \(type(a) == .number ? type(b).rawValue : type(a).rawValue)", at: at)
        }
    }

    public func type(_ e: Expr) -> ValueType { RuleSet.type(e) }

    /// ", did you mean 'x'?" for the closest known name within two edits.
    public static func suggestion(_ name: String, _ known: some Sequence<String>) -> String {
        var best: (String, Int)?
        for k in known {
            let d = editDistance(name, k)
            if d <= 2 && d < (best?.1 ?? .max) { best = (k, d) }
        }
        return best.map { ", did you mean '\($0.0)'?" } ?? ""
    }

    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if abs(a.count - b.count) > 2 { return 3 }
        var previous = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var row = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                row[j] = Swift.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = row
        }
        return previous[b.count]
    }
}
