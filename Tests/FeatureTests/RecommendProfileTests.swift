import Testing
import Wire

@testable import Feature

@Suite("Recommend's profile")
struct RecommendProfileTests {
    @Test("recommend_only carries exactly the fields recommend reads, equal to the full profile's, and nothing else")
    func sameFieldsAsTheFullProfile() throws {
        let live = LiveFeatures(partitions: 1)
        var stored: [StoredEvent] = []
        for (i, e) in TaobaoRow.events(try TaobaoRow.lines(TaobaoRow.sample43)).enumerated() {
            var s = StoredEvent()
            s.offset = UInt64(i)
            s.event = e
            stored.append(s)
        }
        live.fold(stored, partition: 0, next: UInt64(stored.count))
        let users = Set(stored.compactMap { $0.event?.userId })
        #expect(users.count == 43)
        for u in users {
            let full = try #require(live.profile(u, withMetItems: true))
            let lean = try #require(live.profile(u, withMetItems: true, recommendOnly: true))
            var expected = UserProfile()
            expected.userId = u
            expected.categories = full.categories
            expected.priceBands = full.priceBands
            expected.recentViews = full.recentViews
            expected.recentCarts = full.recentCarts
            expected.recentPurchases = full.recentPurchases
            expected.recentItems = full.recentItems
            expected.recentPurchaseMs = full.recentPurchaseMs
            expected.metItemsTable = full.metItemsTable
            #expect(lean == expected, "user \(u)")
            #expect(!lean.recentItems.isEmpty && !lean.categories.isEmpty)
        }
    }
}
