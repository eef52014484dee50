import Foundation
import Math
import Recommenders
import TestSupport
import Testing
import Wire

@testable import Model

@Suite("Interaction store")
struct InteractionTableTests {
    @Test("each kind of interaction lands in its channel; refunds take a purchase back; the latest time is kept")
    func channels() {
        let store = InteractionTable()
        var review = Event()
        review.eventId = "r1"
        review.kind = .review
        review.userId = 7
        review.timestampMs = baseMs + 5000
        var r = Review()
        r.itemId = 11
        r.rating = 5
        review.review = r
        var refund = Event()
        refund.eventId = "f1"
        refund.kind = .refund
        refund.userId = 7
        refund.timestampMs = baseMs + 9000
        var f = Refund()
        f.orderId = "o2"
        f.itemId = 12
        refund.refund = f
        store.fold([
            view(7, 10, at: baseMs), view(7, 10, at: baseMs + 1000, kind: .click), view(7, 10, at: baseMs + 2000, kind: .addToCart),
            view(7, 11, at: baseMs + 3000, kind: .favorite), review, purchase(7, [10, 12], at: baseMs + 6000, order: "o1"),
            purchase(7, [12], at: baseMs + 7000, order: "o2"), refund, view(8, 10, at: baseMs + 100),
        ])
        let pairs = store.pairs(of: 7)
        #expect(pairs.map(\.item) == [10, 11, 12])
        #expect(pairs[0].counts == [2, 1, 0, 1])
        #expect(pairs[1].counts == [0, 0, 2, 0])
        #expect(pairs[2].counts == [0, 0, 0, 1])
        #expect(pairs[2].seconds == UInt32((baseMs + 9000) / 1000))
        #expect(store.summary.pairs == 4 && store.summary.users == 2)
        let (data, _) = store.interactions()
        let u = data.userIDs.firstIndex(of: 7)!
        let values = data.matrix.row(u).values
        let expected: [Float] = [2 + 3 + 5, 4, 5]
        #expect(Array(values) == expected)
    }

    @Test(
        """
        steps: consecutive events on one item are one step, a return is a new one; leave-last-out takes the last \
        step off its pair; a snapshot keeps them, an erasure empties them
        """
    )
    func steps() throws {
        let store = InteractionTable()
        store.fold([
            view(1, 10, at: baseMs), view(1, 10, at: baseMs + 1000), view(1, 10, at: baseMs + 2000, kind: .addToCart),
            view(1, 11, at: baseMs + 3000),
            view(1, 10, at: baseMs + 4000), purchase(1, [12], at: baseMs + 5000, order: "o1"),
            view(2, 20, at: baseMs), view(2, 21, at: baseMs + 1000), view(2, 20, at: baseMs + 2000),
        ])
        let (data, _) = store.interactions()
        let steps = try #require(data.steps)
        func ids(_ u: Int) -> [Int64] { steps[u].map { data.itemIDs[Int($0.item)] } }
        #expect(ids(0) == [10, 11, 10, 12] && steps[0].map(\.value) == [1 + 1 + 3, 1, 1, 5])
        #expect(ids(1) == [20, 21, 20])
        let (train, test) = data.leaveLastOut()
        #expect(test.map { $0.map { data.itemIDs[Int($0)] } } == [[12], [20]])
        // User 1's purchase of 12 leaves training; user 2 met 20 before: its pair stays, one view less.
        func pair(_ m: Interactions, _ u: Int, _ id: Int64) -> Float? {
            let j = (m.matrix.rowStart[u]..<m.matrix.rowStart[u + 1]).first { m.itemIDs[Int(m.matrix.indices[$0])] == id }
            return j.map { m.matrix.values[$0] }
        }
        #expect(pair(train, 0, 12) == nil && pair(train, 0, 10) == 6 && pair(train, 1, 20) == 1 && pair(train, 1, 21) == 1)
        #expect(train.sequence(0).map { data.itemIDs[Int($0)] } == [10, 11, 10])
        let path = temporaryDirectory() + ".snapshot"
        try store.writeSnapshot(to: path)
        let (restored, _) = try InteractionTable.open(snapshotPath: path)
        #expect(restored.interactions().data.steps.map { $0.map { $0.map(\.item) } } == steps.map { $0.map(\.item) })
        var erase = Event()
        erase.eventId = "x"
        erase.kind = .erasure
        erase.userId = 1
        erase.timestampMs = baseMs + 10_000
        store.fold([erase])
        #expect(store.interactions().data.steps?.count == 1)
    }

    @Test("an erasure event forgets the user; their later events start afresh")
    func erasure() {
        let store = InteractionTable()
        var erase = Event()
        erase.eventId = "x"
        erase.kind = .erasure
        erase.userId = 7
        erase.timestampMs = baseMs + 10
        store.fold([view(7, 10, at: baseMs), view(7, 11, at: baseMs + 1), view(8, 10, at: baseMs + 2), erase])
        #expect(store.pairs(of: 7).isEmpty)
        #expect(store.summary.pairs == 1 && store.summary.users == 1)
        #expect(!store.interactions().data.userIDs.contains(7))
        store.fold([view(7, 12, at: baseMs + 20)])
        #expect(store.pairs(of: 7).map(\.item) == [12])
    }

    @Test("a snapshot restores the same store, offsets included; compaction keeps every pair")
    func snapshotRoundTrip() throws {
        let store = InteractionTable()
        var rng = SplitMix(seed: 9)
        var events: [Event] = []
        for n in 0..<5000 {
            events.append(
                view(Int64(1 + rng.below(300)), Int64(1 + rng.below(400)), at: baseMs + Int64(n) * 1000, category: Int64(rng.below(5))))
        }
        store.fold(events)
        func listing(_ s: InteractionTable) -> [String] {
            (1...300).flatMap { u in s.pairs(of: Int64(u)).map { "\(u):\($0.item):\($0.counts):\($0.seconds)" } }
        }
        let before = listing(store)
        let path = temporaryDirectory() + ".snapshot"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try store.writeSnapshot(to: path)
        let (restored, found) = try InteractionTable.open(snapshotPath: path)
        #expect(found)
        #expect(listing(restored) == before)
        #expect(restored.summary.offsets == store.summary.offsets && restored.summary.pairs == store.summary.pairs)
        #expect(restored.interactions().data.matrix == store.interactions().data.matrix)
        store.compact()
        #expect(listing(store) == before)
        // A corrupted snapshot is refused, not half read.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x40
        #expect(throws: (any Error).self) { try InteractionTable.restore(Array(bytes)) }
    }

    @Test("the training matrix is the same whatever order the users' events were folded in")
    func foldOrderDoesNotMatter() {
        let events = clusteredShop(users: 50, perUser: 6)
        // Each user's events keep their order (as within a partition); users interleave differently.
        let byUser = Dictionary(grouping: events, by: \.userId)
        let a = InteractionTable(), b = InteractionTable()
        a.fold(events)
        b.fold(byUser.keys.sorted(by: >).flatMap { byUser[$0]! })
        let da = a.interactions().data, db = b.interactions().data
        #expect(da.userIDs == db.userIDs && da.itemIDs == db.itemIDs && da.matrix == db.matrix && da.times == db.times)
        #expect(da.userIDs == da.userIDs.sorted() && da.itemIDs == da.itemIDs.sorted())
    }

    @Test("sequences follow event time: a late event takes its place, and a history folded in any order gives the same steps")
    func sequencesFollowEventTime() throws {
        // A late view of 10 joins the step of 10 it follows in time; a late view of 12 goes between.
        let late = InteractionTable()
        late.fold([
            view(1, 10, at: baseMs), view(1, 11, at: baseMs + 20_000), view(1, 10, at: baseMs + 5000), view(1, 12, at: baseMs + 10_000),
        ])
        let lateData = late.interactions().data
        #expect(try #require(lateData.steps)[0].map { lateData.itemIDs[Int($0.item)] } == [10, 12, 11])
        #expect(lateData.leaveLastOut().test.map { $0.map { lateData.itemIDs[Int($0)] } } == [[11]])

        // Each user's events reversed or shuffled (a ratings export sorted by user, not by time).
        let events = clusteredShop(users: 40, perUser: 8)
        var rng = SystemRandomNumberGenerator()
        let shuffled = Dictionary(grouping: events, by: \.userId).sorted { $0.key < $1.key }.flatMap { $0.value.shuffled(using: &rng) }
        let a = InteractionTable(), b = InteractionTable()
        a.fold(events)
        b.fold(shuffled)
        let da = a.interactions().data, db = b.interactions().data
        let stepsA = try #require(da.steps), stepsB = try #require(db.steps)
        #expect(da.userIDs == db.userIDs && da.itemIDs == db.itemIDs)
        #expect(stepsA.map { $0.map(\.item) } == stepsB.map { $0.map(\.item) })
        #expect(stepsA.map { $0.map(\.value) } == stepsB.map { $0.map(\.value) })
        #expect(da.leaveLastOut().test == db.leaveLastOut().test)
    }

    @Test("a data range keeps the pairs whose latest event falls in it")
    func dataRange() {
        let store = InteractionTable()
        store.fold([view(1, 10, at: baseMs), view(1, 11, at: baseMs + 86_400_000), view(2, 10, at: baseMs + 2 * 86_400_000)])
        let (data, _) = store.interactions(fromMs: baseMs + 1000, toMs: baseMs + 2 * 86_400_000)
        #expect(data.userIDs == [1] && data.itemIDs == [11])
    }
}
