import Feature
import Foundation
import Ingest
import Math
import Model
import RPC
import Recommenders
import ServiceKit
import TestSupport
import Testing
import Wire

@testable import Recommend

/// An item_upsert of `item` with its catalogue fields.
func upsert(_ item: Int64, title: String, category: Int64, tags: [String] = [], price: Double = 5, at ms: Int64 = baseMs) -> Event {
    var e = Event()
    e.eventId = "u-\(item)-\(ms)"
    e.kind = .itemUpsert
    e.itemId = item
    e.categoryId = category
    e.timestampMs = ms
    var u = ItemUpsert()
    u.itemId = item
    u.categoryId = category
    u.title = title
    u.tags = tags
    u.price = price
    u.stock = 10
    e.item = u
    return e
}

@Suite("Content similarity")
struct ContentTests {
    @Test("tokenisation: Latin words lower-cased, stop words and one-letter words out, plurals stemmed; CJK runs as character pairs")
    func tokenisation() {
        #expect(Tokenizer.words("WHITE HANGING HEART T-LIGHT HOLDERS") == ["white", "hanging", "heart", "light", "holder"])
        #expect(Tokenizer.words("Set of 3 cake tins, glass & brass") == ["set", "cake", "tin", "glass", "brass"])
        #expect(Tokenizer.words("红色连衣裙 Summer") == ["红色", "色连", "连衣", "衣裙", "summer"])
        #expect(Tokenizer.words("iPhone 15手机壳") == ["iphone", "15", "手机", "机壳"])
        #expect(Tokenizer.words("ワンピース、夏") == ["ワン", "ンピ", "ピー", "ース", "夏"])
        #expect(Tokenizer.words("한국어 텍스트") == ["한국", "국어", "텍스", "스트"])
        let d = ItemDocument(title: "Red mug", tags: ["Gift"], category: 7, brand: "Acme", price: 12)
        #expect(d.terms == ["red", "mug", "tag:gift", "category:7", "brand:acme", "price:3"])
    }

    @Test("two items with the same title are each other's nearest content neighbours; vectors are unit length")
    func sameTitle() throws {
        let documents = [
            ItemDocument(title: "WHITE HANGING HEART T-LIGHT HOLDER", category: 1),
            ItemDocument(title: "RED WOOLLY HOTTIE WHITE HEART", category: 1),
            ItemDocument(title: "JUMBO BAG RED RETROSPOT", category: 2),
            ItemDocument(title: "WHITE HANGING HEART T-LIGHT HOLDER", category: 1),
            ItemDocument(title: "红色连衣裙", category: 3),
            ItemDocument(title: "红色连衣裙", category: 3),
        ]
        let vectors = ContentVectors.fit(documents)
        for r in 0..<vectors.vectors.rows {
            let norm = vectors.vectors.values[vectors.vectors.rowStart[r]..<vectors.vectors.rowStart[r + 1]].reduce(0) { $0 + $1 * $1 }
            #expect(abs(norm - 1) < 1e-5)
        }
        let table = try vectors.neighbourTable(k: 2)
        func nearest(_ i: Int) -> Int? {
            (table.rowStart[i]..<table.rowStart[i + 1]).max { table.values[$0] < table.values[$1] }.map { Int(table.indices[$0]) }
        }
        #expect(nearest(0) == 3 && nearest(3) == 0 && nearest(4) == 5 && nearest(5) == 4)
        // A document not in the model, vectorised with its vocabulary, finds its twin.
        let fresh = vectors.nearest(vectors.vector(ItemDocument(title: "jumbo bag retrospot", category: 2)), k: 1)
        #expect(fresh.first?.index == 2)
        #expect(vectors.nearest(vectors.vector(ItemDocument(title: "nothing known")), k: 3).isEmpty)
    }

    @Test(
        """
        persona train content: published with its report and vectors; a catalogue item nobody met is recommendable \
        and similar by its description
        """
    )
    func contentEndToEnd() async throws {
        try await withRecommendSuite { ingest, feature, model, recommend in
            // Three tastes of items with titles of their own; item 999 is upserted, never met.
            // Each title: its taste's three words and a colour of its own.
            let words = [["ceramic", "mug", "coffee"], ["woollen", "scarf", "winter"], ["garden", "spade", "steel"]]
            let colours = ["red", "blue", "green", "amber", "ivory", "olive", "coral", "slate"]
            var catalogue: [Event] = []
            for g in 0..<3 {
                for k in 1...8 {
                    catalogue.append(
                        upsert(Int64(100 * g + k), title: "\(words[g].joined(separator: " ")) \(colours[k - 1])", category: Int64(10 + g)))
                }
            }
            catalogue.append(upsert(999, title: "Woollen winter scarf", category: 11, at: baseMs + 1))
            try await append(ingest.client, catalogue)
            try await append(ingest.client, shop())
            try await waitConsumed(ingest: ingest.client, consumer: model.client)
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)

            let id = try await train(model.client, .content, publish: true)
            let status = try await waitJob(model.client, id)
            #expect(status.state == .succeeded && status.name == "content", "\(status.message)")
            var r = GetReportRequest()
            r.name = "content"
            let report = try await model.client.call(ModelAPI.getReport, r)
            #expect(report.kind == .content && report.metrics.contains { $0.name.hasPrefix("ndcg@") })
            // Beside the collaborative kinds, fitted on the same split.
            #expect(report.comparison.map(\.model) == ["content", "als", "item_knn", "popularity"])
            let (_, bytes) = try await fetchArtifact(model.client, "content")
            let published = try ModelArtifact.decode(bytes)
            #expect(
                published.kind == .content && published.itemIDs.contains(999) && published.content?.vectors.rows == published.itemIDs.count)
            try await waitHealth(recommend.client, "models", "content=1")

            var similar = SimilarItemsRequest()
            similar.itemId = 999
            similar.n = 3
            let like999 = try await recommend.client.call(RecommendAPI.similarItems, similar).items
            #expect(like999.count == 3 && like999.allSatisfy { (101...108).contains($0.itemId) }, "\(like999.map(\.itemId))")
            #expect(like999.first?.reason == #"described like "Woollen winter scarf""#)

            // A new user with one view of a scarf: the never-met scarf 999 is among the answers, with a content reason
            // naming the scarf they viewed by its title.
            try await append(ingest.client, [view(7000, 101, at: baseMs + 86_400_000, category: 11)])
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            var request = RecommendRequest()
            request.userId = 7000
            request.n = 5
            request.explain = true
            let answer = try await recommend.client.call(RecommendAPI.recommend, request)
            let new = answer.items.first { $0.itemId == 999 }
            #expect(new?.reason == #"like "woollen scarf winter red" you viewed"#, "\(answer.items.map { "\($0.itemId): \($0.reason)" })")
            #expect(answer.items.allSatisfy { (101...108).contains($0.itemId) || $0.itemId == 999 }, "\(answer.items.map(\.itemId))")

            // A brand-new scarf upserted after the content model was trained: similar and
            // recommendable from its first upsert, with no retrain.
            try await append(ingest.client, [upsert(1000, title: "winter scarf, woollen", category: 11, at: baseMs + 2 * 86_400_000)])
            // The reasons name it by the title the feature service lists once it has read the upsert.
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            similar.itemId = 1000
            var like1000: [ScoredItem] = []
            let deadline = ContinuousClock.now + .seconds(20)
            while like1000.isEmpty && ContinuousClock.now < deadline {
                like1000 = try await recommend.client.call(RecommendAPI.similarItems, similar).items
                if like1000.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(
                like1000.count == 3 && like1000.allSatisfy { (101...108).contains($0.itemId) || $0.itemId == 999 }
                    && like1000.first?.reason == #"described like "winter scarf, woollen""#,
                "\(like1000.map { "\($0.itemId): \($0.reason)" })")
            try await append(ingest.client, [view(7001, 102, at: baseMs + 2 * 86_400_000 + 1000, category: 11)])
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            request.userId = 7001
            request.n = 10
            let fresh = try await recommend.client.call(RecommendAPI.recommend, request).items.first { $0.itemId == 1000 }
            #expect(
                fresh?.reason == #"like "woollen scarf winter blue" you viewed"# && fresh?.source == "content",
                "\(String(describing: fresh))")
        }
    }
}
