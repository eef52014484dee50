import Datasets
import Foundation
import RPC
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Feature

/// Audiences through a real ingest and feature service over the Online Retail sample.
@Suite("Audiences", .serialized, .timeLimit(.minutes(3)))
struct AudienceTests {
    @Test(
        """
        an audience is checked like a rule (errors at their column), kept in the log, and its members, size, history and \
        overlap equal a recount of the users' features; a fresh replica folds it from the log; deleted, it is gone
        """
    )
    func defineAndEvaluate() async throws {
        let events = try onlineRetailSample()
        try await withIngest { ingest, ingestPort in
            try await append(ingest, events)
            try await withFeature(ingestPort: ingestPort) { feature, _ in
                try await waitConsumed(ingest: ingest, consumer: feature)
                func define(_ name: String, _ expression: String, check: Bool = false) async throws -> DefineAudienceResponse {
                    var r = DefineAudienceRequest()
                    (r.name, r.expression, r.validateOnly) = (name, expression, check)
                    return try await feature.call(FeatureAPI.defineAudience, r, timeout: .seconds(20))
                }
                // Errors name their column; nothing is stored.
                let typo = try await define("big", "monetary >= 500 and days_since_last_ordr <= 3")
                #expect(typo.errors.count == 1 && typo.errors[0].column == 21, "\(typo.errors)")
                #expect(typo.errors.first?.message.contains("did you mean 'days_since_last_order'") == true)
                let notBool = try await define("big", "monetary + 1")
                #expect(notBool.errors.first?.message.hasPrefix("an audience must be true or false") == true, "\(notBool.errors)")
                #expect(try await define("big", "monetary >= 500", check: true).errors.isEmpty)
                #expect(try await feature.call(FeatureAPI.listAudiences, ListAudiencesRequest()).audiences.isEmpty)
                await #expect { try await define("Bad Name", "monetary > 1") } throws: { ($0 as? RPCError)?.code == .invalidArgument }

                let big = try await define("big", "monetary >= 500 and days_since_last_order <= 3")
                #expect(big.errors.isEmpty && Set(big.reads) == ["monetary", "days_since_last_order"])
                _ = try await define("repeat", "frequency >= 2 or tag_loyal")

                // The recount: every user's features from GetFeatures.
                var users: Set<Int64> = []
                for e in events where e.userId > 0 { users.insert(e.userId) }
                var q = GetFeaturesRequest()
                q.userIds = users.sorted()
                q.names = ["monetary", "recency_days", "frequency"]
                let rows = try await feature.call(FeatureAPI.getFeatures, q, timeout: .seconds(30)).rows
                let expectedBig = zip(q.userIds, rows).filter { $0.1.values[0] >= 500 && $0.1.values[1] <= 3 }.map(\.0)
                #expect(expectedBig.count > 20 && expectedBig.count < users.count / 2, "\(expectedBig.count) of \(users.count)")

                func members(_ name: String, page: UInt32) async throws -> [Int64] {
                    var r = AudienceMembersRequest()
                    (r.name, r.pageSize) = (name, page)
                    var out: [Int64] = []
                    repeat {
                        let answer = try await feature.call(FeatureAPI.audienceMembers, r, timeout: .seconds(20))
                        out += answer.userIds
                        r.pageToken = answer.nextPageToken
                    } while !r.pageToken.isEmpty
                    return out
                }
                #expect(try await members("big", page: 7) == expectedBig, "paged by id, every member once")
                let listed = try await feature.call(FeatureAPI.listAudiences, ListAudiencesRequest()).audiences
                #expect(listed.map(\.name) == ["big", "repeat"])
                #expect(listed[0].size == UInt32(expectedBig.count) && listed[0].history.map(\.size) == [UInt32(expectedBig.count)])
                let repeated = try await members("repeat", page: 1000)
                var o = AudienceOverlapRequest()
                (o.a, o.b) = ("big", "repeat")
                let overlap = try await feature.call(FeatureAPI.audienceOverlap, o)
                #expect(overlap.aSize == UInt32(expectedBig.count) && overlap.bSize == UInt32(repeated.count))
                #expect(overlap.both == UInt32(Set(expectedBig).intersection(repeated).count))

                // A replica started empty folds the definitions from the log.
                try await withFeature(ingestPort: ingestPort) { fresh, _ in
                    try await waitConsumed(ingest: ingest, consumer: fresh)
                    var r = AudienceMembersRequest()
                    (r.name, r.pageSize) = ("big", 10_000)
                    #expect(try await fresh.call(FeatureAPI.audienceMembers, r).userIds == expectedBig)
                }

                var remove = DefineAudienceRequest()
                (remove.name, remove.remove) = ("big", true)
                _ = try await feature.call(FeatureAPI.defineAudience, remove, timeout: .seconds(20))
                var gone = AudienceMembersRequest()
                gone.name = "big"
                await #expect { try await feature.call(FeatureAPI.audienceMembers, gone) } throws: { ($0 as? RPCError)?.code == .notFound }
            }
        }
    }

    @Test("the audiences and their sizes survive a snapshot and restart; a bad audience event is refused by ingest")
    func snapshotAndValidation() async throws {
        let state = FeatureState(partitions: 1)
        var a = AudienceDefinition()
        (a.name, a.expression, a.definedBy) = ("lapsing", "recency_days > 30", "alice")
        var e = Event()
        (e.eventId, e.kind, e.timestampMs) = ("a1", .audience, 1_700_000_000_000)
        e.audience = a
        #expect(state.fold(e, partition: 0, offset: 0) == nil)
        state.audiences["lapsing"]?.sizes = [(1_700_000_000_000, 12), (1_700_003_600_000, 14)]
        let restored = try FeatureState.restore(state.snapshot())
        let back = try #require(restored.audiences["lapsing"])
        #expect(back.definition == a && back.definedMs == 1_700_000_000_000 && back.sizes.map(\.size) == [12, 14])

        try await withIngest { ingest, _ in
            var bad = e
            bad.audience?.name = "No Spaces Allowed"
            var request = AppendRequest()
            request.events = [bad]
            let status = try #require(try await ingest.call(IngestAPI.append, request).statuses.first)
            #expect(status.code == .rejected && status.detail.contains("audience.name"), "\(status)")
        }
    }
}
