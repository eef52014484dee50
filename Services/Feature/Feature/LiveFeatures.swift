import Classifiers
import Foundation
import Rules
import ServiceKit
import Store
import Synchronization
public import Wire

/// The feature state behind a readers-writer lock, with the queries the RPC methods
/// answer. Folding takes the write side; queries and snapshots take the read side, so a
/// snapshot of a large state pauses folding but never the calls. Every read is at the
/// state's event-time clock (`FeatureState.watermarkMs`).
public final class LiveFeatures: @unchecked Sendable {
    let state: FeatureState
    let lock = ReadWriteLock()
    /// One snapshot written at a time: every writer streams to the same temporary file, and the
    /// periodic snapshot, a takeover, a give-back and an erasure may all ask for one at once.
    private let snapshotWriting = NSLock()
    /// Audience expressions compiled, by their text.
    let compiledAudiences = Mutex<[String: Condition]>([:])

    init(_ state: FeatureState) {
        self.state = state
    }

    /// An empty state consuming `partitions` partitions (benchmarks and tools fold into it
    /// directly; the service opens its snapshot instead).
    public convenience init(partitions: Int) {
        self.init(FeatureState(partitions: partitions))
    }

    /// Opens the snapshot at `path`, or starts empty with `partitions` offsets.
    static func open(snapshotPath: String) throws -> (LiveFeatures, restored: Bool) {
        if let bytes = try AtomicFile.read(snapshotPath) {
            return (try restore(bytes), true)
        }
        return (LiveFeatures(FeatureState(partitions: 0)), false)
    }

    public struct Summary: Sendable {
        public var users: Int
        public var items: Int
        public var watermarkMs: Int64
        public var offsets: [UInt64]
        public var version: UInt64
    }

    public var summary: Summary {
        lock.read(state) { s in
            Summary(users: s.users.count, items: s.items.count, watermarkMs: s.watermarkMs, offsets: s.offsets, version: s.version)
        }
    }

    /// Sets the partition count on first start; false when the snapshot has another one.
    func adopt(partitions: Int) -> Bool {
        lock.write(state) { s in
            if s.offsets.count == partitions { return true }
            guard s.offsets.isEmpty && s.users.isEmpty && s.items.isEmpty else { return false }
            s.offsets = [UInt64](repeating: 0, count: partitions)
            return true
        }
    }

    func offset(_ partition: Int) -> UInt64 {
        lock.read(state) { $0.offsets[partition] }
    }

    /// Folds a batch read from `partition` and moves its offset to `next`. Returns what was
    /// noticed, per observation. Events below the partition's offset are already folded and
    /// are passed over (a batch read before the state was replaced by a rebuilt one).
    ///
    /// The write lock is taken per chunk of `foldChunk` events, so calls (which may run on
    /// an event loop) never wait behind a whole read batch. Each event moves its partition's
    /// offset as it is folded, so a snapshot between chunks is consistent.
    @discardableResult
    public func fold(_ events: [StoredEvent], partition: Int, next: UInt64) -> [FeatureState.Observation: Int] {
        var seen: [FeatureState.Observation: Int] = [:]
        var start = 0
        repeat {
            let end = min(start + Self.foldChunk, events.count)
            lock.write(state) { s in
                let from = events[start..<end].firstIndex { $0.offset >= s.offsets[partition] } ?? end
                s.fold(events[from..<end], partition: partition, noting: &seen)
                if end == events.count { s.offsets[partition] = max(s.offsets[partition], next) }
            }
            start = end
        } while start < events.count
        return seen
    }

    // MARK: Partitions

    /// The partitions whose users have profiles here (nil: every one).
    var owned: Set<Int>? { lock.read(state) { $0.owned } }

    /// Keeps profiles only for the users of `partitions` from now on (`FeatureState.own`).
    func own(_ partitions: Set<Int>?) {
        lock.write(state) { $0.own(partitions) }
    }

    /// A fresh state beside this one, owning `partitions`, to rebuild from the log.
    func rebuilding(owning partitions: Set<Int>?) -> LiveFeatures {
        let partitionCount = summary.offsets.count
        let fresh = FeatureState(partitions: partitionCount)
        fresh.owned = partitions
        return LiveFeatures(fresh)
    }

    /// Replaces this state with `rebuilt` when it has read at least as far in every
    /// partition; false (nothing changed) when it has not.
    func replace(with rebuilt: LiveFeatures, evenIfBehind: Bool = false) -> Bool {
        rebuilt.lock.read(rebuilt.state) { other in
            lock.write(state) { s in
                guard evenIfBehind || zip(other.offsets, s.offsets).allSatisfy({ $0 >= $1 }) else { return false }
                s.take(other)
                return true
            }
        }
    }

    static let foldChunk = 256

    /// A store restored from a snapshot file's bytes (`writeSnapshot(to:)`; as the service
    /// does on start).
    public static func restore(_ bytes: [UInt8]) throws -> LiveFeatures {
        LiveFeatures(try FeatureState.restore(bytes))
    }

    /// What writing a snapshot took.
    public struct SnapshotWrite: Sendable {
        public var bytes: Int
        public var version: UInt64
        /// Encoding and handing the bytes to the file system: folding waits this long.
        public var encoding: Duration
        /// The fsync and the rename, after folding resumed.
        public var writing: Duration
    }

    /// Writes the snapshot to `path` when the state changed since `version` (what the service
    /// does every snapshot interval): streamed into a temporary file a few megabytes at a time
    /// under the read lock (folding waits, calls do not), then made durable and renamed into
    /// place with folding running again. Nil when nothing changed.
    public func writeSnapshot(to path: String, ifChangedSince version: UInt64? = nil) throws -> SnapshotWrite? {
        snapshotWriting.lock()
        defer { snapshotWriting.unlock() }
        let start = ContinuousClock.now
        let streamed: (file: AtomicFileWriter, bytes: Int, version: UInt64)? = try lock.read(state) { s in
            guard s.version != version else { return nil }
            let file = try AtomicFileWriter(path: path)
            return (file, try s.writeSnapshot(to: file), s.version)
        }
        guard let streamed else { return nil }
        let encoded = ContinuousClock.now
        try streamed.file.commit()
        return SnapshotWrite(
            bytes: streamed.bytes, version: streamed.version, encoding: start.duration(to: encoded), writing: encoded.duration(to: .now))
    }

    // MARK: Users

    public func profile(_ userID: Int64, withMetItems: Bool = false, recommendOnly: Bool = false) -> UserProfile? {
        let segments = recommendOnly ? nil : segmentation
        let scorers = recommendOnly ? [] : userScorers
        return lock.read(state) { s in
            guard let user = s.users[userID] else { return nil }
            // Recommend's fields alone need no RFM cut points.
            let view = ProfileView(user, state: s, nowMs: s.watermarkMs, cuts: recommendOnly ? RfmCuts() : s.rfmCuts(refresh: true))
            var p = recommendOnly ? view.recommendProfile : view.profile
            if withMetItems { p.metItemsTable = user.distinctItems.table }
            guard segments != nil || !scorers.isEmpty else { return p }
            // Segments and scores read the same feature values: computed once.
            let all = FeatureCatalog.values(view)
            if let segments {
                let (segment, memberships) = segments.assign(all)
                p.segmentId = Int32(segment)
                p.hasSegment = true
                p.segmentMemberships = memberships
            }
            p.scores = scorers.map { $0.score(all) }
            return p
        }
    }

    // MARK: Segments

    /// The published segmentation and where its features are among `FeatureCatalog.names`.
    struct Segments: Sendable {
        let model: Segmentation
        let positions: [Int]

        /// The segment of a user whose features (`FeatureCatalog.values`) are `all`.
        func assign(_ all: [Float]) -> (segment: Int, memberships: [Float]) {
            model.assign(positions.map { all[$0] })
        }
    }

    private let segmentsLock = NSLock()
    nonisolated(unsafe) private var current: Segments? = nil

    /// The segments profiles carry now (nil until one is published).
    var segmentation: Segments? { segmentsLock.withLock { current } }

    /// Swaps in a published segmentation; one naming a feature this service does not have is
    /// refused (the profiles keep the one they had).
    func setSegmentation(_ model: Segmentation) throws {
        guard case .success(let positions) = FeatureCatalog.resolve(model.features), !model.features.isEmpty else {
            throw StoreError(.corrupt, "segments name features this service does not have: \(model.features)")
        }
        segmentsLock.withLock { current = Segments(model: model, positions: positions) }
    }

    // MARK: User scores

    /// A published user-level classifier (`propensity`, `churn`) and where its features are
    /// among `FeatureCatalog.names`.
    struct UserScorer: Sendable {
        let name: String
        let model: Classifier
        let positions: [Int]
        let horizonDays: UInt32

        func probability(_ all: [Float]) -> Float { model.probability(positions.map { all[$0] }) }

        func score(_ all: [Float]) -> UserScore {
            var s = UserScore()
            s.name = name
            s.probability = probability(all)
            s.horizonDays = horizonDays
            return s
        }
    }

    nonisolated(unsafe) private var scorersByName: [String: UserScorer] = [:]

    /// The user classifiers profiles carry now, by name.
    var userScorers: [UserScorer] { segmentsLock.withLock { scorersByName.values.sorted { $0.name < $1.name } } }

    /// Swaps in a published user classifier under `name`; one naming a feature this service
    /// does not have is refused (the profiles keep the one they had).
    func setScorer(name: String, _ model: Classifier, horizonDays: UInt32) throws {
        guard case .success(let positions) = FeatureCatalog.resolve(model.features), !model.features.isEmpty else {
            throw StoreError(.corrupt, "\(name) names features this service does not have: \(model.features)")
        }
        segmentsLock.withLock { scorersByName[name] = UserScorer(name: name, model: model, positions: positions, horizonDays: horizonDays) }
    }

    /// Rows of the features at `positions` (of `FeatureCatalog.names`).
    func features(_ userIDs: [Int64], positions: [Int]) -> [FeatureRow] {
        let segments = segmentation
        return lock.read(state) { s in
            let cuts = s.rfmCuts(refresh: true)
            return userIDs.map { id in
                var row = FeatureRow()
                row.userId = id
                guard let user = s.users[id] else {
                    row.values = [Float](repeating: 0, count: positions.count)
                    return row
                }
                row.found = true
                let view = ProfileView(user, state: s, nowMs: s.watermarkMs, cuts: cuts)
                var all = FeatureCatalog.values(view)
                if let segments { all[FeatureCatalog.segmentPosition] = Float(segments.assign(all).segment) }
                row.values = positions.map { all[$0] }
                return row
            }
        }
    }

    /// The features at `positions` for a request not yet in the log (`FeatureState.valuesAsIf`).
    func requestFeatures(_ event: Event, positions: [Int]) -> (values: [Float], known: Bool) {
        lock.read(state) { s in
            let (all, known) = s.valuesAsIf(event)
            return (positions.map { all[$0] }, known)
        }
    }

    /// Who `members` lists.
    enum Audience {
        case tag(String)
        case segment(Int32)
        /// Users whose probability under the named user classifier is at least the bound.
        case score(String, atLeast: Float)
    }

    /// The members of `audience`, by id, after `afterID`; nil when it names a score no
    /// published classifier gives.
    func members(_ audience: Audience, afterID: Int64, limit: Int) -> (ids: [Int64], more: Bool)? {
        let segments = segmentation
        var scorer: UserScorer? = nil
        if case .score(let name, _) = audience {
            guard let found = userScorers.first(where: { $0.name == name }) else { return nil }
            scorer = found
        }
        var out: [Int64] = []
        var more = false
        forEachView(afterID: afterID) { id, view in
            let member: Bool
            switch audience {
            case .score(_, let bound): member = scorer!.probability(FeatureCatalog.values(view)) >= bound
            case .segment(let segment):
                member = segments.map { $0.assign(FeatureCatalog.values(view)).segment == Int(segment) } ?? (view.user.segment == segment)
            case .tag(let tag): member = view.tags(view.rfm).contains(tag)
            }
            guard member else { return true }
            if out.count == limit {
                more = true
                return false
            }
            out.append(id)
            return true
        }
        return (out, more)
    }

    /// Every user held here as a profile view at the state's clock, in id order after
    /// `afterID`, under the read lock; `visit` returns false to stop (segment, tag and score
    /// members; audiences).
    func forEachView(afterID: Int64 = 0, _ visit: (Int64, ProfileView) -> Bool) {
        lock.read(state) { s in
            let cuts = s.rfmCuts(refresh: true)
            for id in s.users.values.map(\.id).filter({ $0 > afterID }).sorted() {
                if !visit(id, ProfileView(s.users[id]!, state: s, nowMs: s.watermarkMs, cuts: cuts)) { return }
            }
        }
    }

    func erase(_ userID: Int64, ends: [UInt64]) -> Bool {
        lock.write(state) { $0.erase(userID, ends: ends) }
    }

    /// The erasures so far (the training export replays the log without them).
    var erased: [Int64: [UInt64]] { lock.read(state) { $0.erased } }

    // MARK: Items

    func items(_ ids: [Int64]) -> (found: [ItemProfile], missing: [Int64]) {
        lock.read(state) { s in
            var found: [ItemProfile] = []
            var missing: [Int64] = []
            for id in ids {
                if let item = s.items[id] { found.append(item.profile(nowMs: s.watermarkMs)) } else { missing.append(id) }
            }
            return (found, missing)
        }
    }

    /// The catalogue (items listed by an upsert) by id: the `limit` after `after`, and
    /// whether more follow.
    func catalogue(after: Int64, limit: Int) -> (items: [ItemProfile], more: Bool) {
        lock.read(state) { s in
            let ids = s.items.values.filter { $0.inCatalog && $0.id > after }.map(\.id).sorted()
            return (ids.prefix(limit).map { s.items[$0]!.profile(nowMs: s.watermarkMs) }, ids.count > limit)
        }
    }

    /// The `limit` items of `category` (0: all) ranked by `by` over `window`.
    func topItems(category: Int64, window: Window?, by: ItemRanking, limit: Int) -> [ItemProfile] {
        lock.read(state) { s in
            let now = s.watermarkMs
            // The best `limit` so far, best first (score, then the lower id): most items fall
            // below the last kept and cost one comparison; nothing past `limit` is sorted.
            var best: [(score: Double, item: ItemState)] = []
            best.reserveCapacity(limit + 1)
            func before(_ a: (score: Double, item: ItemState), _ b: (score: Double, item: ItemState)) -> Bool {
                a.score != b.score ? a.score > b.score : a.item.id < b.item.id
            }
            for item in s.items.values where category == 0 || item.categoryId == category {
                let score = item.score(by, window: window, nowMs: now)
                guard score > 0, limit > 0 else { continue }
                let entry = (score: score, item: item)
                if best.count == limit {
                    guard before(entry, best[limit - 1]) else { continue }
                    best.removeLast()
                }
                var lo = 0, hi = best.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if before(best[mid], entry) { lo = mid + 1 } else { hi = mid }
                }
                best.insert(entry, at: lo)
            }
            return best.map { $0.item.profile(nowMs: now) }
        }
    }
}

/// What TopItems ranks by.
enum ItemRanking: String, CaseIterable, Sendable {
    case views, carts, purchases, conversion, trending
}

extension ItemState {
    func counts(_ counter: Counter, nowMs: Int64) -> WindowCounts {
        windowCounts(windows.counts(kind: counter.rawValue, nowMs: nowMs), lifetime: lifetime[Int(counter.rawValue)])
    }

    /// Purchases per view, lifetime (0 without views).
    var conversionRate: Double {
        lifetime[0] == 0 ? 0 : Double(lifetime[2]) / Double(lifetime[0])
    }

    /// Activity (views + carts + purchases) of the last 24 hours against the daily mean of
    /// the last 7 days, smoothed by one: above 1 means the item is picking up.
    func trendingScore(nowMs: Int64) -> Double {
        let kinds = Counter.allCases.count
        let day = windows.count(in: .hours24, kind: nil, kinds: kinds, nowMs: nowMs)
        let week = windows.count(in: .days7, kind: nil, kinds: kinds, nowMs: nowMs)
        return (Double(day) + 1) / (Double(week) / 7 + 1)
    }

    func score(_ by: ItemRanking, window: Window?, nowMs: Int64) -> Double {
        func count(_ c: Counter) -> Double {
            guard let window else { return Double(lifetime[Int(c.rawValue)]) }
            return Double(windows.count(in: window, kind: c.rawValue, nowMs: nowMs))
        }
        switch by {
        case .views: return count(.views)
        case .carts: return count(.carts)
        case .purchases: return count(.purchases)
        case .conversion: return conversionRate
        case .trending: return lifetime.indices.allSatisfy { lifetime[$0] == 0 } ? 0 : trendingScore(nowMs: nowMs)
        }
    }

    func profile(nowMs: Int64) -> ItemProfile {
        var p = ItemProfile()
        p.itemId = id
        p.categoryId = categoryId
        p.brand = brand
        p.price = price
        p.currency = currency
        p.stock = stock
        p.inCatalog = inCatalog
        p.title = title
        p.tags = tags
        p.views = counts(.views, nowMs: nowMs)
        p.carts = counts(.carts, nowMs: nowMs)
        p.purchases = counts(.purchases, nowMs: nowMs)
        p.conversionRate = conversionRate
        p.trendingScore = trendingScore(nowMs: nowMs)
        return p
    }
}
