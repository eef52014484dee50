import Synchronization

/// The active and shadow rule sets, with the version counter; the stored sets are compiled
/// on start (leniently: they were validated when published).
final class RuleBook: Sendable {
    private let state: Mutex<(active: RuleSet, shadow: RuleSet?, latest: UInt32)>
    private let publishing = AsyncLock()

    init(stored: [DecisionDatabase.StoredRuleSet]) throws {
        var active = RuleSet.empty
        var shadow: RuleSet?
        for s in stored {
            let set = Self.lenient(s)
            if s.shadow { shadow = set.rules.isEmpty ? nil : set } else { active = set }
        }
        state = Mutex((active, shadow, stored.map(\.version).max() ?? 0))
    }

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

    /// Gives `set` the next version, stores it with `save`, then puts it in force (an empty
    /// shadow set withdraws the shadow rules).
    func publish(_ set: RuleSet, save: (RuleSet) async throws -> Void) async throws -> RuleSet {
        try await publishing.run {
            var set = set
            set.version = state.withLock { $0.latest } + 1
            try await save(set)
            state.withLock { s in
                s.latest = set.version
                if set.shadow { s.shadow = set.rules.isEmpty ? nil : set } else { s.active = set }
            }
            return set
        }
    }
}
