import Rules
import Synchronization

/// The active and shadow rule sets in force, as the decision log's rule-set records left
/// them (`DecisionDatabase.applySettings` stores them; every replica on the log loads the
/// same). The stored sets are compiled leniently: they were validated when published.
final class RuleBook: Sendable {
    private let state = Mutex<(active: RuleSet, shadow: RuleSet?)>((RuleSet.empty, nil))
    /// The versions the latest rule-set records were given, by their offsets in the log.
    private let versions = Mutex<[UInt64: UInt32]>([:])

    init(stored: [DecisionDatabase.StoredRuleSet]) {
        load(stored)
    }

    /// Puts in force the latest active set and the latest shadow set of `stored` (oldest
    /// first); an empty shadow set withdraws the shadow rules.
    func load(_ stored: [DecisionDatabase.StoredRuleSet]) {
        var active = RuleSet.empty
        var shadow: RuleSet?
        for s in stored {
            let set = Self.lenient(s)
            if s.shadow { shadow = set.rules.isEmpty ? nil : set } else { active = set }
        }
        state.withLock { $0 = (active, shadow) }
    }

    /// Notes the versions given to the rule-set records at these offsets (the latest 256 are kept).
    func versioned(_ byOffset: [UInt64: UInt32]) {
        versions.withLock { v in
            v.merge(byOffset) { $1 }
            if v.count > 256 { for k in v.keys.sorted().dropLast(256) { v[k] = nil } }
        }
    }

    /// The version the rule-set record at `offset` was given, once applied.
    func version(at offset: UInt64) -> UInt32? { versions.withLock { $0[offset] } }

    /// A stored set compiled with every unknown name taken as a numeric feature.
    static func lenient(_ s: DecisionDatabase.StoredRuleSet) -> RuleSet {
        var names = Decide.requestFields
        // Names the set reads that are not request fields are features (numbers).
        if let tokens = try? Lexer.tokens(s.source) {
            for t in tokens { if case .name(let n) = t.kind, names[n] == nil { names[n] = .number } }
        }
        var set = (try? RuleSet.compile(s.source, names: names).get()) ?? RuleSet.empty
        set.version = s.version
        set.shadow = s.shadow
        set.publishedMs = s.publishedMs
        set.source = s.source
        return set
    }

    var current: (active: RuleSet, shadow: RuleSet?) { state.withLock { ($0.active, $0.shadow) } }
}
