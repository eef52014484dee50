import Foundation
import Profiles
import Rules
import Wire

/// What one decision is made from: the request, its features as of the request (nil when
/// the feature service did not answer in time), the model's probability (nil without a
/// model) and reasons, and a list entry that matched.
struct DecisionInputs {
    var request: ScoreRequest
    var featureNames: [String] = []
    var features: [Float]?
    var knownUser = false
    var probability: Float?
    var modelReasons: [ReasonCode] = []
    var listMatch: ListEntry?
}

/// The thresholds and failure policy decisions are made under.
struct DecisionPolicy: Sendable {
    var review: Int
    var decline: Int
    var failOpen: Bool
}

/// The decision function, the same for a live Score and for a backtest's replay:
///
/// 1. A block-list match declines (score 1000), an allow-list match allows (score 0); nothing
///    else is evaluated.
/// 2. The model's calibrated probability p gives the base score round(1000 p): monotone, so
///    a higher probability never scores lower.
/// 3. Each rule that fires adds its score modifier; the result is clamped to 0...1000. The
///    first firing rule with an action (highest priority, then earliest line) sets the action.
/// 4. Without an action from a rule: decline at or above the decline threshold, review at or
///    above the review threshold, else allow. Without features (the feature service did not
///    answer in time), the failure policy's action instead: allow (open) or decline (closed),
///    with the reason `policy:features_unavailable`; rules that read only the request still apply.
/// 5. Shadow rules are evaluated and recorded as SHADOW reasons; they change nothing.
/// The fraud flag is set on a decline.
enum Decide {
    struct Verdict {
        var score: Int
        var action: Action
        var reasons: [ReasonCode]
        var fraud: Bool { action == .decline }
    }

    static func decide(_ x: DecisionInputs, rules: RuleSet, shadow: RuleSet?, policy: DecisionPolicy) -> Verdict {
        if let m = x.listMatch {
            var r = ReasonCode()
            r.kind = .list
            r.code = "list:\(StoredNames.list(m.list)):\(StoredNames.field(m.field))"
            r.description = m.reason.isEmpty ? "\(StoredNames.field(m.field)) is on the \(StoredNames.list(m.list)) list" : m.reason
            return m.list == .allow ? Verdict(score: 0, action: .allow, reasons: [r]) : Verdict(score: 1000, action: .decline, reasons: [r])
        }
        // A probability outside 0...1 (a model fed infinities) is clamped; NaN counts as none.
        let base = x.probability.map { $0.isNaN ? 0 : Int((Double(min(max($0, 0), 1)) * 1000).rounded()) } ?? 0
        var reasons: [ReasonCode] = []
        var delta = 0
        var override: Action?
        for f in rules.evaluate(bindings(x, for: rules)) {
            var r = ReasonCode()
            r.code = f.id
            r.description = f.description
            r.contribution = Double(f.scoreDelta)
            if f.shadow {
                r.kind = .shadow
            } else {
                r.kind = .rule
                delta += f.scoreDelta
                if override == nil, let a = f.action { override = a }
            }
            reasons.append(r)
        }
        if let shadow {
            for f in shadow.evaluate(bindings(x, for: shadow)) {
                var r = ReasonCode()
                r.kind = .shadow
                r.code = f.id
                r.description = f.description
                r.contribution = Double(f.scoreDelta)
                reasons.append(r)
            }
        }
        let score = min(1000, max(0, base + delta))
        let review = rules.reviewThreshold ?? policy.review
        let decline = rules.declineThreshold ?? policy.decline
        var action: Action
        if let override {
            action = override
        } else if x.features == nil {
            action = policy.failOpen ? .allow : .decline
        } else {
            action = score >= decline ? .decline : score >= review ? .review : .allow
        }
        if x.features == nil {
            var r = ReasonCode()
            r.kind = .policy
            r.code = "policy:features_unavailable"
            r.description = "features could not be read in time: fail-\(policy.failOpen ? "open" : "closed")"
            reasons.append(r)
            if override == nil { action = policy.failOpen ? .allow : .decline }
        }
        reasons += x.modelReasons
        return Verdict(score: score, action: action, reasons: reasons)
    }

    // MARK: Names a rule reads

    /// The request's own fields and the model's output, by name and type (docs/RULES.md).
    static let requestFields: [String: ValueType] = [
        "amount": .number, "currency": .string, "kind": .string, "channel": .string, "ip_country": .string,
        "lines": .number, "quantity": .number, "hour": .number, "weekday": .number, "user_id": .number,
        "has_device": .bool, "has_ip": .bool, "has_instrument": .bool, "has_email": .bool,
        "known_user": .bool, "model_probability": .number, "model_score": .number, "has_model": .bool,
    ]

    /// Every name a rule may read: the request's fields and `features` (numbers).
    static func names(features: some Sequence<String>) -> [String: ValueType] {
        var names = requestFields
        for f in features where names[f] == nil { names[f] = .number }
        return names
    }

    /// `x`'s values for the slots `rules` reads.
    static func bindings(_ x: DecisionInputs, for rules: RuleSet) -> Bindings {
        var b = Bindings(slots: rules.slotNames.count)
        guard !rules.slotNames.isEmpty else { return b }
        let r = x.request
        let ms = r.timestampMs
        for (slot, name) in rules.slotNames.enumerated() {
            var present = true
            switch name {
            case "amount": b.numbers[slot] = r.amount
            case "currency": b.strings[slot] = r.currency
            case "kind": b.strings[slot] = StoredNames.kind(r.kind)
            case "channel": b.strings[slot] = r.channel
            case "ip_country": b.strings[slot] = r.ipCountry
            case "lines": b.numbers[slot] = Double(r.lines.count)
            case "quantity": b.numbers[slot] = Double(r.lines.reduce(0) { $0 + Int($1.quantity) })
            case "hour": b.numbers[slot] = Double(ClockFields.hour(ms: ms))
            case "weekday": b.numbers[slot] = Double(ClockFields.weekday(ms: ms))
            case "user_id": b.numbers[slot] = Double(r.userId)
            case "has_device": b.numbers[slot] = r.deviceId.isEmpty ? 0 : 1
            case "has_ip": b.numbers[slot] = r.ip.isEmpty ? 0 : 1
            case "has_instrument": b.numbers[slot] = r.paymentInstrument.isEmpty ? 0 : 1
            case "has_email": b.numbers[slot] = r.email.isEmpty ? 0 : 1
            case "known_user":
                present = x.features != nil
                b.numbers[slot] = x.knownUser ? 1 : 0
            case "model_probability":
                present = x.probability != nil
                b.numbers[slot] = Double(x.probability ?? 0)
            case "model_score":
                present = x.probability != nil
                b.numbers[slot] = ((Double(x.probability ?? 0)) * 1000).rounded()
            case "has_model": b.numbers[slot] = x.probability == nil ? 0 : 1
            default:
                if let values = x.features, let i = x.featureNames.firstIndex(of: name) {
                    b.numbers[slot] = Double(values[i])
                } else {
                    present = false
                }
            }
            b.present[slot] = present
        }
        return b
    }
}
