import ArgumentParser
import Datasets
import Foundation
import RPC
import Recommenders
import Wire

/// `persona eval recommend --test FILE --format F`: held-out interactions of users already
/// imported, scored through the Recommend call itself.
struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate the running suite on held-out data.",
        subcommands: [EvalSplit.self, EvalRecommend.self, EvalFraud.self])
}

struct EvalRecommend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract:
            """
            Call Recommend for every user of a held-out file and score the answers (precision, recall, NDCG, hit \
            rate at K, coverage, fallback share).
            """
    )

    @Option(help: "The held-out interactions (a dataset file of users already imported).") var test: String
    @Option(help: "Its format: taobao, online-retail, cdnow, ratings or fraud.") var format: String
    @Option(
        help: """
            The training part the suite imported: a user's items in it are what they had before (default: the items \
            in their profile's recent lists).
            """
    ) var train: String?
    @Option(name: .shortAndLong, help: "K, the length of each list.") var k: UInt32 = 10
    @Option(help: "At most this many users (0: every one), the first by id.") var maxUsers = 0
    @OptionGroup var endpoints: Endpoints

    func validate() throws {
        guard DatasetFormat(rawValue: format) != nil else {
            throw ValidationError("unknown format '\(format)'; one of \(DatasetFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1...500).contains(k) else { throw ValidationError("k must be 1...500") }
    }

    /// The items each user interacted with in `events` (views, carts, favourites, reviews,
    /// purchased lines).
    static func items(_ events: [Event]) -> [Int64: Set<Int64>] {
        var out: [Int64: Set<Int64>] = [:]
        for e in events where e.userId > 0 {
            switch e.kind {
            case .view, .click, .addToCart, .favorite: if e.itemId > 0 { out[e.userId, default: []].insert(e.itemId) }
            case .review: if let r = e.review, r.itemId > 0 { out[e.userId, default: []].insert(r.itemId) }
            case .purchase:
                if let lines = e.order?.lines, !lines.isEmpty {
                    for l in lines where l.itemId > 0 && l.quantity > 0 { out[e.userId, default: []].insert(l.itemId) }
                } else if e.itemId > 0 {
                    out[e.userId, default: []].insert(e.itemId)
                }
            default: break
            }
        }
        return out
    }

    /// The items of each user in a dataset file.
    func items(file: String) throws -> [Int64: Set<Int64>] {
        var skips = DatasetFormat.Skips()
        return Self.items(DatasetFormat(rawValue: format)!.events(lines: try ImportCommand.lines(of: file), skips: &skips))
    }

    func run() async throws {
        let held = try items(file: test)
        let before = try train.map { try items(file: $0) }
        var users = held.keys.sorted()
        if maxUsers > 0 { users = Array(users.prefix(maxUsers)) }
        let recommend = try endpoints.endpoint("recommend")
        let featureClient = try endpoints.featureReplicas(),
            recommendClient = RPCClient(host: recommend.host, port: recommend.port)
        var index: [Int64: Int32] = [:]
        func dense(_ id: Int64) -> Int32 {
            if let i = index[id] { return i }
            let i = Int32(index.count)
            index[id] = i
            return i
        }
        var lists: [[Int32]] = [], tests: [[Int32]] = []
        var fallbacks = 0, unknown = 0, repeats = 0, recommended = 0
        var latencies: [Duration] = []
        // By how many items the user had: a long history must not make the call slower.
        var byHistory: [(items: Int, latency: Duration)] = []
        var bar = ProgressBar()
        do {
            for (n, user) in users.enumerated() {
                // The protocol leaves out what the user already had: their items in the profile.
                var lookup = GetProfileRequest()
                lookup.userId = user
                let profile = try await featureClient.call(FeatureAPI.getProfile, lookup, user: user, timeout: .seconds(5))
                guard profile.found, let p = profile.profile else {
                    unknown += 1
                    continue
                }
                let had = before?[user] ?? Set(p.recentViews + p.recentCarts + p.recentPurchases)
                let expected = held[user]!.subtracting(had)
                guard !expected.isEmpty else { continue }
                var request = RecommendRequest()
                request.userId = user
                request.n = k
                request.surface = "eval"
                let start = ContinuousClock.now
                let answer = try await recommendClient.call(RecommendAPI.recommend, request, timeout: .seconds(5))
                latencies.append(start.duration(to: .now))
                byHistory.append((had.count, latencies.last!))
                if answer.fallback { fallbacks += 1 }
                repeats += answer.items.filter { had.contains($0.itemId) }.count
                recommended += answer.items.count
                lists.append(answer.items.map { dense($0.itemId) })
                tests.append(expected.sorted().map(dense))
                bar.draw(fraction: Double(n + 1) / Double(users.count), text: "\(n + 1)/\(users.count) users")
            }
        } catch let error as RPCError {
            await featureClient.shutdown()
            await recommendClient.shutdown()
            throw ValidationError("evaluation stopped: \(error)")
        }
        bar.finish()
        await featureClient.shutdown()
        await recommendClient.shutdown()
        guard !lists.isEmpty else {
            print("no user of \(test) has a profile and held-out items: import the training part first")
            throw ExitCode(1)
        }
        let m = RankingMetrics.evaluate(lists: lists, test: tests, catalogue: max(index.count, 1), ks: [Int(k)])[0]
        // Latency by how many items the user had: the serving window caps what a call reads
        // (the latest items of each kind), so beyond it a longer history costs nothing more.
        let buckets: [(String, Range<Int>)] = [
            ("under 10", 0..<10), ("10 to 99", 10..<100), ("100 to 299", 100..<300), ("300 or more", 300..<Int.max),
        ]
        let byLength = buckets.map { label, range in
            ["  users who had \(label) items", Table.quantiles(byHistory.filter { range.contains($0.items) }.map(\.latency))]
        }
        print(
            """
            evaluated \(m.users) users through Recommend (\(unknown) without a profile left out; held-out items they had \
            before left out)
            """
        )
        print(
            Table.render(
                header: ["METRIC", "VALUE"],
                rows: m.named.filter { !$0.0.hasPrefix("coverage") }.map { [$0.0, String(format: "%.4f", $0.1)] } + [
                    ["fallback share", String(format: "%.4f", Double(fallbacks) / Double(lists.count))],
                    ["distinct items recommended", "\(Set(lists.joined()).count)"],
                    ["share of items the user had", String(format: "%.4f", Double(repeats) / Double(max(recommended, 1)))],
                    ["Recommend p50 / p99", Table.quantiles(latencies)],
                ] + byLength))
    }
}
