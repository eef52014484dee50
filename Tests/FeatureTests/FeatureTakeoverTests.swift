import DataStructures
import Foundation
import RPC
import ServiceKit
import Synchronization
import TestSupport
import Testing
import Wire

/// Two real feature processes, each serving half of ingest's 4 partitions and watching the
/// other; one is killed with SIGKILL while callers read profiles through `FeatureReplicas`.
@Suite("Feature replica takeover", .serialized, .timeLimit(.minutes(5)))
struct FeatureTakeoverTests {
    @Test("SIGKILL a feature replica under reads: its partitions answer again from the other within 10 s, profiles exact; it comes back")
    func sigkillReplica() async throws {
        let events = TaobaoRow.events(try TaobaoRow.manyUsers(copies: 10))
        let users = Array(Set(events.map(\.userId))).sorted()
        try await withIngest { ingest, ingestPort in
            try await append(ingest, events)
            let reference = try await withFeature(ingestPort: ingestPort) { client, _ in
                try await waitConsumed(ingest: ingest, consumer: client)
                return try await profiles(client, users)
            }
            #expect(reference.count == 430)

            let (portA, portB) = (freePort(), freePort())
            let (dirA, dirB) = (temporaryDirectory(), temporaryDirectory())
            func replica(port: Int, dir: String, partitions: String, peer: Int) throws -> ChildProcess {
                try ChildProcess(
                    "persona-feature",
                    [
                        "--port", "\(port)", "--metrics-port", "0", "--data-dir", dir, "--ingest", "127.0.0.1:\(ingestPort)",
                        "--model", "127.0.0.1:\(freePort())", "--partitions", partitions, "--peers", "127.0.0.1:\(peer)",
                        "--takeover-seconds", "1",
                    ])
            }
            let a = try replica(port: portA, dir: dirA, partitions: "0-1", peer: portB)
            defer { a.kill() }
            var b = try replica(port: portB, dir: dirB, partitions: "2-3", peer: portA)
            defer { b.kill() }
            let clientA = RPCClient(host: "127.0.0.1", port: portA), clientB = RPCClient(host: "127.0.0.1", port: portB)
            let router = FeatureReplicas([("127.0.0.1", portA), ("127.0.0.1", portB)])
            defer {
                Task {
                    await router.shutdown()
                    await clientA.shutdown()
                    await clientB.shutdown()
                }
            }
            try await waitConsumed(ingest: ingest, consumer: clientA)
            try await waitConsumed(ingest: ingest, consumer: clientB)
            #expect(try await routedProfiles(router, users) == reference)
            let onB = users.filter { StableHash.partition(of: $0, among: 4) >= 2 }
            let onA = users.filter { StableHash.partition(of: $0, among: 4) < 2 }
            // Replica B holds only its own users.
            var r = GetProfileRequest()
            r.userId = onA[0]
            await #expect(throws: RPCError.self) { try await clientB.call(FeatureAPI.getProfile, r) }

            // Readers of A's users keep going while B is killed and its partitions taken over.
            let failedOnA = Atomic<Int>(0), readsOnA = Atomic<Int>(0)
            let reading = Task {
                while !Task.isCancelled {
                    for u in onA.prefix(50) where !Task.isCancelled {
                        var request = GetProfileRequest()
                        request.userId = u
                        do {
                            _ = try await router.call(FeatureAPI.getProfile, request, user: u, timeout: .seconds(2))
                            readsOnA.add(1, ordering: .relaxed)
                        } catch {
                            guard !Task.isCancelled else { break }
                            if failedOnA.add(1, ordering: .relaxed).newValue == 1 { print("read of A's user \(u) failed: \(error)") }
                        }
                    }
                }
            }
            b.kill()
            let killed = ContinuousClock.now
            var served = false
            while killed.duration(to: .now) < .seconds(30) && !served {
                var request = GetProfileRequest()
                request.userId = onB[0]
                served = (try? await router.call(FeatureAPI.getProfile, request, user: onB[0], timeout: .milliseconds(500))) != nil
                if !served { try await Task.sleep(for: .milliseconds(50)) }
            }
            let takeover = killed.duration(to: .now)
            #expect(served && takeover < .seconds(10), "B's partitions answered again after \(takeover)")
            #expect(try await routedProfiles(router, users) == reference)
            // A tag's members, merged over the replicas, are the users whose profiles carry it.
            let tags = Dictionary(reference.values.flatMap(\.tags).map { ($0, 1) }, uniquingKeysWith: +)
            let tag = try #require(tags.max { $0.value < $1.value }?.key)
            var members = SegmentMembersRequest()
            members.tag = tag
            members.pageSize = 10_000
            let tagged = try await router.segmentMembers(members, timeout: .seconds(5))
            #expect(tagged.userIds == reference.filter { $0.value.tags.contains(tag) }.keys.sorted())
            let health = try await clientA.call(HealthAPI.check, HealthRequest())
            #expect(health.checks.first { $0.key == "partitions" }?.value == "serving 0-3 (home 0-1)")

            // B restarts from its snapshot, catches up, and A gives its partitions back.
            b = try replica(port: portB, dir: dirB, partitions: "2-3", peer: portA)
            let restarted = ContinuousClock.now
            var givenBack = false
            // Catching up competes with every other suite for two cores: give it a minute.
            while restarted.duration(to: .now) < .seconds(60) && !givenBack {
                let ownership = try? await clientA.call(FeatureAPI.ownership, OwnershipRequest(), timeout: .seconds(1))
                givenBack = ownership?.serving == [0, 1]
                if !givenBack { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(givenBack, "A still serves B's partitions 60 s after B restarted")
            try await waitConsumed(ingest: ingest, consumer: clientB)
            #expect(try await routedProfiles(router, users) == reference)
            reading.cancel()
            _ = await reading.value
            #expect(readsOnA.load(ordering: .relaxed) > 0)
            #expect(failedOnA.load(ordering: .relaxed) == 0, "reads of A's own users failed while it took over B's partitions")
            print("takeover: B's partitions answered again \(takeover) after the SIGKILL")
        }
    }

    private func routedProfiles(_ router: FeatureReplicas, _ users: [Int64]) async throws -> [Int64: UserProfile] {
        var out: [Int64: UserProfile] = [:]
        for u in users {
            var r = GetProfileRequest()
            r.userId = u
            let response = try await router.call(FeatureAPI.getProfile, r, user: u, timeout: .seconds(5))
            if response.found { out[u] = response.profile }
        }
        return out
    }
}
