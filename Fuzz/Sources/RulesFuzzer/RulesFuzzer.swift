import Feature
import Foundation
import FuzzDriver
import Rules
import Wire

@testable import RiskControl

/// One fuzz input: a rule set's text, as an analyst might type it. It is parsed and checked
/// against every name a Score can bind (a chain of `not` or `-` as deep as parentheses, at
/// most 48); a set that compiles must keep the documented bounds (at most 1,000 rules and
/// 256 terms a rule) and is then decided on
/// requests drawn from the input (any values, NaN and infinities included): every decision
/// has a score in 0...1000 and takes well under a second. Errors are expected; crashes,
/// hangs and sanitizer reports are not. Crashes found become regression tests in
/// Tests/RiskTests/RuleFuzzRegressionTests.swift.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard case .success(let set) = RuleSet.compile(String(decoding: bytes, as: UTF8.self), names: names) else { return 0 }
    precondition(set.rules.count <= RuleParser.maxRules, "\(set.rules.count) rules")
    for rule in set.rules {
        precondition(terms(rule.condition) <= RuleParser.maxNodes, "rule \(rule.id) has \(terms(rule.condition)) terms")
    }
    var state = bytes.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    let specials: [Double] = [0, -0.0, 1, -1, .nan, .infinity, -.infinity, .greatestFiniteMagnitude, 1e-300, 1000, 86_400]
    func value() -> Double {
        next() % 3 == 0 ? specials[Int(next() % UInt64(specials.count))] : Double(Int64(bitPattern: next() >> 40)) / 7
    }
    for _ in 0..<8 {
        var r = ScoreRequest()
        r.amount = value()
        r.currency = ["USD", "EUR", "", "GBP"][Int(next() % 4)]
        r.channel = ["ads", "seo", "", "direct"][Int(next() % 4)]
        r.timestampMs = Int64(bitPattern: next()) % 4_000_000_000_000
        r.kind = RequestKind(rawValue: Int32(next() % 6))
        r.deviceId = next() % 2 == 0 ? "d" : ""
        var x = DecisionInputs(request: r)
        x.featureNames = FeatureCatalog.names
        x.features = next() % 5 == 0 ? nil : FeatureCatalog.names.map { _ in Float(value()) }
        x.probability = next() % 3 == 0 ? nil : Float(value())
        x.knownUser = next() % 2 == 0
        let start = ContinuousClock.now
        let verdict = Decide.decide(x, rules: set, shadow: next() % 4 == 0 ? set : nil, policy: policy)
        precondition((0...1000).contains(verdict.score), "score \(verdict.score)")
        precondition(start.duration(to: .now) < .seconds(1), "a decision took \(start.duration(to: .now))")
    }
    return 0
}

/// Every name a rule may read: the request's fields and the feature service's catalogue.
let names = Decide.names(features: FeatureCatalog.names)
let policy = DecisionPolicy(review: 400, decline: 800, failOpen: true)

/// The terms of a condition: each value, name, operator and call.
func terms(_ e: Expr) -> Int {
    switch e {
    case .number, .string, .bool, .variable: 1
    case .not(let a), .negate(let a), .numberIn(let a, _, _), .stringIn(let a, _, _): 1 + terms(a)
    case .and(let a, let b), .or(let a, let b), .compare(_, let a, let b), .arith(_, let a, let b): 1 + terms(a) + terms(b)
    case .call(_, let args): 1 + args.map(terms).reduce(0, +)
    }
}

@_cdecl("RulesFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
