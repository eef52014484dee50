import Foundation
import RPC
import Rules
import Wire

/// Rules: compile against the names a rule may read, publish (through the decision log,
/// versioned in its order, then in force), and follow a rule file.
extension RiskControlService {
    /// Compiles `source` against every name a rule may read now: request fields and the
    /// feature service's features. While the feature service does not answer, the served
    /// model's features stand in, and a set naming anything else is refused UNAVAILABLE (it
    /// cannot be checked now) rather than called invalid.
    func compileRules(_ source: String) async throws -> Result<RuleSet, RuleSet.Invalid> {
        if let features = await knownFeatures.names(feature) {
            return RuleSet.compile(source, names: Decide.names(features: features))
        }
        let result = RuleSet.compile(source, names: Decide.names(features: served.current?.classifier.features ?? []))
        if case .failure(let invalid) = result, invalid.errors.contains(where: \.unknownName) {
            throw RPCError(
                .unavailable,
                "the feature service did not answer with its feature names, so the rules' names cannot be checked now; try again")
        }
        return result
    }

    func publish(_ source: String, shadow: Bool) async throws -> RuleSet {
        switch try await compileRules(source) {
        case .failure(let invalid):
            metrics.badRequest("invalid_rules")
            throw RPCError(.invalidArgument, "rules not valid:\n\(invalid.description)")
        case .success(var set):
            set.shadow = shadow
            set.publishedMs = context.clock.nowMs
            // Published through the decision log: every replica on it puts the set in force
            // with the same version, this one before the call is answered.
            var record = DecisionRecord()
            record.rules = PublishedRules()
            record.rules?.source = set.source
            record.rules?.shadow = shadow
            record.rules?.publishedMs = set.publishedMs
            let offset = try await appendSettings([record], id: "rules-\(set.publishedMs)-\(UInt64.random(in: 0...UInt64.max))")
            guard let version = rules.version(at: offset) else {
                throw RPCError(
                    .unavailable, "rules appended at \(offset) of the decision log but not yet in force; GetRules shows when they are")
            }
            set.version = version
            context.logger.info("published \(shadow ? "shadow " : "")rules v\(set.version) (\(set.rules.count) rules)")
            RPCContext.current?.audit("published \(shadow ? "shadow " : "")rules v\(set.version) (\(set.rules.count) rules)")
            return set
        }
    }

    static func wire(_ e: Rules.RuleError) -> Wire.RuleError {
        var out = Wire.RuleError()
        out.line = UInt32(e.line)
        out.column = UInt32(e.column)
        out.message = e.message
        return out
    }

    static func info(_ set: RuleSet) -> RuleSetInfo {
        var i = RuleSetInfo()
        i.version = set.version
        i.source = set.source
        i.shadow = set.shadow
        i.publishedMs = set.publishedMs
        i.rules = set.described
        return i
    }

    /// Publishes the rule file at start and whenever its text changes (checked every 2 s).
    func followRulesFile(_ path: String) async throws {
        var last: String?
        while true {
            try Task.checkCancellation()
            if let text = try? String(contentsOfFile: path, encoding: .utf8), text != last {
                last = text
                if text != rules.current.active.source {
                    do {
                        _ = try await publish(text, shadow: false)
                    } catch {
                        context.logger.error("rule file \(path) not published: \(error)")
                    }
                }
            }
            try await Task.sleep(for: .seconds(2))
        }
    }
}
