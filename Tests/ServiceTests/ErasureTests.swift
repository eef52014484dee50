import Foundation
import RPC
import Store
import TestSupport
import Testing
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// `persona erase` against five real processes, then every file of every data directory
/// read for the user.
@Suite("Erasure end to end", .serialized, .timeLimit(.minutes(5)))
struct ErasureTests {
    /// The erased user: an id whose 8 little-endian bytes (binary tables) and 6 big-endian
    /// bytes (SQLite's integer) are unlike anything else in the files.
    static let user: Int64 = 0x5EC0_FFEE_D00D
    static let markers = ["zebra-erase-marker", "review-erase-marker"]

    static func events() -> [Event] {
        var events: [Event] = []
        let start: Int64 = 1_764_000_000_000
        var n = 0
        func add(_ user: Int64, _ kind: EventKind, item: Int64 = 0, _ fill: (inout Event) -> Void = { _ in }) {
            var e = Event()
            n += 1
            e.eventId = "erase-test-\(n)"
            e.kind = kind
            e.userId = user
            e.timestampMs = start + Int64(n) * 60_000
            e.itemId = item
            e.categoryId = item == 0 ? 0 : 100 + item % 3
            e.deviceId = "device-\(user)"
            fill(&e)
            events.append(e)
        }
        // Thirty shoppers view and buy from twenty items, so that ALS has users beside ours.
        func order(_ id: String, item: Int64) -> (inout Event) -> Void {
            { e in
                var o = Order()
                o.orderId = id
                var line = OrderLine()
                line.itemId = item
                line.quantity = 1
                line.unitPrice = 12
                o.lines = [line]
                o.total = 12
                o.currency = "EUR"
                e.order = o
            }
        }
        for u in Int64(1)...30 {
            for k in Int64(0)..<6 { add(u, .view, item: 1 + (u * 7 + k * 3) % 20) }
            add(u, .purchase, item: 1 + (u * 5) % 20, order("order-\(u)", item: 1 + (u * 5) % 20))
        }
        for item in Int64(1)...5 { add(user, .view, item: item) }
        add(user, .addToCart, item: 3)
        add(user, .purchase, item: 3, order("order-erase-1", item: 3))
        add(user, .search) { e in
            var s = Search()
            s.query = markers[0]
            e.search = s
        }
        add(user, .review) { e in
            var r = Review()
            r.itemId = 3
            r.rating = 5
            r.text = markers[1]
            e.review = r
        }
        return events
    }

    @Test(
        """
        persona erase: the profile, interactions, factor rows, impressions, stored events and list entries go; \
        decisions stay, pseudonymised; no file of any service holds the user
        """
    )
    func eraseEverywhere() async throws {
        let user = Self.user
        let names = ["ingest", "feature", "model", "risk-control", "recommend"]
        let ports = Dictionary(uniqueKeysWithValues: names.map { ($0, freePort()) })
        let dataDirs = Dictionary(uniqueKeysWithValues: names.map { ($0, temporaryDirectory()) })
        var environment: [String: String] = [:]
        for name in names {
            environment["PERSONA_\(name.uppercased().replacingOccurrences(of: "-", with: "_"))_ADDR"] = "127.0.0.1:\(ports[name]!)"
        }
        let processes = try names.map { name in
            try ChildProcess(
                "persona-\(name)",
                ["--port", "\(ports[name]!)", "--metrics-port", "0", "--data-dir", dataDirs[name]!, "--log-level", "info"],
                environment: environment)
        }
        defer { processes.forEach { $0.kill() } }
        var clients: [String: RPCClient] = [:]
        for name in names {
            clients[name] = RPCClient(host: "127.0.0.1", port: ports[name]!)
            _ = try await waitHealthy(clients[name]!)
        }
        let (ingest, feature, model, risk, recommend) = (
            clients["ingest"]!, clients["feature"]!, clients["model"]!, clients["risk-control"]!, clients["recommend"]!
        )

        // The user's history, a decision, an ALS model with their row, a served answer.
        var append = AppendRequest()
        append.events = Self.events()
        let appended = try await ingest.call(IngestAPI.append, append, timeout: .seconds(10))
        #expect(appended.accepted == UInt32(append.events.count))
        // A producer cannot erase: only Ingest/Erase writes erasure events.
        var forged = AppendRequest()
        var erasure = Event()
        erasure.eventId = "forged-erasure"
        erasure.kind = .erasure
        erasure.userId = user
        erasure.timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
        forged.events = [erasure]
        #expect(try await ingest.call(IngestAPI.append, forged).statuses.first?.reason == .unknownKind)
        var profile = GetProfileRequest()
        profile.userId = user
        try await eventually { try await feature.call(FeatureAPI.getProfile, profile).found }
        var score = ScoreRequest()
        score.orderId = "order-erase-2"
        score.userId = user
        score.amount = 40
        score.currency = "EUR"
        score.deviceId = "device-\(user)"
        _ = try await risk.call(RiskAPI.score, score, timeout: .seconds(5))
        // A block-list entry naming the user: it travels the decision log, and goes with the erasure.
        var block = UpdateListsRequest()
        var entry = ListEntry()
        (entry.list, entry.field, entry.value, entry.reason) = (.block, .user, "\(user)", Self.markers[0])
        block.add = [entry]
        #expect(try await risk.call(RiskAPI.updateLists, block).size == 1)
        let ends = try await ingest.call(IngestAPI.logInfo, LogInfoRequest()).partitions.sorted { $0.partition < $1.partition }.map(
            \.endOffset)
        try await eventually {
            let offsets = try await model.call(HealthAPI.check, HealthRequest()).checks.first { $0.key == "offsets" }?.value.split(
                separator: ","
            ).compactMap { UInt64($0) }
            return offsets.map { zip($0, ends).allSatisfy { $0 >= $1 } } ?? false
        }
        let job = try await train(model, .als, params: ["factors": "8", "iterations": "5"], publish: true)
        #expect(try await waitJob(model, job).state == .succeeded)
        var ask = RecommendRequest()
        ask.userId = user
        ask.n = 5
        try await eventually { try await recommend.call(RecommendAPI.recommend, ask).modelName == "als" }
        // The served answer's impression reaches the log before the erasure.
        try await eventually { try await Self.readAll(ingest).contains { $0.event?.kind == .impression && $0.event?.userId == user } }

        // Erase, through the CLI, and wait for every service to apply it.
        let cli = ChildProcess.productsDirectory.appendingPathComponent("persona").path
        let run = try await runProcess(cli, ["erase", "\(user)", "--yes", "--wait"], environment: environment)
        let said = String(decoding: run.stdout, as: UTF8.self)
        #expect(run.status == 0, "persona erase: \(run.stderr)")
        #expect(said.contains("erased user \(user)") && said.contains("applied by feature, model, risk-control and recommend"), "\(said)")
        let removed = try #require(said.split(separator: ";").last?.split(separator: " ").first.flatMap { Int($0) })
        #expect(removed >= Self.events().filter { $0.userId == user }.count, "\(said)")

        #expect(try await feature.call(FeatureAPI.getProfile, profile).found == false)
        try await eventually {
            try await model.call(ModelAPI.listModels, ListModelsRequest()).models.first { $0.name == "als" }?.revision == 1
        }
        var byUser = QueryDecisionsRequest()
        byUser.userId = user
        #expect(try await risk.call(RiskAPI.queryDecisions, byUser).decisions.isEmpty)
        var byOrder = QueryDecisionsRequest()
        byOrder.orderId = "order-erase-2"
        let kept = try await risk.call(RiskAPI.queryDecisions, byOrder).decisions
        #expect(kept.count == 1 && kept[0].userId < 0, "the decision stays, under a pseudonym: \(kept.map(\.userId))")
        #expect(try await risk.call(RiskAPI.getLists, GetListsRequest()).entries.isEmpty)
        // (No call for the user after the erasure: each would be a new event of theirs.)
        // The log holds the erasure and nothing else of the user.
        let left = try await Self.readAll(ingest).filter { $0.event?.userId == user }
        #expect(left.map { $0.event!.kind } == [.erasure], "\(left.map { $0.event!.kind })")

        // Stop everything (snapshots written on the way out), then read every file.
        for p in processes { p.signal(SIGTERM) }
        for p in processes { _ = await p.waitForExit(timeout: .seconds(20)) }
        for c in clients.values { await c.shutdown() }
        let le = withUnsafeBytes(of: user.littleEndian, Array.init)
        let be6 = Array(withUnsafeBytes(of: user.bigEndian, Array.init).suffix(6))
        let text = Self.markers.map { Array($0.utf8) }
        var files = 0
        for (name, dir) in dataDirs {
            let enumerator = FileManager.default.enumerator(atPath: dir)!
            while let relative = enumerator.nextObject() as? String {
                let path = dir + "/" + relative
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
                files += 1
                var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
                if relative.hasSuffix(".model") {
                    bytes =
                        (try? ArtifactContainer.open(bytes, magic: "PMDL", version: 1, maxBytes: 1 << 30))
                        ?? (try? ArtifactContainer.open(bytes, magic: "PCLF", version: 2, maxBytes: 1 << 30))
                        ?? (try? ArtifactContainer.open(bytes, magic: "PCLF", version: 1, maxBytes: 1 << 30)) ?? bytes
                }
                if relative.hasSuffix(".log"), relative.hasPrefix("partition-") { continue }
                for marker in text {
                    let holds = Self.contains(bytes, marker)
                    #expect(!holds, "\(name)/\(relative) holds '\(String(decoding: marker, as: UTF8.self))'")
                }
                let holdsID = Self.contains(bytes, le), holdsSQLiteID = Self.contains(bytes, be6)
                #expect(!holdsID, "\(name)/\(relative) holds the user id (8 bytes)")
                #expect(!holdsSQLiteID, "\(name)/\(relative) holds the user id (SQLite integer)")
            }
            // The log, record by record (segments are compressed): the erasure alone names the user.
            for partition in (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter({ $0.hasPrefix("partition-") }) ?? [] {
                let (log, _) = try SegmentedLog.open(.defaults(directory: dir + "/" + partition))
                var next: UInt64 = 0
                while true {
                    let r = try log.read(from: next, maxRecords: 1000, maxBytes: 1 << 22)
                    if r.records.isEmpty { break }
                    for (offset, record) in r.records {
                        for marker in text {
                            let holds = Self.contains(record, marker)
                            #expect(!holds, "\(partition) holds '\(String(decoding: marker, as: UTF8.self))' at \(offset)")
                        }
                        let stored = try StoredEvent(serializedBytes: record)
                        if stored.event?.userId == user {
                            #expect(stored.event?.kind == .erasure, "\(partition) at \(offset): \(stored.event?.kind.name ?? "")")
                        }
                    }
                    next = r.nextOffset
                }
                await log.close()
            }
        }
        #expect(files > 10, "only \(files) files read")

        // Risk-control's view rebuilt from its decision log has the decision as erasure left it.
        let riskDir = dataDirs["risk-control"]!
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: riskDir + "/decision-view.db" + suffix) }
        let restarted = try ChildProcess(
            "persona-risk-control", ["--port", "\(ports["risk-control"]!)", "--metrics-port", "0", "--data-dir", riskDir],
            environment: environment)
        defer { restarted.kill() }
        let again = RPCClient(host: "127.0.0.1", port: ports["risk-control"]!)
        defer { Task { await again.shutdown() } }
        _ = try await waitHealthy(again)
        #expect(try await again.call(RiskAPI.queryDecisions, byOrder).decisions == kept)
        #expect(try await again.call(RiskAPI.queryDecisions, byUser).decisions.isEmpty)
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return Data(haystack).range(of: Data(needle)) != nil
    }

    static func readAll(_ ingest: RPCClient) async throws -> [StoredEvent] {
        var all: [StoredEvent] = []
        let partitions = try await ingest.call(IngestAPI.logInfo, LogInfoRequest()).partitions.count
        for p in 0..<partitions {
            var read = ReadRequest()
            read.partition = UInt32(p)
            read.maxEvents = 10_000
            while true {
                let r = try await ingest.call(IngestAPI.read, read, timeout: .seconds(5))
                all += r.events
                guard r.nextOffset > read.fromOffset else { break }
                read.fromOffset = r.nextOffset
            }
        }
        return all
    }

    func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return }
            guard ContinuousClock.now < deadline else {
                Issue.record("condition not met within \(timeout)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
