import DataStructures
import Testing

/// An object the table keeps, with arrays a prefetch layout can find.
final class Box: Identified {
    let id: Int64
    var first: [Int64]
    var second: [UInt32]

    init(id: Int64) {
        self.id = id
        first = [id, id + 1]
        second = [1, 2, 3]
    }

    static let layout: PrefetchLayout = {
        let probe = Box(id: 1)
        return PrefetchLayout(probe, buffers: [bufferAddress(probe.first), bufferAddress(probe.second)])
    }()
}

/// A small value with a String inside, as the per-user tallies are.
struct Tally: Equatable {
    var value: String
    var count: Int
}

@Suite("Open-addressing tables and small arrays")
struct DataStructuresTests {
    @Test("the object table agrees with a Dictionary through inserts, removals and growth")
    func objectTableAgreesWithADictionary() {
        var table = ObjectTable<Box>()
        var reference: [Int64: Box] = [:]
        var rng = SystemRandomNumberGenerator()
        for step in 0..<30_000 {
            // Ids from a small range, negative ones included: long probe runs, frequent hits.
            var id = Int64.random(in: -3_000...3_000, using: &rng)
            if id == 0 { id = 1 }
            if step == 15_000 { table.reserveCapacity(50_000) }  // regrown in one go, mid-run
            if step % 3 == 2 {
                let removed = table.remove(id)
                #expect(removed === reference.removeValue(forKey: id))
            } else if reference[id] == nil {
                let box = Box(id: id)
                table.insert(box)
                reference[id] = box
            }
            #expect(table[id] === reference[id])
            let pointer = table.prefetchObject(id, Box.layout)
            #expect(pointer == reference[id].map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) })
            if step % 3_000 == 0 {
                #expect(table[0] == nil && table.prefetchObject(0, Box.layout) == nil)
                #expect(table.count == reference.count)
                #expect(Set(table.values.map(\.id)) == Set(reference.keys))
            }
        }
        // The walk in id order visits every object once, ascending.
        var walked: [Int64] = []
        table.forEachInIDOrder(prefetching: Box.layout) { walked.append($0.id) }
        #expect(walked == reference.keys.sorted())
    }

    @Test("a prefetch layout finds each array of every instance at its offset")
    func layoutFindsTheArrays() {
        let layout = Box.layout
        #expect(layout.buffers.count == 2)
        let box = Box(id: 9)
        box.first = [4, 5, 6, 7]
        let base = UnsafeRawPointer(Unmanaged.passUnretained(box).toOpaque())
        #expect(layout.array(0, of: base).storage == bufferAddress(box.first))
        #expect(layout.array(0, of: base).count == 4)
        #expect(layout.array(1, of: base).typed(UInt32.self).elementsEqual(box.second))
    }

    @Test("the sharing table agrees with lists per key through adds, the limit, erasures and growth")
    func sharingTableAgreesWithLists() {
        var table = SharingTable(limit: 3)
        // Per key: each user with the earliest time it was added at.
        var reference: [UInt64: [(user: Int64, ms: Int64)]] = [:]
        var rng = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            // Few users and many keys (key 0 included): repeats, full keys, long probe runs.
            let key = UInt64.random(in: 0...2_500, using: &rng)
            let user = Int64.random(in: 1...40, using: &rng)
            let ms = Int64.random(in: 0...1_000, using: &rng)
            if step % 500 == 499 {
                table.remove(user)
                for k in Array(reference.keys) {
                    reference[k]!.removeAll { $0.user == user }
                    if reference[k]!.isEmpty { reference[k] = nil }
                }
            } else {
                table.add(user, to: key, at: ms)
                if let i = reference[key, default: []].firstIndex(where: { $0.user == user }) {
                    reference[key]![i].ms = min(reference[key]![i].ms, ms)
                } else if reference[key, default: []].count < 3 {
                    reference[key, default: []].append((user, ms))
                }
            }
            let expected = reference[key] ?? []
            #expect(table[key].map(\.user) == expected.map(\.user))
            #expect(table[key].map(\.firstMs) == expected.map(\.ms))
            #expect(table[key].count == expected.count)
            // As of a time: the others first seen by then.
            let asOf = Int64.random(in: 0...1_000, using: &rng)
            #expect(table.others(of: key, than: user, asOf: asOf) == expected.filter { $0.user != user && $0.ms <= asOf }.count)
            if step % 2_000 == 0 {
                #expect(table.count == reference.count)
                #expect(table.sortedEntries.map(\.key) == reference.keys.sorted())
                // A snapshot's entries give the same table back.
                let restored = SharingTable(limit: 3, entries: table.sortedEntries)
                #expect(restored.sortedEntries.map(\.key) == table.sortedEntries.map(\.key))
                #expect(restored.sortedEntries.map(\.users) == table.sortedEntries.map(\.users))
            }
        }
    }

    @Test("the distinct-items set agrees with a Set through inserts, the limit and a round trip")
    func distinctSetAgreesWithSet() {
        var rng = SystemRandomNumberGenerator()
        var set = HashSet32()
        var model = Set<Int64>()
        var order: [Int64] = []
        for _ in 0..<20_000 {
            let id = Int64.random(in: 1...3_000, using: &rng)
            set.insert(id, limit: 2_000)
            if model.count < 2_000 && model.insert(id).inserted { order.append(id) }
        }
        #expect(set.count == 2_000)
        #expect(model.count == 2_000)
        #expect(order.allSatisfy { set.contains($0) })
        // Ids seen only after the limit was reached were not added.
        let late = (1...3_000).map(Int64.init).filter { !model.contains($0) }
        #expect(!late.isEmpty && late.allSatisfy { !set.contains($0) })
        // Hashes listed ascending; a set rebuilt from them is equal and holds the same ids.
        let hashes = set.hashes
        #expect(hashes == hashes.sorted() && hashes.count == 2_000)
        var rebuilt = HashSet32(hashes: hashes)
        #expect(rebuilt == set)
        rebuilt.insert(order[0], limit: 4_096)
        #expect(rebuilt.count == 2_000)
        #expect(HashSet32(hashes: []).count == 0)
    }

    @Test("appendSmall appends as append does, from empty, from a literal's exact capacity and from spare capacity")
    func appendSmallAppends() {
        var small: [Int64] = []
        var plain: [Int64] = []
        for i in 0..<40 {
            small.appendSmall(Int64(i) * 3)
            plain.append(Int64(i) * 3)
            #expect(small == plain)
            #expect(small.capacity >= small.count)
        }
        var spare: [Tally] = []
        spare.reserveCapacity(8)
        spare.appendSmall(Tally(value: "web", count: 1))
        spare.appendSmall(Tally(value: "app", count: 2))
        #expect(spare == [Tally(value: "web", count: 1), Tally(value: "app", count: 2)])
        #expect(spare.capacity >= 8)
        // A copy made before the append keeps its elements.
        let before = small
        small.appendSmall(-1)
        #expect(before == plain && small == plain + [-1])
    }

    @Test("linear probing finds what it placed, and a doubled table still finds it")
    func linearProbingFindsAfterDoubling() {
        var slots = [UInt32](repeating: 0, count: 16)
        var placed: [UInt32] = []
        for key in [UInt32](arrayLiteral: 5, 21, 37, 2, 9, 1000, 7) {
            let (slot, found) = slots.withUnsafeBufferPointer { LinearProbing.find(UInt64(key), in: $0) }
            #expect(!found)
            slots[slot] = key
            placed.append(key)
        }
        LinearProbing.double(&slots)
        #expect(slots.count == 32)
        for key in placed {
            let (slot, found) = slots.withUnsafeBufferPointer { LinearProbing.find(UInt64(key), in: $0) }
            #expect(found && slots[slot] == key)
        }
        #expect(!slots.withUnsafeBufferPointer { LinearProbing.find(3, in: $0) }.found)
    }

    @Test("stable hashes are the same on every run: FNV-1a's published values, splitmix64's spread")
    func stableHashes() {
        #expect(StableHash.fnv1a("") == 0xcbf2_9ce4_8422_2325)
        #expect(StableHash.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(StableHash.fnv1a("foobar") == 0x8594_4171_f739_67e8)
        #expect(StableHash.fnv1a("foobar"[...]) == StableHash.fnv1a("foobar"))
        #expect(StableHash.mix64(0) == 0xe220_a839_7b1d_cdaf)
        #expect(Set((0..<1000).map { StableHash.mix64(UInt64($0)) >> 54 }).count > 500)
    }
}
