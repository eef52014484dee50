import Classifiers
import DataStructures
import Rules
import Synchronization

/// The feature names a Score reads, kept while the model and rule sets stay the same (one
/// array shared by their decisions, not one built per call).
final class ScoreFeatureNames: Sendable {
    private let last = Mutex<(versions: [UInt32], names: [String], key: UInt64)?>(nil)

    /// The names, and the key RequestFeatures keeps them under (`StableHash.key(of:)`).
    func names(model: ServedClassifier.Loaded?, rules: RuleSet, shadow: RuleSet?) -> (names: [String], key: UInt64) {
        let versions = [model?.info.version ?? 0, model == nil ? 0 : 1, rules.version, shadow?.version ?? 0]
        if let l = last.withLock({ $0 }), l.versions == versions { return (l.names, l.key) }
        let names = Self.read(model: model?.classifier, rules: [rules, shadow].compactMap { $0 })
        let key = StableHash.key(of: names)
        last.withLock { $0 = (versions, names, key) }
        return (names, key)
    }

    /// The features one Score reads: the model's, in its order, then any other a rule reads.
    static func read(model: Classifier?, rules: [RuleSet]) -> [String] {
        var names = model?.features ?? []
        var seen = Set(names)
        for set in rules {
            for n in set.slotNames where Decide.requestFields[n] == nil && seen.insert(n).inserted { names.append(n) }
        }
        return names
    }
}
