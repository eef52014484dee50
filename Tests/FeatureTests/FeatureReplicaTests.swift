import DataStructures
import Foundation
import RPC
import ServiceKit
import Store
import Synchronization
import TestSupport
import Testing
import Wire

@testable import Feature

/// 430 Taobao users' histories with a device, an IP and an order total added to their
/// events, so that devices and IPs are shared across partitions and RFM reads spend: the
/// parts of a profile that depend on users other than its own.
private func sharedDeviceEvents() throws -> [Event] {
    TaobaoRow.events(try TaobaoRow.manyUsers(copies: 10)).map { e in
        var e = e
        e.deviceId = "device-\(e.userId % 53)"
        e.ip = "10.0.\(e.userId % 29).1"
        if e.kind == .purchase {
            var order = e.order ?? Order()
            order.total = Double(e.itemId % 97) + 1
            e.order = order
        }
        return e
    }
}

@Suite("Feature replicas")
struct FeatureReplicaStateTests {
    /// Folds `events` into `state` partition by partition, in rounds of 500 events per
    /// partition (every state sees the same interleaving).
    private func fold(_ events: [Event], partitions: Int, into states: [LiveFeatures]) {
        var byPartition = [[StoredEvent]](repeating: [], count: partitions)
        for e in events {
            let p = StableHash.partition(of: e.userId, among: partitions)
            var stored = StoredEvent()
            stored.offset = UInt64(byPartition[p].count)
            stored.event = e
            byPartition[p].append(stored)
        }
        var start = 0
        while byPartition.contains(where: { $0.count > start }) {
            for p in 0..<partitions where byPartition[p].count > start {
                let run = Array(byPartition[p][start..<min(start + 500, byPartition[p].count)])
                for state in states { state.fold(run, partition: p, next: run.last!.offset + 1) }
            }
            start += 500
        }
    }

    @Test("two replicas owning half the partitions each serve the profiles and features one replica holding all serves")
    func partitionedEqualsWhole() throws {
        let events = try sharedDeviceEvents()
        let users = Array(Set(events.map(\.userId))).sorted()
        let whole = LiveFeatures(partitions: 4)
        let low = LiveFeatures(partitions: 4), high = LiveFeatures(partitions: 4)
        low.own([0, 1])
        high.own([2, 3])
        fold(events, partitions: 4, into: [whole, low, high])
        let all = Array(FeatureCatalog.names.indices)
        var compared = 0
        for u in users {
            let owner = StableHash.partition(of: u, among: 4) < 2 ? low : high
            let other = owner === low ? high : low
            #expect(other.profile(u) == nil, "user \(u) has a profile on the replica not serving them")
            let expected = try #require(whole.profile(u))
            #expect(owner.profile(u) == expected, "user \(u)")
            #expect(owner.features([u], positions: all) == whole.features([u], positions: all), "user \(u)")
            compared += 1
        }
        #expect(compared == 430)
        // The profiles read other users: shared devices and RFM quintiles over every buyer.
        #expect(users.contains { (whole.profile($0)?.risk?.usersSharingDevice ?? 0) > 0 })
        #expect(users.contains { (whole.profile($0)?.rfm?.mScore ?? 0) == 5 })

        // Giving a partition back keeps the rest exact; a snapshot keeps what is owned.
        low.own([0])
        for u in users where StableHash.partition(of: u, among: 4) == 0 { #expect(low.profile(u) == whole.profile(u), "user \(u)") }
        #expect(users.allSatisfy { StableHash.partition(of: $0, among: 4) == 0 || low.profile($0) == nil })
        let bytes = try low.snapshotBytes()
        let restored = try LiveFeatures.restore(try #require(bytes))
        #expect(restored.owned == [0])
        for u in users.prefix(50) { #expect(restored.profile(u) == low.profile(u), "user \(u)") }
    }

    @Test("a state rebuilt beside the live one replaces it only once it has read as far")
    func replaceWhenCaughtUp() throws {
        let events = try sharedDeviceEvents()
        let live = LiveFeatures(partitions: 2)
        live.own([0])
        fold(Array(events.prefix(2000)), partitions: 2, into: [live])
        let rebuilt = live.rebuilding(owning: nil)
        #expect(!live.replace(with: rebuilt))
        fold(Array(events.prefix(2000)), partitions: 2, into: [rebuilt])
        #expect(live.replace(with: rebuilt))
        #expect(live.owned == nil)
        let whole = LiveFeatures(partitions: 2)
        fold(Array(events.prefix(2000)), partitions: 2, into: [whole])
        for u in Set(events.prefix(2000).map(\.userId)) { #expect(live.profile(u) == whole.profile(u), "user \(u)") }
    }

    @Test("snapshots asked for at once (periodic, takeover, give-back) are written one at a time, each whole")
    func concurrentSnapshots() throws {
        let events = try sharedDeviceEvents()
        let live = LiveFeatures(partitions: 2)
        fold(Array(events.prefix(2000)), partitions: 2, into: [live])
        let path = temporaryDirectory() + ".snapshot"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do { _ = try live.writeSnapshot(to: path) } catch { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        let restored = try LiveFeatures.restore(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        for u in Set(events.prefix(2000).map(\.userId)) { #expect(restored.profile(u) == live.profile(u), "user \(u)") }
    }

    @Test("takeover plan: unheld partitions go to the live replica with the lowest home; borrowed ones go back when their home is ready")
    func takeoverPlan() {
        func answer(home: [UInt32], serving: [UInt32], lagging: [UInt32] = [], rebuilding: [UInt32] = []) -> OwnershipResponse {
            var r = OwnershipResponse()
            r.partitions = 8
            (r.home, r.serving, r.lagging, r.rebuilding) = (home, serving, lagging, rebuilding)
            return r
        }
        let a = answer(home: [0, 1, 2, 3], serving: [0, 1, 2, 3])
        let b = answer(home: [4, 5, 6, 7], serving: [4, 5, 6, 7])
        #expect(TakeoverPlan(mine: a, live: [b]) == TakeoverPlan(mine: a, live: [b]))
        #expect(TakeoverPlan(mine: a, live: [b]).takeOver.isEmpty)
        #expect(TakeoverPlan(mine: a, live: []).takeOver == [4, 5, 6, 7])
        // Only the replica with the lowest home partition takes over.
        let c = answer(home: [2, 3], serving: [2, 3])
        let low = answer(home: [0, 1], serving: [0, 1])
        #expect(TakeoverPlan(mine: c, live: [low]).takeOver.isEmpty)
        #expect(TakeoverPlan(mine: low, live: [c]).takeOver == [4, 5, 6, 7])
        // Nothing while a takeover is under way, and nothing a peer is rebuilding.
        #expect(TakeoverPlan(mine: answer(home: [0, 1], serving: [0, 1], rebuilding: [4]), live: [c]).takeOver.isEmpty)
        #expect(TakeoverPlan(mine: low, live: [answer(home: [2, 3], serving: [2, 3], rebuilding: [4, 5, 6, 7])]).takeOver.isEmpty)
        // Borrowed partitions go back once their home replica serves them read to the end.
        let borrowing = answer(home: [0, 1, 2, 3], serving: [0, 1, 2, 3, 4, 5, 6, 7])
        let returning = answer(home: [4, 5, 6, 7], serving: [4, 5, 6, 7], lagging: [5])
        #expect(TakeoverPlan(mine: borrowing, live: [returning]).release == [4, 6, 7])
        #expect(TakeoverPlan(mine: borrowing, live: [b]).release == [4, 5, 6, 7])
        #expect(TakeoverPlan(mine: borrowing, live: []).release.isEmpty)
    }

    @Test("partition lists parse and print as runs")
    func partitionSets() {
        #expect(PartitionSet.parse("0-3") == [0, 1, 2, 3])
        #expect(PartitionSet.parse("0,2,5-6") == [0, 2, 5, 6])
        #expect(PartitionSet.parse("3-1") == nil)
        #expect(PartitionSet.parse("a") == nil)
        #expect(PartitionSet.parse("") == nil)
        #expect(PartitionSet.format([0, 1, 2, 3, 6, 8, 9]) == "0-3,6,8-9")
        #expect(PartitionSet.format([]) == "-")
    }
}

extension LiveFeatures {
    /// The state's snapshot bytes, as the service writes them.
    func snapshotBytes() throws -> [UInt8]? {
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/state.snapshot"
        _ = try writeSnapshot(to: path)
        return try AtomicFile.read(path)
    }
}
