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
    /// Builds the decision view from the decision log, from where the view stands (the log's
    /// start for a new or deleted view file), a batch of records per commit.
    func buildView() async throws {
        var next = try view.viewOffset() ?? 0
        viewProgress.applied(through: next)
        var backoff = ReconnectBackoff()
        while true {
            try Task.checkCancellation()
            do {
                let (records, after) = try await decisionLog.read(from: next, max: 2000, wait: .milliseconds(500)) {
                    metrics.badRequest("undecodable_decision_record")
                }
                guard after > next else { continue }
                try await view.apply(records, next: after)
                next = after
                viewProgress.applied(through: after)
                backoff.reset()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                context.logger.error("the decision view could not apply the log at \(next): \(error)")
                try await Task.sleep(for: backoff.nextDelay())
            }
        }
    }

    /// Waits (within the call's deadline, at most `limit`) until the view holds every decision
    /// answered so far; UNAVAILABLE when it does not catch up in time.
    func awaitView(limit: Duration = .seconds(5)) async throws {
        guard await viewProgress.caughtUp(timeout: RPCContext.budget(limit)) else {
            throw RPCError(
                .unavailable,
                "the decision view has applied the decision log up to \(viewProgress.applied) of \(viewProgress.answered); try again")
        }
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
