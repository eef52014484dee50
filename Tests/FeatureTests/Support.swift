import Datasets
import Foundation
import Ingest
import RPC
import ServiceKit
import TestSupport
import Wire

@testable import Feature

let minute: Int64 = 60_000
let hour: Int64 = 3_600_000
let day: Int64 = 86_400_000
/// 2024-03-04 00:00:00 UTC, a Monday.
let monday: Int64 = 1_709_510_400_000

func event(_ kind: EventKind, user: Int64, at ms: Int64, item: Int64 = 0, category: Int64 = 0, id: String? = nil) -> Event {
    var e = Event()
    e.eventId = id ?? "\(kind.rawValue)-\(user)-\(ms)-\(item)-\(UUID().uuidString.prefix(8))"
    e.kind = kind
    e.userId = user
    e.timestampMs = ms
    e.itemId = item
    e.categoryId = category
    return e
}

func purchase(user: Int64, at ms: Int64, total: Double, item: Int64 = 1, price: Double? = nil, order: String? = nil) -> Event {
    var e = event(.purchase, user: user, at: ms)
    var o = Order()
    o.orderId = order ?? "o-\(user)-\(ms)"
    o.total = total
    var line = OrderLine()
    line.itemId = item
    line.quantity = 1
    line.unitPrice = price ?? total
    o.lines = [line]
    e.order = o
    return e
}

extension FeatureState {
    /// Folds events as if they came from partition 0 at consecutive offsets.
    func foldAll(_ events: [Event]) {
        for (i, e) in events.enumerated() { _ = fold(e, partition: 0, offset: UInt64(i)) }
    }

    func view(_ user: Int64) -> ProfileView? {
        guard let u = users[user] else { return nil }
        return ProfileView(u, state: self, nowMs: watermarkMs, cuts: rfmCuts(refresh: true))
    }
}

/// One row of a Taobao UserBehavior file (user, item, category, behaviour, seconds), read
/// plainly for the tests' own recounts.
struct TaobaoRow {
    let user: Int64
    let item: Int64
    let category: Int64
    let behavior: String
    let seconds: Int64

    /// The complete 9-day histories of 43 Taobao users (a fixture in Tests/Fixtures, cut from the Taobao UserBehavior dataset).
    static let sample43 = "Tests/Fixtures/taobao-43-users.csv"

    /// The first `limit` lines of a Taobao fixture file.
    static func lines(_ file: String, limit: Int = .max) throws -> [Substring] {
        let path = repositoryRoot.appendingPathComponent(file).standardized.path
        return Array(try String(contentsOfFile: path, encoding: .utf8).split(whereSeparator: \.isNewline).prefix(limit))
    }

    /// A larger log for the crash test: `copies` copies of the 43 histories, each copy's users
    /// renumbered (user + copy·10⁸), merged in time order as a shop's log would interleave them.
    static func manyUsers(copies: Int) throws -> [Substring] {
        let rows = try lines(sample43)
        var out: [(seconds: Int64, copy: Int, line: Substring)] = []
        for copy in 0..<copies {
            for line in rows {
                let f = line.split(separator: ",")
                let renumbered = "\(Int64(f[0])! + Int64(copy) * 100_000_000),\(f[1...].joined(separator: ","))"
                out.append((Int64(f[4])!, copy, Substring(renumbered)))
            }
        }
        return out.enumerated().sorted { ($0.element.seconds, $0.offset) < ($1.element.seconds, $1.offset) }.map(\.element.line)
    }

    static func load() throws -> [TaobaoRow] {
        try lines(sample43).map { line in
            let f = line.split(separator: ",")
            return TaobaoRow(user: Int64(f[0])!, item: Int64(f[1])!, category: Int64(f[2])!, behavior: String(f[3]), seconds: Int64(f[4])!)
        }
    }

    var kind: EventKind {
        switch behavior {
        case "pv": .view
        case "cart": .addToCart
        case "fav": .favorite
        default: .purchase
        }
    }

    /// The events `persona import --format taobao` makes of these lines (the CLI's own mapping).
    static func events(_ lines: [Substring]) -> [Event] {
        var skips = DatasetFormat.Skips()
        let events = DatasetFormat.taobao.events(lines: lines, skips: &skips)
        precondition(skips.byReason.isEmpty && events.count == lines.count, "rows skipped: \(skips.byReason)")
        return events
    }
}

/// An in-process ingest service on free ports, stopped after `body` (which gets its client and port).
func withIngest<R>(
    dataDir: String = temporaryDirectory(), settings: IngestSettings = IngestSettings(), _ body: (RPCClient, Int) async throws -> R
) async throws -> R {
    try await withHostedService(IngestService.self, settings: settings, dataDir: dataDir) { try await body($0.client, $0.rpcPort) }
}

/// An in-process feature service consuming the ingest at `ingestPort`, stopped after `body`.
func withFeature<R>(
    ingestPort: Int, dataDir: String = temporaryDirectory(), partitions: Set<Int>? = nil,
    _ body: (RPCClient, ServiceHost<FeatureService>) async throws -> R
) async throws -> R {
    var settings = FeatureSettings()
    settings.ingestPort = ingestPort
    settings.partitions = partitions
    settings.readWait = .milliseconds(200)
    // No model service: the profiles carry no published segments.
    settings.modelPort = freePort()
    return try await withHostedService(FeatureService.self, settings: settings, dataDir: dataDir) { try await body($0.client, $0.host) }
}

func profiles(_ feature: RPCClient, _ users: [Int64]) async throws -> [Int64: UserProfile] {
    var out: [Int64: UserProfile] = [:]
    for u in users {
        var r = GetProfileRequest()
        r.userId = u
        let response = try await feature.call(FeatureAPI.getProfile, r)
        if response.found { out[u] = response.profile }
    }
    return out
}
