import Foundation
import RPC
import ServiceKit
import Wire

/// What the feature service says about items, as recommend reads it: the most active items
/// of a category over a window (TopItems) and catalogue entries (GetItems: category, price,
/// stock, tags). A call reads them from memory. One kept longer than `ttl` is still served,
/// and read again in the background (`refresh`, which `run` repeats every tenth of `ttl`): a
/// list in one TopItems, the entries calls found old in GetItems of a thousand at a time. So
/// a stock change or a new item reaches answers within about `ttl`, no call waits for those
/// reads, and what is read again is what calls use, at most once per `ttl`. Only what was
/// never asked for, or what the background has not managed to read for five times `ttl`
/// (the feature service down), is read on the call, with the call's own timeout; on failure
/// the caller answers without it.
final class LiveItems: @unchecked Sendable {
    let feature: FeatureReplicas
    let ttl: Duration
    /// Catalogue entries kept at most; past it the cache starts again.
    let capacity: Int
    private let lock = NSLock()

    private struct List {
        var category: Int64
        var window: String
        var limit: Int
        var at: ContinuousClock.Instant
        var items: [ItemProfile]
        var by: String
    }

    private struct Entry {
        var at: ContinuousClock.Instant
        /// nil: the feature service does not know the item.
        var item: ItemProfile?
    }

    private var lists: [String: List] = [:]
    private var catalogue: [Int64: Entry] = [:]
    /// What calls found older than `ttl`, to be read again.
    private var staleLists: Set<String> = []
    private var staleItems: Set<Int64> = []

    init(feature: FeatureReplicas, ttl: Duration = .seconds(2), capacity: Int = 200_000) {
        self.feature = feature
        self.ttl = ttl
        self.capacity = capacity
    }

    /// How old a kept answer may be and still be served: the background reads it again once a
    /// call finds it older than `ttl`, so only a feature service that does not answer (or one
    /// not asked for a while) lets it grow older; then the call reads it itself.
    private var servable: Duration { ttl * 5 }

    /// The `limit` most viewed items of `category` (0: the shop) over `window`; by purchases
    /// when nothing was viewed (a shop that sends orders only). `window` is one TopItems
    /// knows (1h, 24h, 7d, 30d, lifetime); a bad one throws INVALID_ARGUMENT.
    func top(category: Int64, window: String, limit: Int, timeout: Duration) async throws -> (items: [ItemProfile], by: String) {
        let key = "\(category)/\(window)/\(limit)"
        let now = ContinuousClock.now
        let kept = lock.withLock { () -> (items: [ItemProfile], by: String)? in
            guard let at = lists[key]?.at, now - at < servable else { return nil }
            if now - at >= ttl { staleLists.insert(key) }
            return (lists[key]!.items, lists[key]!.by)
        }
        if let kept { return kept }
        let found = try await readTop(category: category, window: window, limit: limit, timeout: timeout)
        lock.withLock {
            if lists.count > 10_000 { lists.removeAll() }
            lists[key] = List(category: category, window: window, limit: limit, at: now, items: found.items, by: found.by)
        }
        return found
    }

    private func readTop(category: Int64, window: String, limit: Int, timeout: Duration) async throws -> (items: [ItemProfile], by: String)
    {
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
        return answer
    }

    /// The catalogue entries of `ids` that the feature service knows.
    func items(_ ids: [Int64], timeout: Duration) async throws -> [Int64: ItemProfile] {
        let now = ContinuousClock.now
        var found: [Int64: ItemProfile] = [:]
        var missing: [Int64] = []
        lock.withLock {
            for id in ids {
                if let at = catalogue[id]?.at, now - at < servable {
                    if let item = catalogue[id]!.item { found[id] = item }
                    if now - at >= ttl { staleItems.insert(id) }
                } else {
                    missing.append(id)
                }
            }
        }
        guard !missing.isEmpty else { return found }
        for (id, item) in try await readItems(missing, at: now, timeout: timeout) { found[id] = item }
        return found
    }

    /// Reads `ids` from the feature service and keeps what it says of each (read at `at`).
    private func readItems(_ ids: [Int64], at: ContinuousClock.Instant, timeout: Duration) async throws -> [Int64: ItemProfile] {
        var request = GetItemsRequest()
        request.itemIds = ids
        let answer = try await feature.call(FeatureAPI.getItems, request, timeout: timeout)
        var found: [Int64: ItemProfile] = [:]
        lock.withLock {
            if catalogue.count + ids.count > capacity { catalogue.removeAll(keepingCapacity: true) }
            for item in answer.items {
                found[item.itemId] = item
                catalogue[item.itemId] = Entry(at: at, item: item)
            }
            for id in answer.missing { catalogue[id] = Entry(at: at, item: nil) }
        }
        return found
    }

    /// Reads again the lists and entries calls found older than `ttl`; a read that fails
    /// leaves what was kept (served until it is five times `ttl` old, then read on the call).
    func refresh() async {
        let now = ContinuousClock.now
        let (wanted, ids) = lock.withLock { () -> ([String: List], [Int64]) in
            defer { (staleLists, staleItems) = ([], []) }
            return (lists.filter { staleLists.contains($0.key) }, staleItems.sorted())
        }
        for (key, list) in wanted {
            guard let found = try? await readTop(category: list.category, window: list.window, limit: list.limit, timeout: ttl) else {
                continue
            }
            lock.withLock {
                if var kept = lists[key] {
                    (kept.items, kept.by, kept.at) = (found.items, found.by, now)
                    lists[key] = kept
                }
            }
        }
        var start = 0
        while start < ids.count {
            // A thousand at a time: the feature service answers GetItems on its event loop, and
            // a call waiting behind a read of ten thousand would wait milliseconds.
            let chunk = Array(ids[start..<min(start + 1_000, ids.count)])
            start += chunk.count
            _ = try? await readItems(chunk, at: now, timeout: ttl)
        }
    }

    /// `refresh` every tenth of `ttl`, until cancelled.
    func run() async throws {
        while true {
            try await Task.sleep(for: ttl / 10)
            await refresh()
        }
    }
}
