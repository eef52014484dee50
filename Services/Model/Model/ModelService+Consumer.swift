import Foundation
import RPC
import ServiceKit
import Wire

/// The log consumer: folds every partition into the interaction store, applies erasures,
/// writes snapshots and runs the online learner's cycles.
extension ModelService {
    public func runBackground() async throws {
        let partitions = try await consumer.partitions()
        guard table.adopt(partitions: partitions) else {
            throw ServiceError(
                """
                the interaction snapshot has \(table.summary.offsets.count) partitions but ingest has \(partitions); \
                remove \(snapshotPath) to rebuild from the log
                """
            )
        }
        context.logger.info("consuming \(partitions) partitions from \(settings.ingestHost):\(settings.ingestPort)")
        // Erasures the last run folded but did not finish applying.
        applyErasures()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.follow(campaigns, orders: true) { _ in metrics.readError() } }
            for p in 0..<partitions {
                group.addTask {
                    try await consumer.consume(partition: p, offset: { table.offset(p) }, failed: { _ in metrics.readError() }) {
                        response, from in
                        let labels = table.fold(response.events, partition: p, next: response.nextOffset)
                        online?.noteLabels(labels)
                        applyErasures()
                        metrics.consumed(
                            events: response.events.count, partition: p, lag: response.endOffset &- max(response.nextOffset, from))
                    }
                }
            }
            if let online {
                group.addTask {
                    // A catch-up cycle once the consumer has had time to read what came while
                    // the service was down, then one whenever enough labels arrived.
                    try await Task.sleep(for: .seconds(5))
                    online.noteLabels(1)
                    var last = ContinuousClock.now - online.settings.every
                    while true {
                        if online.due(since: last) {
                            await learnOnline(online)
                            last = .now
                        }
                        try await Task.sleep(for: .seconds(1))
                    }
                }
            }
            group.addTask {
                var written = table.summary.version
                while true {
                    try await Task.sleep(for: settings.snapshotInterval)
                    if let v = try writeSnapshot(since: written) { written = v }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Drops the users of erasure events just folded from every stored model, then writes
    /// the snapshot, so that their pairs are gone from disk too. A failure is logged and
    /// retried with the next fold.
    func applyErasures() {
        guard !table.pendingErasures.isEmpty else { return }
        do {
            let (users, versions) = try erasures.apply(table: table, registry: registry)
            guard users > 0 else { return }
            try writeSnapshot()
            metrics.erased(users)
            let rewritten = versions.map { "\($0.name) v\($0.version) r\($0.revision)" }.joined(separator: ", ")
            context.logger.info(
                "erased \(users) user(s): \(versions.count) model version(s) rewritten\(versions.isEmpty ? "" : " (\(rewritten))")")
        } catch {
            metrics.erasureFailed()
            context.logger.error("applying an erasure failed (retried with the next fold): \(error)")
        }
    }

    @discardableResult
    func writeSnapshot(since version: UInt64? = nil) throws -> UInt64? {
        guard let v = try table.writeSnapshot(to: snapshotPath, ifChangedSince: version) else { return nil }
        let s = table.summary
        metrics.interactions(pairs: Int(s.pairs), bytes: Int(s.bytes))
        return v
    }
}
