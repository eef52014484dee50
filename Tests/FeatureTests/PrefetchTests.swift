import DataStructures
import Testing
import Wire

@testable import Feature

@Suite("Prefetching the feature state")
struct PrefetchTests {
    @Test("the prefetch layouts find every array a fold writes, in every instance")
    func layoutsFindTheArrays() {
        let users = UserState.prefetchLayout
        #expect(users.buffers.count == UserState.Prefetched.allCases.count)
        #expect(users.lines >= 2)
        #expect(ItemState.prefetchLayout.buffers.count == 1)
        // The inline counters hold a counter per event kind, per item counter.
        #expect(UserState(id: 1).lifetime.count == ProfileView.kindCount)
        #expect(ItemState(id: 1).lifetime.count == ItemState.Counter.allCases.count)
        // A run counts what it noticed in an array by each case's index.
        #expect(FeatureState.Observation.allCases.map(\.index) == Array(FeatureState.Observation.allCases.indices))

        // Another instance, with its own arrays: the words at the offsets are its buffers.
        let user = UserState(id: 7)
        user.knownDevices = [1, 2, 3]
        user.recentViews = RecentItems([4, 5])
        user.failures = [.init(ms: 6, kind: 1)]
        let base = UnsafeRawPointer(Unmanaged.passUnretained(user).toOpaque())
        let words = Set(users.buffers.map { base.load(fromByteOffset: $0, as: UnsafeRawPointer.self) })
        #expect(words.contains(bufferAddress(user.knownDevices)))
        #expect(words.contains(user.recentViews.buffer))
        #expect(words.contains(bufferAddress(user.failures)))
        #expect(words.contains(bufferAddress(user.windows.buckets)))
        // Each named array is found at its own offset.
        #expect(users.array(UserState.Prefetched.recentViews.rawValue, of: base).storage == user.recentViews.buffer)
        #expect(users.array(UserState.Prefetched.failures.rawValue, of: base).storage == bufferAddress(user.failures))
        #expect(users.array(UserState.Prefetched.knownDevices.rawValue, of: base).count == 3)
    }

    @Test("a raw read of an array's buffer finds its count and elements, for every element type read so")
    func rawArraysMatchTheArrays() {
        func check<T>(_ array: [T]) {
            let raw = RawArray(storage: bufferAddress(array))
            #expect(raw.count == array.count, "\(T.self)")
            array.withUnsafeBytes { bytes in
                if !array.isEmpty { #expect(raw.elements == bytes.baseAddress, "\(T.self)") }
            }
        }
        check([UInt32](repeating: 7, count: 9))
        check([UInt32]())
        check((0..<40).map { UserState.Affinity(id: $0, level: 1) })
        check((0..<20).map { WindowedCounts.Bucket(minute: UInt32($0), count: 1, kind: 2, tier: 0) })
        check([Int64](1...20))
        check([(Int64, UnsafeRawPointer?)](repeating: (1, nil), count: 5))
    }

    @Test("folding runs with prefetching ends in the state of folding event by event")
    func runFoldEqualsEventFold() {
        var stored: [StoredEvent] = []
        var rng = SystemRandomNumberGenerator()
        let kinds: [EventKind] = [.view, .click, .addToCart, .favorite, .purchase, .itemUpsert]
        for i in 0..<3_000 {
            let kind = kinds.randomElement(using: &rng)!
            var e = event(
                kind, user: Int64.random(in: 1...300, using: &rng), at: monday + Int64(i) * 7_000,
                item: Int64.random(in: 1...50, using: &rng))
            if kind == .itemUpsert {
                var u = ItemUpsert()
                u.itemId = e.itemId
                u.categoryId = 3
                u.price = 20
                e.item = u
            }
            e.deviceId = "d\(e.userId % 40)"
            var s = StoredEvent()
            s.offset = UInt64(i)
            s.event = e
            stored.append(s)
        }
        let byEvent = FeatureState(partitions: 1)
        for s in stored { _ = byEvent.fold(s, partition: 0) }
        let byRun = FeatureState(partitions: 1)
        var seen: [FeatureState.Observation: Int] = [:]
        for start in stride(from: 0, to: stored.count, by: 500) { byRun.fold(stored[start..<start + 500], partition: 0, noting: &seen) }
        #expect(byRun.snapshot() == byEvent.snapshot())
        #expect(byRun.users.count == byEvent.users.count)
    }
}
