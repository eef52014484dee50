import Feature
import Foundation
import Rules
import TestSupport
import Testing
import Wire

@testable import RiskControl

/// Replays the rules fuzzer's seeds and every rule set it ever crashed on
/// (Fuzz/regressions/rules): parsed and checked as a publish does, and decided as a Score does.
@Suite("Rules fuzz regressions")
struct RuleFuzzRegressionTests {
    static let names = Decide.names(features: FeatureCatalog.names)

    @Test("the seeds are rule sets that compile")
    func seedsCompile() throws {
        let seeds = fuzzInputs("seeds/rules")
        #expect(seeds.count >= 2)
        for url in seeds {
            let result = RuleSet.compile(try String(contentsOf: url, encoding: .utf8), names: Self.names)
            if case .failure(let e) = result { Issue.record("\(url.lastPathComponent): \(e)") }
        }
    }

    @Test("a chain of 'not' or '-' counts as nesting: past 48 it is refused, never recursed into")
    func longChainsAreRefused() throws {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("Fuzz/regressions/rules/long-chains.txt"), encoding: .utf8)
        guard case .failure(let invalid) = RuleSet.compile(text, names: Self.names) else {
            Issue.record("30,000 signs in a row compiled")
            return
        }
        #expect(invalid.errors.count == 2 && invalid.errors.allSatisfy { "\($0)".contains("nested deeper than 48") }, "\(invalid)")
        let chain = String(repeating: "-", count: 40)
        #expect(throws: Never.self) { try RuleSet.compile("ok: amount > \(chain)1 => review", names: Self.names).get() }
    }

    @Test("every recorded rule set is refused with errors or decides within 0...1000, NaN and infinities included")
    func recordedInputsDecide() throws {
        for url in fuzzInputs("regressions/rules") + fuzzInputs("seeds/rules") {
            let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
            guard case .success(let set) = RuleSet.compile(text, names: Self.names) else { continue }
            for value in [0, -1, 1e12, .nan, .infinity, -.infinity] as [Double] {
                var r = ScoreRequest()
                r.amount = value
                var x = DecisionInputs(request: r)
                x.featureNames = FeatureCatalog.names
                x.features = FeatureCatalog.names.map { _ in Float(value) }
                x.probability = Float(value)
                let verdict = Decide.decide(x, rules: set, shadow: set, policy: DecisionPolicy(review: 400, decline: 800, failOpen: true))
                #expect((0...1000).contains(verdict.score), "\(url.lastPathComponent) at \(value): \(verdict.score)")
            }
        }
    }
}
