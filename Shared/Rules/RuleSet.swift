public import Wire

/// A request's values for the names a rule set reads, by slot (`RuleSet.slotNames`). A slot
/// not `present` is unavailable (the features when the feature service did not answer, the
/// model's output without a model): a rule reading one is not evaluated.
public struct Bindings {
    public var numbers: [Double]
    public var strings: [String]
    public var present: [Bool]

    public init(slots: Int) {
        numbers = [Double](repeating: 0, count: slots)
        strings = [String](repeating: "", count: slots)
        present = [Bool](repeating: false, count: slots)
    }
}

/// A validated, versioned rule set: its rules in evaluation order (priority, highest first,
/// then line), the names they read and the thresholds it sets.
public struct RuleSet: Sendable {
    public var version: UInt32 = 0
    public var source = ""
    public var shadow = false
    public var publishedMs: Int64 = 0
    public var rules: [ParsedRule] = []
    public var slotNames: [String] = []
    public var reviewThreshold: Int?
    public var declineThreshold: Int?

    public static let empty = RuleSet()

    /// Parses and checks `source`; every error with its line and column.
    public static func compile(_ source: String, names: [String: ValueType]) -> Result<RuleSet, Invalid> {
        var parser = RuleParser(names: names)
        let rules = parser.parse(source)
        guard parser.errors.isEmpty else { return .failure(Invalid(errors: parser.errors)) }
        var set = RuleSet()
        set.source = source
        set.rules = rules.sorted { $0.priority != $1.priority ? $0.priority > $1.priority : $0.line < $1.line }
        set.slotNames = parser.slotNames
        set.reviewThreshold = parser.thresholds.review
        set.declineThreshold = parser.thresholds.decline
        return .success(set)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var errors: [RuleError]
        public var description: String { errors.map(\.description).joined(separator: "\n") }
    }

    public struct Fired: Equatable {
        public var id: String
        public var action: Action?
        public var scoreDelta: Int
        public var description: String
        public var priority: Int
        public var shadow: Bool
    }

    /// The rules that fire on `b`, in evaluation order (each rule whose every slot is present).
    public func evaluate(_ b: Bindings) -> [Fired] {
        var fired: [Fired] = []
        for r in rules where r.slots.allSatisfy({ b.present[$0] }) && Self.truth(r.condition, b) {
            fired.append(
                Fired(
                    id: r.id, action: r.action, scoreDelta: r.scoreDelta, description: r.description, priority: r.priority,
                    shadow: r.shadow || shadow))
        }
        return fired
    }

    /// The rules as the API lists them.
    public var described: [Rule] {
        rules.map { r in
            var out = Rule()
            out.id = r.id
            out.expression = r.expression
            out.action = r.action ?? .unspecified
            out.priority = Int32(r.priority)
            out.enabled = true
            out.scoreDelta = Int32(r.scoreDelta)
            out.description = r.description
            out.line = UInt32(r.line)
            out.shadow = r.shadow || shadow
            return out
        }
    }

    // MARK: Evaluation (types were checked by the parser)

    public static func truth(_ e: Expr, _ b: Bindings) -> Bool {
        switch e {
        case .bool(let v): return v
        case .variable(let slot, _): return b.numbers[slot] != 0
        case .not(let x): return !truth(x, b)
        case .and(let x, let y): return truth(x, b) && truth(y, b)
        case .or(let x, let y): return truth(x, b) || truth(y, b)
        case .compare(let op, let x, let y):
            if case .string = type(x) {
                let (l, r) = (string(x, b), string(y, b))
                return op == .eq ? l == r : l != r
            }
            if case .bool = type(x) {
                let (l, r) = (truth(x, b), truth(y, b))
                return op == .eq ? l == r : l != r
            }
            let (l, r) = (number(x, b), number(y, b))
            switch op {
            case .lt: return l < r
            case .le: return l <= r
            case .gt: return l > r
            case .ge: return l >= r
            case .eq: return l == r
            case .ne: return l != r
            }
        case .numberIn(let x, let set, let negated): return set.contains(number(x, b)) != negated
        case .stringIn(let x, let set, let negated): return set.contains(string(x, b)) != negated
        default: return false
        }
    }

    /// Division or remainder by zero gives NaN, which no comparison is true of.
    public static func number(_ e: Expr, _ b: Bindings) -> Double {
        switch e {
        case .number(let v): return v
        case .variable(let slot, _): return b.numbers[slot]
        case .negate(let x): return -number(x, b)
        case .arith(let op, let x, let y):
            let (l, r) = (number(x, b), number(y, b))
            switch op {
            case .add: return l + r
            case .sub: return l - r
            case .mul: return l * r
            case .div: return r == 0 ? .nan : l / r
            case .mod: return r == 0 ? .nan : l.truncatingRemainder(dividingBy: r)
            }
        case .call(let f, let args):
            let values = args.map { number($0, b) }
            switch f {
            case .min: return values.min()!
            case .max: return values.max()!
            case .abs: return Swift.abs(values[0])
            }
        default: return .nan
        }
    }

    public static func string(_ e: Expr, _ b: Bindings) -> String {
        switch e {
        case .string(let s): s
        case .variable(let slot, _): b.strings[slot]
        default: ""
        }
    }

    public static func type(_ e: Expr) -> ValueType {
        switch e {
        case .number, .arith, .negate, .call: .number
        case .string: .string
        case .bool, .not, .and, .or, .compare, .numberIn, .stringIn: .bool
        case .variable(_, let t): t
        }
    }
}
