import ArgumentParser
import Foundation
import RPC
import Wire

/// Recommended items as a table.
enum RecommendTable {
    static func table(_ items: [ScoredItem]) -> String {
        Table.render(
            header: ["#", "ITEM", "SCORE", "SOURCE", "REASON"],
            rows: items.enumerated().map { n, i in ["\(n + 1)", "\(i.itemId)", String(format: "%.3f", i.score), i.source, i.reason] })
    }
}

/// `persona recommend USER`: a user's recommendations with their reasons.
struct RecommendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recommend", abstract: "Recommend items to a user, each with its reason.")

    @Argument(help: "The user id.") var user: Int64
    @Option(name: .shortAndLong, help: "How many items.") var n: UInt32 = 10
    @Option(help: "Only items of this category.") var category: Int64 = 0
    @Option(help: "Item ids to leave out (repeatable).") var exclude: [Int64] = []
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var request = RecommendRequest()
        request.userId = user
        request.n = n
        request.categoryId = category
        request.excludeItemIds = exclude
        request.surface = "cli"
        let response = try await endpoints.call("recommend") { try await $0.call(RecommendAPI.recommend, request, timeout: .seconds(5)) }
        let model = response.modelName.isEmpty ? "no model published" : "\(response.modelName) v\(response.modelVersion)"
        print("user \(user): \(response.items.count) items from \(model)\(response.fallback ? " (fallback)" : "")  request \(response.requestId)")
        print(RecommendTable.table(response.items))
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
        print(RecommendTable.table(response.items))
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
        print(RecommendTable.table(response.items))
    }
}
