// The risk console's pages over the risk benchmark's filled decision store: a console on
// loopback asking that risk-control, an admin signed in as a browser would be, each page
// fetched 20 times to warm and 100 times timed, from request to the whole page read.
import Console
import Foundation
import Logging
import Math
import ServiceKit
import TestSupport

func consolePageTimes(
    riskPort: Int, modelPort: Int, others: [Peer: (host: String, port: Int)], decisions: Int, users: Int
) async throws -> [(page: String, p50: Double, p99: Double)] {
    let dir = temporaryBenchDirectory("console")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var settings = ConsoleSettings(port: 0, dataDir: dir)
    (settings.riskPort, settings.modelPort, settings.bcryptCost) = (riskPort, modelPort, 4)
    settings.otherPeers = others
    var logger = Logger(label: "console-bench")
    logger.logLevel = .error
    let console = try Console(settings: settings, logger: logger)
    try People(path: dir + "/console.db", bcryptCost: 4).add(name: "bench", role: .admin, password: "bench password", nowMs: 0)
    let (ports, sink) = AsyncStream.makeStream(of: Int.self)
    let running = Task { try await console.application { sink.yield($0) }.runService(gracefulShutdownSignals: []) }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else { throw ServiceError("the console did not start") }
    let browser = Browser(port: port)
    let token = Browser.csrf(try await browser.get("/signin")) ?? ""
    guard try await browser.post("/signin", ["csrf": token, "name": "bench", "password": "bench password"]).status == 303 else {
        throw ServiceError("the benchmark could not sign in to the console")
    }
    var rng = SplitMix(seed: 9)
    // Open cases to open: the ids on the order team's first page.
    let queue = try await browser.get("/cases?team=order").body
    let caseIDs = queue.ranges(of: /href="\/cases\/([0-9]+)"/).compactMap { Int(queue[$0].dropFirst(13).dropLast()) }
    guard !caseIDs.isEmpty else { throw ServiceError("the filled store has no open case") }
    let pages: [(String, () -> String)] = [
        ("Dashboard", { "/dashboard" }),
        ("Decisions, newest 50", { "/decisions" }),
        ("Decisions, reviews", { "/decisions?action=review" }),
        ("Decisions of a rule", { "/decisions?reason=velocity_\(rng.below(20))" }),
        ("Decisions of a user", { "/decisions?user=\(1 + rng.below(users))" }),
        ("Decisions, score 900 and up, a day", { "/decisions?min_score=900&from=\(day(-1))" }),
        ("A decision", { "/decisions/\(1 + rng.below(decisions))" }),
        ("Replay of a decision", { "/decisions/\(1 + rng.below(decisions))/replay" }),
        ("Cases, every queue", { "/cases" }),
        ("Cases of a team", { "/cases?team=order" }),
        ("A case", { "/cases/\(caseIDs[rng.below(caseIDs.count)])" }),
        ("Rules", { "/rules" }),
        ("Lists", { "/lists" }),
        // Recommend does not run here: the merged page would wait its 1 s for it.
        ("Audit, risk-control's", { "/audit?service=risk-control" }),
    ]
    var rows: [(String, Double, Double)] = []
    for (name, path) in pages {
        for _ in 0..<20 { _ = try await browser.get(path()) }
        var times: [Double] = []
        for _ in 0..<100 {
            let p = path()
            let t = ContinuousClock.now
            let page = try await browser.get(p)
            times.append(t.duration(to: .now) / .milliseconds(1))
            guard page.status == 200 else { throw ServiceError("console \(p) answered \(page.status)") }
        }
        rows.append((name, percentile(times, 0.5), percentile(times, 0.99)))
        say(String(format: "console: %@: p50 %.1f ms, p99 %.1f ms", name as NSString, percentile(times, 0.5), percentile(times, 0.99)))
    }
    running.cancel()
    _ = await running.result
    await console.close()
    return rows
}

/// The date `offset` days from today, yyyy-mm-dd (UTC).
private func day(_ offset: Int) -> String {
    let f = DateFormatter()
    f.dateFormat = "yyyy-MM-dd"
    f.timeZone = TimeZone(identifier: "UTC")
    return f.string(from: Date().addingTimeInterval(Double(offset) * 86_400))
}
