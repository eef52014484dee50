import Foundation
import RPC
import ServiceKit
import Wire

/// What the feature service says about items, as recommend reads it: the most active items
/// of a category over a window (TopItems) and catalogue entries (GetItems: category, price,
/// stock, tags). Both are kept for `ttl`, so a burst of calls asks once: a stock change or a
/// new item reaches answers within that time. Every read has its own timeout; on failure the
/// caller answers without it.
final class LiveItems: @unchecked Sendable {
    let feature: FeatureReplicas
    let ttl: Duration
    /// Catalogue entries kept at most; past it the cache starts again.
    let capacity: Int
    private let lock = NSLock()
    private var lists: [String: (at: ContinuousClock.Instant, items: [ItemProfile], by: String)] = [:]
    /// nil: the feature service does not know the item.
    private var catalogue: [Int64: (at: ContinuousClock.Instant, item: ItemProfile?)] = [:]

    init(feature: FeatureReplicas, ttl: Duration = .seconds(2), capacity: Int = 200_000) {
        self.feature = feature
        self.ttl = ttl
        self.capacity = capacity
    }

    /// The `limit` most viewed items of `category` (0: the shop) over `window`; by purchases
    /// when nothing was viewed (a shop that sends orders only). `window` is one TopItems
    /// knows (1h, 24h, 7d, 30d, lifetime); a bad one throws INVALID_ARGUMENT.
    func top(category: Int64, window: String, limit: Int, timeout: Duration) async throws -> (items: [ItemProfile], by: String) {
        let key = "\(category)/\(window)/\(limit)"
        let now = ContinuousClock.now
        if let hit = lock.withLock({ lists[key] }), now - hit.at < ttl { return (hit.items, hit.by) }
        var answer: (items: [ItemProfile], by: String) = ([], "views")
        for by in ["views", "purchases"] {
            var request = TopItemsRequest()
            request.categoryId = category
            request.window = window
            request.by = by
            request.limit = UInt32(limit)
            answer = (try await feature.call(FeatureAPI.topItems, request, timeout: timeout).items, by)
            if !answer.items.isEmpty { break }
        }
        let found = answer
        lock.withLock {
            if lists.count > 10_000 { lists.removeAll() }
            lists[key] = (now, found.items, found.by)
        }
        return found
    }

    /// The catalogue entries of `ids` that the feature service knows.
    func items(_ ids: [Int64], timeout: Duration) async throws -> [Int64: ItemProfile] {
        let now = ContinuousClock.now
        var found: [Int64: ItemProfile] = [:]
        var missing: [Int64] = []
        lock.withLock {
            for id in ids {
                if let hit = catalogue[id], now - hit.at < ttl {
                    if let item = hit.item { found[id] = item }
                } else {
                    missing.append(id)
                }
            }
        }
        guard !missing.isEmpty else { return found }
        var request = GetItemsRequest()
        request.itemIds = missing
        let answer = try await feature.call(FeatureAPI.getItems, request, timeout: timeout)
        lock.withLock {
            if catalogue.count + missing.count > capacity { catalogue.removeAll(keepingCapacity: true) }
            for item in answer.items {
                found[item.itemId] = item
                catalogue[item.itemId] = (now, item)
            }
            for id in answer.missing { catalogue[id] = (now, nil) }
        }
        return found
    }
}
