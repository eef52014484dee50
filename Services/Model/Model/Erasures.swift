import Foundation
import Recommenders
import Wire

/// Erasure in the model service. An erasure event folded into the interaction store drops
/// the user's pairs and leaves them pending there (the snapshot keeps the list); `apply`
/// then has the registry rewrite every stored version holding the user's factor rows, and
/// only after that takes them off the pending list, so a crash in between repeats the
/// rewrite at the next start instead of skipping it. A job training meanwhile (on pairs
/// read before the erasure) drops the users erased since it started (`mark`, `forget`)
/// before its version is stored.
final class Erasures: @unchecked Sendable {
    private let lock = NSLock()
    /// Users applied since the service started, in order (in memory only: a running job
    /// needs the ones after its start, and no job survives a restart).
    private var applied: [Int64] = []

    /// Applies the store's pending erasures; returns the versions rewritten (empty when
    /// nothing was pending).
    func apply(table: InteractionTable, registry: Registry) throws -> (users: Int, versions: [ModelInfo]) {
        try lock.withLock {
            let pending = table.pendingErasures
            guard !pending.isEmpty else { return (0, []) }
            let rewritten = try registry.erase(Set(pending))
            applied += pending
            table.erasuresApplied(pending)
            return (pending.count, rewritten)
        }
    }

    /// Where a job starting now is in the applied list.
    var mark: Int { lock.withLock { applied.count } }

    /// The users applied since `mark`, plus those still pending.
    func since(_ mark: Int, table: InteractionTable) -> Set<Int64> {
        lock.withLock { Set(applied[min(mark, applied.count)...]) }.union(table.pendingErasures)
    }
}
