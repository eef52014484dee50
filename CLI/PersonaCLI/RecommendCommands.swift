import ArgumentParser
import Foundation
import RPC
import Wire

/// Recommended items as a table.
enum RecommendTable {
    static func table(_ items: [ScoredItem], titles: [Int64: String] = [:]) -> String {
        Table.render(
            header: ["#", "ITEM", "TITLE", "CATEGORY", "SCORE", "SOURCE", "REASON"],
            rows: items.enumerated().map { n, i in
                [
                    "\(n + 1)", "\(i.itemId)", titles[i.itemId].map { String($0.prefix(36)) } ?? "-",
                    i.categoryId == 0 ? "-" : "\(i.categoryId)",
                    String(format: "%.3f", i.score), i.source, i.reason,
                ]
            })
    }

    /// The catalogue titles of `items`, from the feature service; none when it cannot say.
    static func titles(_ items: [ScoredItem], _ endpoints: Endpoints) async -> [Int64: String] {
        var request = GetItemsRequest()
        request.itemIds = items.map(\.itemId)
        guard !request.itemIds.isEmpty,
            let found = try? await endpoints.call("feature", { try await $0.call(FeatureAPI.getItems, request, timeout: .seconds(2)) })
        else { return [:] }
        return Dictionary(
            found.items.filter { !$0.title.isEmpty }.map { ($0.itemId, $0.title.trimmingCharacters(in: .whitespaces)) },
            uniquingKeysWith: { a, _ in a })
    }

    /// Each item's terms: the points every source gave it, then each boost's factor.
    static func explanation(_ items: [ScoredItem]) -> String {
        var rows: [[String]] = []
        for (n, i) in items.enumerated() {
            for (k, c) in i.contributions.enumerated() {
                let value =
                    switch c.kind {
                    case .boost: String(format: "x%.3f", c.value)
                    case .diversity: String(format: "~%.3f", c.value)
                    default: String(format: "+%.3f", c.value)
                    }
                rows.append([k == 0 ? "\(n + 1)" : "", k == 0 ? "\(i.itemId)" : "", c.name, value, c.detail])
            }
        }
        return Table.render(header: ["#", "ITEM", "TERM", "VALUE", "DETAIL"], rows: rows)
    }
}

/// `persona recommend USER`: a user's recommendations with their reasons.
struct RecommendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recommend", abstract: "Recommend items to a user, each with its reason.")

    @Argument(help: "The user id.") var user: Int64
    @Option(name: .shortAndLong, help: "How many items.") var n: UInt32 = 10
    @Option(help: "Only items of this category (repeatable).") var category: [Int64] = []
    @Option(help: "Item ids to leave out (repeatable).") var exclude: [Int64] = []
    @Option(help: "Lowest price.") var minPrice: Double = 0
    @Option(help: "Highest price (0: no limit).") var maxPrice: Double = 0
    @Flag(help: "Only items in stock.") var inStock = false
    @Option(help: "At most this many items of one category (0: no limit).") var maxPerCategory: UInt32 = 0
    @Option(help: "Diversity by maximal marginal relevance, 0 (off) to 1.") var diversity: Float = 0
    @Option(help: "The page or slot asking, recorded with the impression.") var surface = "cli"
    @Flag(help: "Show each item's terms: the points of every source and the factor of every boost.") var explain = false
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var request = RecommendRequest()
        request.userId = user
        request.n = n
        request.categoryIds = category
        request.excludeItemIds = exclude
        request.minPrice = minPrice
        request.maxPrice = maxPrice
        request.inStockOnly = inStock
        request.maxPerCategory = maxPerCategory
        request.diversity = diversity
        request.explain = explain
        request.surface = surface
        let started = ContinuousClock.now
        let response = try await endpoints.call("recommend") { try await $0.call(RecommendAPI.recommend, request, timeout: .seconds(5)) }
        let took = ContinuousClock.now - started
        let model = response.modelName.isEmpty ? "no model published" : "\(response.modelName) v\(response.modelVersion)"
        let fallback = response.fallback ? " (fallback: \(response.fallbackReason))" : ""
        print(
            "user \(user): \(response.items.count) items from \(model) in \(Table.latency(took))\(fallback)  request \(response.requestId)")
        print(RecommendTable.table(response.items, titles: await RecommendTable.titles(response.items, endpoints)))
        if explain {
            print("")
            print(RecommendTable.explanation(response.items))
        }
    }
}

/// `persona similar ITEM`: items like an item.
struct SimilarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "similar", abstract: "Items similar to an item.")

    @Argument(help: "The item id.") var item: Int64
    @Option(name: .shortAndLong, help: "How many items.") var n: UInt32 = 10
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var request = SimilarItemsRequest()
        request.itemId = item
        request.n = n
        let response = try await endpoints.call("recommend") { try await $0.call(RecommendAPI.similarItems, request, timeout: .seconds(5)) }
        guard !response.items.isEmpty else {
            print("item \(item): no similar items (no published model knows it)")
            throw ExitCode(1)
        }
        print(RecommendTable.table(response.items, titles: await RecommendTable.titles(response.items, endpoints)))
    }
}

/// `persona popular [CATEGORY]`: the most popular items, in a category or overall.
struct PopularCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "popular", abstract: "The most popular items, overall or in a category.")

    @Argument(help: "A category id (default: every item).") var category: Int64 = 0
    @Option(name: .shortAndLong, help: "How many items.") var n: UInt32 = 10
    @Option(help: "Views over 1h, 24h, 7d, 30d or lifetime, live from the feature service (default: the published popularity model).")
    var window: String = ""
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var request = PopularRequest()
        request.categoryId = category
        request.n = n
        request.window = window
        let response = try await endpoints.call("recommend") { try await $0.call(RecommendAPI.popular, request, timeout: .seconds(5)) }
        print(RecommendTable.table(response.items, titles: await RecommendTable.titles(response.items, endpoints)))
    }
}
