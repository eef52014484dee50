import Foundation
import Math
import Recommenders
import TestSupport
import Wire

@testable import Model

/// 2024-03-04 00:00:00 UTC.
let baseMs: Int64 = 1_709_510_400_000

func purchase(_ user: Int64, _ items: [Int64], at ms: Int64, order: String) -> Event {
    var e = Event()
    e.eventId = "p-\(order)"
    e.kind = .purchase
    e.userId = user
    e.timestampMs = ms
    var o = Order()
    o.orderId = order
    o.lines = items.map { i in
        var l = OrderLine()
        l.itemId = i
        l.quantity = 1
        l.unitPrice = 2
        return l
    }
    o.total = Double(items.count) * 2
    e.order = o
    return e
}

/// A shop with `groups` tastes: each user belongs to a group and views items of that group's
/// block (and a few random ones), in time order; items are 1-based ids. Users of a group
/// share items, so the held-out ones are predictable from the others.
func clusteredShop(users: Int = 60, itemsPerGroup: Int = 12, groups: Int = 3, perUser: Int = 8, noise: Float = 0.1, seed: UInt64 = 1)
    -> [Event]
{
    var rng = SplitMix(seed: seed)
    var events: [Event] = []
    for u in 1...users {
        let g = u % groups
        var seen = Set<Int64>()
        for n in 0..<perUser {
            let item: Int64
            if rng.unit() < noise {
                item = Int64(1 + rng.below(itemsPerGroup * groups))
            } else {
                item = Int64(1 + g * itemsPerGroup + rng.below(itemsPerGroup))
            }
            guard seen.insert(item).inserted else { continue }
            events.append(view(Int64(u), item, at: baseMs + Int64(n) * 60_000 + Int64(u), category: Int64(100 + g)))
        }
    }
    return events.sorted { $0.timestampMs < $1.timestampMs }
}

func interactions(_ events: [Event], weights: InteractionWeights = .defaults) -> Interactions {
    let store = InteractionTable()
    store.fold(events)
    return store.interactions(weights: weights).data
}

func parameters(_ kind: RecommenderModel.Kind, _ given: [String: String] = [:]) throws -> TrainingParameters {
    try TrainingParameters(kind: kind, given.map { ($0.key, $0.value) })
}
