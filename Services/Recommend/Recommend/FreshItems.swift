import Foundation
import Math
public import Recommenders
public import ServiceKit
public import Wire

/// Items upserted after the published content model was trained: each is vectorised with
/// that model's vocabulary on its upsert and given its nearest described items, so it is
/// recommendable and similar at once, not at the next training. The table belongs to one
/// content version: a new version starts it again (and the log is read again from where
/// that version's data ended, so nothing upserted since is missed, across restarts too).
public final class FreshItems: @unchecked Sendable {
    public struct Table: Sendable {
        /// The content version the entries were vectorised with (0: none yet).
        public var version: UInt32 = 0
        /// Each fresh item's category and nearest model items (dense index, cosine).
        public var items: [Int64: (category: Int64, neighbours: [(index: Int32, similarity: Float)])] = [:]
        /// For each model item, the fresh items near it.
        public var near: [Int32: [(id: Int64, similarity: Float)]] = [:]
    }

    /// How many described items each fresh item keeps as neighbours.
    public static let neighbours = 20

    private let lock = NSLock()
    private var table = Table()

    public init() {}

    public var current: Table { lock.withLock { table } }

    /// Empties the table for `version` (nothing when it is already that version's).
    public func reset(to version: UInt32) {
        lock.withLock { if table.version != version { table = Table(version: version) } }
    }

    /// Vectorises `upsert` against `content` (of `version`) when that model does not know
    /// the item; a later upsert of the same item replaces its entry. Returns whether it was kept.
    @discardableResult
    public func add(_ upsert: ItemUpsert, content model: RecommenderModel, version: UInt32) -> Bool {
        guard upsert.itemId > 0, model.itemIndex[upsert.itemId] == nil, let vectors = model.content else { return false }
        let document = ItemDocument(
            title: upsert.title, tags: upsert.tags, category: upsert.categoryId, brand: upsert.brand, price: upsert.price)
        let found = vectors.nearest(vectors.vector(document), k: Self.neighbours).filter { $0.score > 0 }
        return lock.withLock {
            guard table.version == version else { return false }
            remove(upsert.itemId)
            guard !found.isEmpty else { return false }
            table.items[upsert.itemId] = (upsert.categoryId, found.map { ($0.index, $0.score) })
            for e in found { table.near[e.index, default: []].append((upsert.itemId, e.score)) }
            return true
        }
    }

    private func remove(_ id: Int64) {
        guard let old = table.items.removeValue(forKey: id) else { return }
        for (index, _) in old.neighbours { table.near[index]?.removeAll { $0.id == id } }
    }

    /// Follows the log's item upserts for the published content model (`content()`): each
    /// partition from where the model's data ended, again from there whenever a new version
    /// is swapped in. Runs until cancelled.
    public func follow(_ consumer: LogConsumer, content: @escaping @Sendable () -> PublishedModels.Loaded?) async throws {
        let starts = try await consumer.endOffsets()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (p, end) in starts.enumerated() {
                group.addTask {
                    var next = end, followed: UInt32 = 0
                    try await consumer.consume(partition: p, kinds: [.itemUpsert], offset: { next }, failed: { _ in }) { response, _ in
                        guard let c = content() else {
                            next = response.nextOffset
                            return
                        }
                        if c.info.version != followed {
                            // A new content version: what it was trained on ends at its offsets.
                            self.reset(to: c.info.version)
                            followed = c.info.version
                            next = p < c.info.logOffsets.count ? c.info.logOffsets[p] : 0
                            return
                        }
                        for stored in response.events {
                            if let u = stored.event?.item { self.add(u, content: c.model, version: followed) }
                        }
                        next = response.nextOffset
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
