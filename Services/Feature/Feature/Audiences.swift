import Foundation
import Rules
import Synchronization
import Wire

/// An audience as the log defined it, with its sizes as measured here, oldest first.
struct StoredAudience: Sendable {
    var definition: AudienceDefinition
    var definedMs: Int64
    var sizes: [(atMs: Int64, size: UInt32)] = []

    /// Hourly sizes kept: 90 days.
    static let sizesKept = 90 * 24
}

extension FeatureState {
    /// Folds an audience event: a definition replaces the one of its name (its sizes kept when
    /// the expression is the same), a deletion removes it.
    func defineAudience(_ a: AudienceDefinition, atMs: Int64) {
        if a.deleted {
            audiences[a.name] = nil
            return
        }
        let sizes = audiences[a.name].map { $0.definition.expression == a.expression ? $0.sizes : [] } ?? []
        audiences[a.name] = StoredAudience(definition: a, definedMs: atMs, sizes: sizes)
    }
}

/// What an audience's expression may read of a profile, and a profile's values for it: every
/// number GetFeatures serves (docs/FEATURES.md), `segment` and `days_since_last_order` for
/// `segment_id` and `recency_days`, the published user classifiers' probabilities by name
/// (`propensity`, `churn`; a user is in no audience reading one that is not published),
/// `tag_<tag>` for each tag (`tag_churn_risk`), and `region` and `preferred_channel` as strings.
enum AudienceNames {
    static let aliases = ["segment": "segment_id", "days_since_last_order": "recency_days"]
    static let tags = ["new", "active", "dormant", "churn-risk", "high-value", "loyal", "bargain-hunter"]
    static let scores = ["propensity", "churn"]
    static let strings = ["region", "preferred_channel"]

    static let names: [String: ValueType] = {
        var n: [String: ValueType] = [:]
        for name in FeatureCatalog.names { n[name] = .number }
        for alias in aliases.keys { n[alias] = .number }
        for score in scores { n[score] = .number }
        for tag in tags { n[tagName(tag)] = .bool }
        for s in strings { n[s] = .string }
        return n
    }()

    static func tagName(_ tag: String) -> String { "tag_" + tag.replacingOccurrences(of: "-", with: "_") }

    /// The bindings of `condition`'s names for one profile.
    static func bindings(
        _ condition: Condition, view: ProfileView, values: [Float], scorers: [LiveFeatures.UserScorer]
    ) -> Bindings {
        var b = Bindings(slots: condition.slotNames.count)
        var tagSet: Set<String>?
        for (slot, name) in condition.slotNames.enumerated() {
            if let i = FeatureCatalog.index[aliases[name] ?? name] {
                (b.numbers[slot], b.present[slot]) = (Double(values[i]), true)
            } else if scores.contains(name) {
                if let scorer = scorers.first(where: { $0.name == name }) {
                    (b.numbers[slot], b.present[slot]) = (Double(scorer.probability(values)), true)
                }
            } else if name.hasPrefix("tag_") {
                if tagSet == nil { tagSet = Set(view.tags(view.rfm).map(tagName)) }
                (b.numbers[slot], b.present[slot]) = (tagSet!.contains(name) ? 1 : 0, true)
            } else if name == "region" {
                (b.strings[slot], b.present[slot]) = (view.user.region, true)
            } else if name == "preferred_channel" {
                (b.strings[slot], b.present[slot]) = (view.preferred(view.user.channels), true)
            }
        }
        return b
    }
}

extension LiveFeatures {
    /// Compiles an audience's expression (kept compiled by its text).
    func condition(_ expression: String) -> Result<Condition, RuleSet.Invalid> {
        if let kept = compiledAudiences.withLock({ $0[expression] }) { return .success(kept) }
        let compiled = Condition.compile(expression, names: AudienceNames.names)
        if case .success(let c) = compiled {
            compiledAudiences.withLock {
                if $0.count > 1000 { $0.removeAll() }
                $0[expression] = c
            }
        }
        return compiled
    }

    /// The audiences defined, by name (`name` "": all of them).
    func audiences(named name: String = "") -> [StoredAudience] {
        lock.read(state) { s in
            s.audiences.values.filter { name.isEmpty || $0.definition.name == name }.sorted { $0.definition.name < $1.definition.name }
        }
    }

    /// For each of `conditions`, whether each user held here is in it, users in id order after
    /// `afterID`; `visit` is given the user and their memberships and returns false to stop.
    func forEachMembership(_ conditions: [Condition], afterID: Int64 = 0, _ visit: (Int64, [Bool]) -> Bool) {
        let scorers = userScorers
        forEachView(afterID: afterID) { id, view in
            let values = FeatureCatalog.values(view)
            return visit(id, conditions.map { $0.holds(AudienceNames.bindings($0, view: view, values: values, scorers: scorers)) })
        }
    }

    /// Measures every audience's size now (or the one `named`) and appends it to its history
    /// at `atMs` (an hour's start; a second measure in the same hour replaces the first).
    func measureAudiences(atMs: Int64, named name: String = "") {
        let defined = audiences(named: name)
        let conditions = defined.compactMap { a -> (String, Condition)? in
            guard case .success(let c) = condition(a.definition.expression) else { return nil }
            return (a.definition.name, c)
        }
        var sizes = [UInt32](repeating: 0, count: conditions.count)
        forEachMembership(conditions.map(\.1)) { _, memberships in
            for (k, member) in memberships.enumerated() where member { sizes[k] += 1 }
            return true
        }
        lock.write(state) { s in
            for ((name, _), size) in zip(conditions, sizes) {
                guard var a = s.audiences[name] else { continue }
                if a.sizes.last?.atMs == atMs { a.sizes.removeLast() }
                a.sizes.append((atMs, size))
                if a.sizes.count > StoredAudience.sizesKept { a.sizes.removeFirst(a.sizes.count - StoredAudience.sizesKept) }
                s.audiences[name] = a
            }
            s.version &+= 1
        }
    }
}
