import Foundation
import Logging
import RPC
import ServiceKit
import Synchronization
import Wire

/// How far the decision view has applied the decision log, and how far the log holds what
/// callers were answered: a query waits until the view has applied every record answered
/// before it began, so a decision is found as soon as its Score was answered.
final class DecisionViewProgress: Sendable {
    private let state = Mutex<(applied: UInt64, answered: UInt64)>((0, 0))

    var applied: UInt64 { state.withLock { $0.applied } }
    var answered: UInt64 { state.withLock { $0.answered } }

    func applied(through next: UInt64) { state.withLock { $0.applied = max($0.applied, next) } }

    /// A record at `offset` is durable and its caller answered.
    func answered(_ offset: UInt64) { answered(through: offset + 1) }

    /// Every record before `next` may have been answered (at start: the log's end).
    func answered(through next: UInt64) { state.withLock { $0.answered = max($0.answered, next) } }

    /// Waits until the view has applied everything answered so far; false when `timeout` passed first.
    func caughtUp(timeout: Duration) async -> Bool {
        let target = answered
        let deadline = ContinuousClock.now + timeout
        while applied < target {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return true
    }
}

extension RiskControlService {
    /// Follows the decision log: the decision view (`view`, from where it stands: the log's
    /// start for a new or deleted view file) and the rule sets and lists in force
    /// (`database`, from where they stand), a batch of records per commit.
    func buildView() async throws {
        var viewNext = try view.viewOffset() ?? 0
        var settingsNext = try database.viewOffset() ?? 0
        var settingsSaved = ContinuousClock.now
        viewProgress.applied(through: min(viewNext, settingsNext))
        var backoff = ReconnectBackoff()
        while true {
            try Task.checkCancellation()
            let from = min(viewNext, settingsNext)
            do {
                let (records, after) = try await decisionLog.read(from: from, max: 2000, wait: .milliseconds(500)) {
                    metrics.badRequest("undecodable_decision_record")
                }
                guard after > from else { continue }
                if after > viewNext {
                    try await view.apply(records.filter { $0.offset >= viewNext }, next: after)
                    viewNext = after
                }
                if after > settingsNext {
                    let changes = records.filter {
                        $0.offset >= settingsNext && ($0.record.rules != nil || $0.record.listEntry != nil || $0.record.erasure != nil)
                    }
                    // The stored offset moves with each change, and every 10 s besides (it is
                    // synced): a restart re-reads at most that much of the log for its settings.
                    if !changes.isEmpty || settingsSaved.duration(to: .now) > .seconds(10) {
                        let versions = try await database.applySettings(changes, next: after)
                        settingsSaved = .now
                        if !changes.isEmpty { loadSettings(versions: versions) }
                    }
                    settingsNext = after
                }
                viewProgress.applied(through: after)
                backoff.reset()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                context.logger.error("the decision view could not apply the log at \(from): \(error)")
                try await Task.sleep(for: backoff.nextDelay())
            }
        }
    }

    /// Puts the stored rule sets and lists in force.
    func loadSettings(versions: [UInt64: UInt32] = [:]) {
        do {
            let stored = try database.ruleSets()
            rules.load(stored)
            rules.versioned(versions)
            lists.replace(try database.listEntries())
            let (active, shadow) = rules.current
            metrics.rulesVersion(active.version, shadow: false)
            metrics.rulesVersion(shadow?.version ?? 0, shadow: true)
        } catch {
            context.logger.error("the rule sets and lists could not be read: \(error)")
        }
    }

    /// Appends `records` (rule sets, list changes) and waits until this replica has them in
    /// force; returns the offset of the last.
    func appendSettings(_ records: [DecisionRecord], id: String) async throws -> UInt64 {
        let offsets = try await decisionLog.append(records, id: id)
        let last = offsets.last ?? 0
        viewProgress.answered(last)
        try await awaitView(limit: .seconds(10))
        return last
    }

    /// Waits (within the call's deadline, at most `limit`) until the view holds every decision
    /// the log held when the call came (this replica's and any other's on the same log);
    /// UNAVAILABLE when it does not catch up in time.
    func awaitView(limit: Duration = .seconds(5)) async throws {
        viewProgress.answered(through: try await decisionLog.end())
        guard await viewProgress.caughtUp(timeout: RPCContext.budget(limit)) else {
            throw RPCError(
                .unavailable,
                "the decision view has applied the decision log up to \(viewProgress.applied) of \(viewProgress.answered); try again")
        }
    }

    /// Rule sets and lists stored before they travelled the decision log: appended to it once,
    /// so other replicas on the log get them; this store has them in force already.
    func moveLegacySettings() async throws {
        guard try database.viewOffset() == nil else { return }
        var records: [DecisionRecord] = []
        for set in try database.ruleSets() {
            var r = DecisionRecord()
            r.rules = PublishedRules()
            r.rules?.source = set.source
            r.rules?.shadow = set.shadow
            r.rules?.publishedMs = set.publishedMs
            records.append(r)
        }
        for entry in try database.listEntries() {
            var r = DecisionRecord()
            r.listEntry = entry
            records.append(r)
        }
        // A new store (no legacy) reads every rule set and list entry from the log's start.
        guard !records.isEmpty else { return }
        try await decisionLog.append(records, id: "legacy-settings")
        _ = try await database.applySettings([], next: try await decisionLog.end())
        context.logger.info("moved \(records.count) rule sets and list entries into the decision log")
    }

    /// Moves decisions stored before the decision log existed into it, oldest first, once.
    func moveLegacyDecisions() async throws {
        guard try await decisionLog.end() == 0 else { return }
        let legacy = try database.legacyDecisions()
        guard !legacy.isEmpty else { return }
        // One batch: a crash leaves all of them in the log or none.
        try await decisionLog.append(legacy, id: "legacy")
        viewProgress.answered(through: try await decisionLog.end())
        try await database.dropLegacyDecisions()
        context.logger.info("moved \(legacy.count) decisions of the decision store into the decision log")
    }
}
