import DataStructures
import Wire

/// One item: its catalog fields (from item_upsert) and how users interact with it.
final class ItemState {
    /// Kinds counted per item, in `windows`.
    enum Counter: UInt8, CaseIterable {
        case views = 0, carts = 1, purchases = 2
    }

    let id: Int64
    var inCatalog = false
    var categoryId: Int64 = 0
    var brand = ""
    /// `FeatureState.brands` index of `brand` (0: none).
    var brandID: Int64 = 0
    var price: Double = 0
    var currency = ""
    var stock: Int64 = 0
    var title = ""
    var tags: [String] = []
    var windows = WindowedCounts()
    /// Counts per `Counter`, ever (inline: no allocation per item).
    var lifetime = InlineArray<3, UInt64>(repeating: 0)

    init(id: Int64) { self.id = id }

    func upsert(_ u: ItemUpsert, brandID: Int64) {
        inCatalog = true
        if u.categoryId != 0 { categoryId = u.categoryId }
        if !u.brand.isEmpty {
            brand = u.brand
            self.brandID = brandID
        }
        if u.price > 0 { price = u.price }
        if !u.currency.isEmpty { currency = u.currency }
        stock = u.stock
        if !u.title.isEmpty { title = u.title }
        if !u.tags.isEmpty { tags = u.tags }
    }

    func count(_ counter: Counter, atMs: Int64, nowMs: Int64, by n: UInt32 = 1) {
        lifetime[Int(counter.rawValue)] += UInt64(n)
        windows.add(kind: counter.rawValue, atMs: atMs, nowMs: nowMs, count: n)
    }
}

extension ItemState: Identified {
    /// The cache lines a fold touches (see `FeatureState.fold(_:partition:noting:)`).
    static let prefetchLayout: PrefetchLayout = {
        let p = ItemState(id: 1)
        p.windows = WindowedCounts(buckets: [.init(minute: 0, count: 1, kind: 0, tier: 0)])
        return PrefetchLayout(p, buffers: [bufferAddress(p.windows.buckets)])
    }()

    /// The fold's last prefetch stage for the item at `object`, once its lines and the first
    /// line of its arrays are in cache: the newest window buckets.
    @inline(__always)
    static func prefetchDeep(_ object: UnsafeRawPointer) {
        guard !prefetchLayout.buffers.isEmpty else { return }
        WindowedCounts.prefetchNewest(prefetchLayout.array(0, of: object))
    }
}
