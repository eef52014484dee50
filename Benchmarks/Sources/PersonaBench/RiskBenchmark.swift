// Risk-control over RPC, the whole path. The fraud rows of ../shared/data/fraud are split by
// a seeded shuffle: 80% are imported through ingest with their labels, and the fraud model is
// trained on them and published by the model service. A live suite (its own ingest and
// feature service, risk-control following that model) then sees every order in time order,
// as a shop would send them: the training part's events with their outcomes, and for each
// held-back order its signup events, then Score with the purchase's device and IP (features
// as of that moment), then the purchase event. ROC-AUC and PR-AUC come from the scores Score
// returned; LightGBM and scikit-learn are trained on the model's rows (the feature service's
// point-in-time export, split as the model service splits it) and score the very feature rows
// the decisions stored. Then Score's latency at fixed rates, open loop, and QueryDecisions
// over a store of `stored` decisions. Every service runs in this process on the machine's cores.
import CSQLite
import Datasets
import Feature
import Foundation
import Ingest
import Math
import Model
import PersonalData
import RPC
import RiskControl
import ServiceKit
import Wire

func riskBenchmark(output: String, sharedData: String, stored: Int, seconds: Double) async throws {
    let path = sharedData + "/fraud/Fraud_Data_train.csv"
    guard FileManager.default.fileExists(atPath: path) else {
        say("risk: \(path) is missing (set PERSONA_SHARED_DATA); skipped")
        return
    }
    let python = try peerPython()
    if (try? run(python, ["-c", "import lightgbm, sklearn"])) == nil {
        try run(python, ["-m", "pip", "install", "-q", "lightgbm", "scikit-learn"])
    }
    let work = temporaryBenchDirectory("risk")
    defer { try? FileManager.default.removeItem(atPath: work) }
    let keyFile = work + "/pseudonym.key"
    try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: keyFile))
    let countries = try? IPCountryTable(contentsOf: sharedData + "/fraud/IpAddress_to_Country.csv")

    // Rows by purchase time; each row's events (register, profile, purchase, label).
    var skips = DatasetFormat.Skips()
    let all = DatasetFormat.fraud.events(lines: try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n"), skips: &skips)
    var byUser: [Int64: [Event]] = [:]
    var users: [Int64] = []
    for e in all {
        if byUser[e.userId] == nil { users.append(e.userId) }
        byUser[e.userId, default: []].append(e)
    }
    // A seeded shuffle picks the held-back fifth.
    var order = users
    var shuffle = SplitMix(seed: 7)
    order.shuffle(using: &shuffle)
    let cut = order.count * 8 / 10
    let heldUsers = Set(order[cut...])
    let trainRows = users.filter { !heldUsers.contains($0) }.map { byUser[$0]! }
    let heldRows = users.filter { heldUsers.contains($0) }.map { byUser[$0]! }
    say("risk: \(users.count) rows; \(trainRows.count) imported with labels, \(heldRows.count) replayed through Score")

    // Where the model is trained: the training part through ingest, the feature service, the model service.
    let trainer = try await FraudTrainingSuite.start(keyFile: keyFile, countries: countries)
    let (model, ingestClient, featureClient) = (trainer.model, trainer.ingestClient, trainer.featureClient)
    try await appendAndFold(
        trainRows.flatMap { $0 }.sorted { $0.timestampMs < $1.timestampMs }, ingest: ingestClient, feature: featureClient)
    let trainSeconds = try await trainer.trainFraud()
    say("risk: fraud model trained and published in \(String(format: "%.1f", trainSeconds)) s")

    // The same export the model trained on, for the peers.
    var export = ExportTrainingRequest()
    export.chunkRows = 10_000
    var exported: [TrainingRow] = []
    var names: [String] = []
    var schema: UInt32 = 0
    while true {
        let page = try await featureClient.call(FeatureAPI.exportTraining, export)
        exported += page.rows
        (names, schema) = (page.names, page.schemaVersion)
        if page.done { break }
        export.cursor = page.nextCursor
    }
    let (fitPart, validPart, testPart) = ClassifierRun.parts(
        ClassifierRun.Rows(names: names, schemaVersion: schema, rows: exported), split: "random")

    // Where it is served: a shop's live suite (its own ingest and feature service) that
    // sees every order in time order, the training part's with their outcomes and the
    // held-back part's scored before their purchase, risk-control following the model above.
    var ingestSettings = IngestSettings()
    ingestSettings.pseudonymKeyFile = keyFile
    ingestSettings.ipCountries = countries
    let liveIngest = try await HostedBenchService<IngestService>.start(settings: ingestSettings)
    var liveConsumer = ConsumerSettings()
    liveConsumer.ingestPort = liveIngest.port
    liveConsumer.readWait = .milliseconds(100)
    var liveFeatureSettings = FeatureSettings(liveConsumer)
    liveFeatureSettings.modelPort = model.port
    let liveFeature = try await HostedBenchService<FeatureService>.start(settings: liveFeatureSettings)
    let liveIngestClient = RPCClient(host: "127.0.0.1", port: liveIngest.port)
    let liveFeatureClient = RPCClient(host: "127.0.0.1", port: liveFeature.port)
    var riskSettings = RiskSettings()
    (riskSettings.featurePort, riskSettings.ingestPort, riskSettings.modelPort) = (liveFeature.port, liveIngest.port, model.port)
    riskSettings.pseudonymKeyFile = keyFile
    riskSettings.ipCountries = countries
    let riskDir = work + "/risk-control"
    var risk = try await HostedBenchService<RiskControlService>.start(settings: riskSettings, directory: riskDir)
    var riskClient = RPCClient(host: "127.0.0.1", port: risk.port)
    while try await riskClient.call(HealthAPI.check, HealthRequest()).checks.first(where: { $0.key == "model" })?.value.hasPrefix("fraud=")
        != true
    {
        try await Task.sleep(for: .milliseconds(50))
    }

    // The replay, in time order: a row's signup at its time, its Score and purchase at the purchase's.
    enum Step { case signup([Event]), purchase(Event, label: Float) }  // signup: events appended as they are
    var timeline: [(ms: Int64, order: Int, step: Step)] = []
    for row in trainRows {
        for e in row { timeline.append((e.timestampMs, 0, .signup([e]))) }
    }
    for row in heldRows {
        let label: Float = row.count > 3 && row[3].label?.kind == .confirmedFraud ? 1 : 0
        timeline.append((row[0].timestampMs, 0, .signup(Array(row[0..<2]))))
        timeline.append((row[2].timestampMs, 1, .purchase(row[2], label: label)))
    }
    timeline.sort { ($0.ms, $0.order) < ($1.ms, $1.order) }
    var pending: [Event] = []
    var scores: [Float] = [], probabilities: [Float] = [], labels: [Float] = [], featureRows: [Float] = []
    var decisionNames: [String] = []
    var scoreLatencies: [Double] = []
    let replayStart = ContinuousClock.now
    for entry in timeline {
        switch entry.step {
        case .signup(let events):
            pending += events
        case .purchase(let buy, let label):
            if !pending.isEmpty {
                try await appendAndFold(pending, ingest: liveIngestClient, feature: liveFeatureClient)
                pending = []
            }
            let r = scoreRequest(for: buy)
            let t = ContinuousClock.now
            guard let d = try await riskClient.call(RiskAPI.score, r, timeout: .seconds(5)).decision else {
                throw ServiceError("Score answered no decision")
            }
            scoreLatencies.append(t.duration(to: .now) / .milliseconds(1))
            guard !d.degraded, d.modelName == "fraud" else {
                throw ServiceError("decision for \(r.orderId) made without the model or features: \(d.reasons.map(\.code))")
            }
            scores.append(Float(d.score))
            probabilities.append(d.probability)
            labels.append(label)
            decisionNames = d.featureNames
            featureRows += d.features
            pending.append(buy)
        }
    }
    let replaySeconds = replayStart.duration(to: .now) / .seconds(1)
    // The model reads a subset of the export's columns (the fraud target leaves out the
    // cohort-relative ones): the peers train and score on the same columns.
    let columns = decisionNames.compactMap { names.firstIndex(of: $0) }
    guard columns.count == decisionNames.count, !columns.isEmpty else {
        throw ServiceError("the decisions' features \(decisionNames) are not all among the export's \(names)")
    }
    func project(_ flat: [Float]) -> [Float] {
        stride(from: 0, to: flat.count, by: names.count).flatMap { row in columns.map { flat[row + $0] } }
    }
    let frauds = Int(labels.reduce(0, +))
    say("risk: replayed \(labels.count) orders (\(frauds) frauds) in \(String(format: "%.1f", replaySeconds)) s")

    // The peers: trained on the model's rows (train and test parts, early stopping on the
    // validation part, as the published model is), scoring the decisions' feature rows.
    let peerDir = work + "/peers"
    try FileManager.default.createDirectory(atPath: peerDir, withIntermediateDirectories: true)
    let fitRows = project(fitPart.rows + testPart.rows), fitLabels = fitPart.labels + testPart.labels
    let validRows = project(validPart.rows)
    for (name, x, y) in [("train", fitRows, fitLabels), ("valid", validRows, validPart.labels), ("test", featureRows, labels)] {
        try x.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(peerDir)/\(name).f32")) }
        try y.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(peerDir)/\(name).labels")) }
    }
    try Data("{\"features\": \(columns.count)}".utf8).write(to: URL(fileURLWithPath: peerDir + "/shape.json"))
    try run(python, ["Benchmarks/peers/classifiers.py", peerDir, peerDir + "/out.json", "--no-shap"])
    let out = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: peerDir + "/out.json"))) as! [String: Any]
    func peerScores(_ key: String) -> [Float] { ((out[key] as! [String: Any])["test"] as! [Double]).map(Float.init) }
    struct Quality { var name: String; var roc: Double; var pr: Double }
    var quality = [
        Quality(
            name: "Persona: Score over RPC (score 0-1000)", roc: BinaryMetrics.rocAUC(scores, labels),
            pr: BinaryMetrics.prAUC(scores, labels))
    ]
    for (key, name) in [
        ("lightgbm", "LightGBM \(out["lightgbm_version"] as! String)"), ("sklearn_hist", "scikit-learn HistGradientBoosting"),
        ("sklearn_logistic", "scikit-learn LogisticRegression"),
    ] {
        let s = peerScores(key)
        quality.append(Quality(name: name, roc: BinaryMetrics.rocAUC(s, labels), pr: BinaryMetrics.prAUC(s, labels)))
    }
    for q in quality { say(String(format: "risk: %@ ROC-AUC %.4f PR-AUC %.4f", q.name as NSString, q.roc, q.pr)) }

    // Score at fixed rates, open loop: known users, their own devices and IPs, every decision stored.
    var heldRequests: [[UInt8]] = []
    for row in heldRows {
        var r = ScoreRequest()
        r.userId = row[2].userId
        r.orderId = "load-\(row[2].userId)"
        r.amount = row[2].order?.total ?? 10
        r.currency = "USD"
        r.lines = row[2].order?.lines ?? []
        r.deviceId = row[2].deviceId
        r.ip = row[2].ip
        r.channel = row[2].channel
        heldRequests.append(r.serializedBytes())
    }
    struct Load {
        var rate: Int
        var dryRun: Bool
        var p50: Double, p99: Double, p999: Double
        var achieved: Double
        var failed: Int
        /// The services' own p99 (the upper bound of its histogram bucket): risk-control's Score, the feature service's RequestFeatures.
        var serverScoreP99: Double?, serverFeaturesP99: Double?
    }
    var loads: [Load] = []
    // The last row leaves out the decision write (dry_run): what the store costs.
    for (rate, dry) in [(1000, false), (5000, false), (5000, true)] {
        let n = Int(Double(rate) * seconds)
        let payloads = (0..<n).map { i -> [UInt8] in
            guard dry else { return heldRequests[i % heldRequests.count] }
            var r = try! ScoreRequest(serializedBytes: heldRequests[i % heldRequests.count])
            r.dryRun = true
            return r.serializedBytes()
        }
        let scoreBefore = serverLatencyBuckets(risk.host.context.metrics, method: RiskAPI.score.name)
        let featuresBefore = serverLatencyBuckets(liveFeature.host.context.metrics, method: FeatureAPI.requestFeatures.name)
        let outcome = try PacedClient.run(port: risk.port, method: RiskAPI.score.id, rate: rate, payloads: payloads)
        let serverScore = bucketQuantile(
            0.99, from: scoreBefore, to: serverLatencyBuckets(risk.host.context.metrics, method: RiskAPI.score.name))
        let serverFeatures = bucketQuantile(
            0.99, from: featuresBefore, to: serverLatencyBuckets(liveFeature.host.context.metrics, method: FeatureAPI.requestFeatures.name))
        let l = Load(
            rate: rate, dryRun: dry, p50: percentile(outcome.latencies, 0.5), p99: percentile(outcome.latencies, 0.99),
            p999: percentile(outcome.latencies, 0.999),
            achieved: outcome.answeredPerSecond, failed: outcome.failed, serverScoreP99: serverScore.map { $0 * 1000 },
            serverFeaturesP99: serverFeatures.map { $0 * 1000 })
        loads.append(l)
        say(
            String(
                format:
                    """
                    risk: Score%@ at %d/s: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, %.0f answered/s, %d failed; \
                    server-side p99 (bucket bound): Score %@ ms, RequestFeatures %@ ms
                    """,
                dry ? " (dry run)" : "", rate, l.p50, l.p99, l.p999, l.achieved, l.failed,
                l.serverScoreP99.map { String(format: "%g", $0) } ?? "?", l.serverFeaturesP99.map { String(format: "%g", $0) } ?? "?"))
        try await Task.sleep(for: .seconds(1))
    }

    // QueryDecisions over `stored` decisions: the store filled to that size in its own schema.
    await riskClient.shutdown()
    try await risk.stop(keepingData: true)
    let fillStart = ContinuousClock.now
    let filled = try fillDecisions(path: riskDir + "/decision-view.db", to: stored, features: names)
    let fillSeconds = fillStart.duration(to: .now) / .seconds(1)
    say("risk: decision store filled to \(filled.count) decisions (\(filled.bytes >> 20) MiB) in \(String(format: "%.0f", fillSeconds)) s")
    risk = try await HostedBenchService<RiskControlService>.start(settings: riskSettings, directory: riskDir)
    riskClient = RPCClient(host: "127.0.0.1", port: risk.port)
    var rng = SplitMix(seed: 5)
    let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
    let queries: [(String, () -> QueryDecisionsRequest)] = [
        (
            "one user's decisions",
            {
                var q = QueryDecisionsRequest(); q.userId = Int64(1 + rng.below(filled.users)); q.withoutFeatures = true; return q
            }
        ),
        (
            "one order (with features)",
            {
                var q = QueryDecisionsRequest(); q.orderId = "bulk-\(rng.below(filled.count))"; return q
            }
        ),
        (
            "a user's declines this week",
            {
                var q = QueryDecisionsRequest(); q.userId = Int64(1 + rng.below(filled.users)); q.action = .decline;
                q.fromMs = nowMs - 7 * 86_400_000; q.withoutFeatures = true; return q
            }
        ),
        (
            "score >= 900 since a day, newest 50",
            {
                var q = QueryDecisionsRequest(); q.minScore = 900; q.fromMs = nowMs - 86_400_000; q.limit = 50; q.withoutFeatures = true;
                return q
            }
        ),
        (
            "a rule fired, newest 50",
            {
                var q = QueryDecisionsRequest(); q.reason = "velocity_\(rng.below(20))"; q.limit = 50; q.withoutFeatures = true; return q
            }
        ),
        (
            "highest scores, page 2",
            {
                var q = QueryDecisionsRequest(); q.order = .score; q.limit = 50; q.pageToken = "990:\(filled.count - rng.below(1000))";
                q.withoutFeatures = true; return q
            }
        ),
    ]
    var queryRows: [(name: String, p50: Double, p99: Double, rows: Double)] = []
    for (name, make) in queries {
        var times: [Double] = []
        var found = 0
        for _ in 0..<20 { _ = try await riskClient.call(RiskAPI.queryDecisions, make(), timeout: .seconds(30)) }
        for _ in 0..<300 {
            let q = make()
            let t = ContinuousClock.now
            found += try await riskClient.call(RiskAPI.queryDecisions, q, timeout: .seconds(30)).decisions.count
            times.append(t.duration(to: .now) / .milliseconds(1))
        }
        queryRows.append((name, percentile(times, 0.5), percentile(times, 0.99), Double(found) / 300))
        say(
            String(
                format: "risk: QueryDecisions %@: p50 %.2f ms, p99 %.2f ms, %.1f decisions a page", name as NSString,
                percentile(times, 0.5), percentile(times, 0.99), Double(found) / 300))
    }
    let consoleRows = try await consolePageTimes(
        riskPort: risk.port, modelPort: model.port,
        others: [.ingest: ("127.0.0.1", liveIngest.port), .feature: ("127.0.0.1", liveFeature.port)], decisions: filled.count,
        users: filled.users)
    await riskClient.shutdown()
    try await risk.stop()
    for c in [liveIngestClient, liveFeatureClient] { await c.shutdown() }
    try await liveFeature.stop()
    try await liveIngest.stop()
    try await trainer.stop()

    let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    let qualityLines = quality.map { String(format: "| %@ | %.4f | %.4f |", $0.name as NSString, $0.roc, $0.pr) }.joined(separator: "\n")
    let loadLines = loads.map {
        String(
            format: "| %d%@ | %.0f | %.2f | %.2f | %.2f | %d | %@ | %@ |", $0.rate, $0.dryRun ? " (dry run: no decision write)" : "",
            $0.achieved, $0.p50, $0.p99, $0.p999, $0.failed,
            $0.serverScoreP99.map { String(format: "≤ %g", $0) } ?? "?", $0.serverFeaturesP99.map { String(format: "≤ %g", $0) } ?? "?")
    }.joined(separator: "\n")
    let queryLines = queryRows.map { String(format: "| %@ | %.1f | %.2f | %.2f |", $0.name as NSString, $0.rows, $0.p50, $0.p99) }.joined(
        separator: "\n")
    let sorted = scoreLatencies.sorted()
    let md = """
        # Risk-control

        Run: \(ISO8601DateFormatter().string(from: Date())), \(machine), release build; ingest, feature, model and \
        risk-control in one process on loopback; the peers one thread each.

        ## Fraud decisions on held-back orders

        ../shared/data/fraud/Fraud_Data_train.csv split by a seeded shuffle: \(trainRows.count) orders imported through \
        ingest with their labels; the fraud model (`persona train fraud`: gradient-boosted trees, isotonic calibration) \
        trained on the feature service's point-in-time rows and published (\(String(format: "%.1f", trainSeconds)) s). \
        Then a live suite (its own ingest and feature service, risk-control following the published model) sees every \
        order in time order: the training part's events with their outcomes, and for each of the \(heldRows.count) \
        held-back orders (\(frauds) frauds) its signup as events, then Score with the purchase's device and IP, then the \
        purchase event (\(String(format: "%.1f", replaySeconds)) s; Score p50 \
        \(String(format: "%.2f", percentile(sorted, 0.5))) ms one at a time). Persona's figures are from the scores \
        Score returned; the peers are trained on the model's rows (its train and test parts, early stopping on its \
        validation part, as the published model is trained) and score the feature rows the decisions stored. Goal: AUC \
        at least the best peer's.

        | scored by | ROC-AUC | PR-AUC |
        | --- | ---: | ---: |
        \(qualityLines)

        ## Score latency, open loop

        Score over RPC at a fixed rate for \(Int(seconds)) s each (requests of the replayed users with their devices and \
        IPs), latency from each call's scheduled send: the feature read (RequestFeatures), the model, TreeSHAP reasons, \
        rules and the durable append to the decision log (fsync'd group commit; the SQLite view is built beside the calls) included. \
        Goal: p99 at most 2 ms at \
        5,000/s.

        The last two columns are the services' own p99 (the bound of the histogram bucket it falls in), from a request \
        frame decoded to its answer written: risk-control's Score, and the feature read inside it.

        | rate /s | answered /s | p50 ms | p99 ms | p99.9 ms | failed | Score p99 in risk-control ms | RequestFeatures p99 in feature ms |
        | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
        \(loadLines)

        ## QueryDecisions over \(filled.count) stored decisions

        The store filled to \(filled.count) decisions of \(filled.users) users (\(filled.bytes >> 20) MiB, each with its \
        \(names.count) feature values) in the schema docs/RISK.md documents; 300 calls of each kind one at a time over \
        RPC after 20 to warm. Goal: p99 under 50 ms.

        | query | decisions a page | p50 ms | p99 ms |
        | --- | ---: | ---: | ---: |
        \(queryLines)

        ## The risk console's pages over the same store

        `persona-console` on loopback asking this risk-control, an admin signed in; each page fetched 20 times to warm \
        and 100 times one at a time, from the request to the whole page read (the console's calls to risk-control \
        included). Goal: p99 at most 100 ms.

        | page | p50 ms | p99 ms |
        | --- | ---: | ---: |
        \(consoleRows.map { String(format: "| %@ | %.1f | %.1f |", $0.page as NSString, $0.p50, $0.p99) }.joined(separator: "\n"))

        ![Risk-control](risk.png)

        """
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    let json = output.replacingOccurrences(of: ".md", with: ".json")
    try JSONSerialization.data(withJSONObject: [
        "quality": quality.map { ["name": $0.name, "roc_auc": $0.roc, "pr_auc": $0.pr] },
        "load": loads.filter { !$0.dryRun }.map { ["rate": $0.rate, "p50_ms": $0.p50, "p99_ms": $0.p99, "p999_ms": $0.p999] },
        "queries": queryRows.map { ["name": $0.name, "p50_ms": $0.p50, "p99_ms": $0.p99] },
    ]).write(to: URL(fileURLWithPath: json))
    try run(python, ["Benchmarks/peers/plot_risk.py", json, output.replacingOccurrences(of: ".md", with: ".png")])
    say("wrote \(output)")
}

/// Adds decisions to the store at `path` (closed) until it holds `count`: users 1...count/10,
/// times over the last 30 days, scores spread over 0...1000, one of twenty rules on a tenth
/// of them, each with `features.count` feature values. Returns the count, users and file size.
func fillDecisions(path: String, to count: Int, features: [String]) throws -> (count: Int, users: Int, bytes: Int) {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK, let db else { throw ServiceError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw ServiceError("\(sql): \(String(cString: sqlite3_errmsg(db)))")
        }
    }
    try exec("PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000")
    // The hourly counts' triggers would add an upsert to each insert: dropped with their
    // table, which risk-control builds again from the decisions when it next opens the store.
    try exec(
        """
        DROP TRIGGER IF EXISTS decision_hours_insert; DROP TRIGGER IF EXISTS decision_hours_delete;
        DROP TRIGGER IF EXISTS decision_hours_update; DROP TABLE IF EXISTS decision_hours;
        """)
    var have: Int64 = 0
    var stmt: OpaquePointer?
    sqlite3_prepare_v2(db, "SELECT count(*) FROM decisions", -1, &stmt, nil)
    if sqlite3_step(stmt) == SQLITE_ROW { have = sqlite3_column_int64(stmt, 0) }
    sqlite3_finalize(stmt)
    try exec("INSERT OR IGNORE INTO feature_sets (names) VALUES ('\(features.joined(separator: ","))')")
    sqlite3_prepare_v2(db, "SELECT id FROM feature_sets WHERE names = '\(features.joined(separator: ","))'", -1, &stmt, nil)
    sqlite3_step(stmt)
    let set = sqlite3_column_int64(stmt, 0)
    sqlite3_finalize(stmt)
    let users = max(1, count / 10)
    let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    var insert: OpaquePointer?, reason: OpaquePointer?
    sqlite3_prepare_v2(
        db,
        """
        INSERT INTO decisions (order_id, user_id, kind, decided_ms, event_ms, score, action, fraud, probability, amount, \
        currency, device, ip,
          instrument, channel, model_name, model_version, rules_version, degraded, known_user, latency_us, reasons, \
          feature_set, features, request)
        VALUES (?, ?, 'order', ?, ?, ?, ?, ?, ?, ?, 'USD', ?, ?, '', 'web', 'fraud', 1, 0, 0, 1, 900, ?, ?, ?, ?)
        """, -1, &insert, nil)
    sqlite3_prepare_v2(db, "INSERT INTO decision_reasons (code, decision) VALUES (?, ?)", -1, &reason, nil)
    defer { sqlite3_finalize(insert); sqlite3_finalize(reason) }
    var rng = SplitMix(seed: 11)
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let request = ScoreRequest().serializedBytes()
    var values = [Float](repeating: 0, count: features.count)
    try exec("BEGIN")
    for i in Int(have)..<max(Int(have), count) {
        let score = Int64(rng.below(1001))
        let action = score >= 800 ? "decline" : score >= 500 ? "review" : "allow"
        let rule = rng.below(10) == 0 ? "velocity_\(rng.below(20))" : nil
        for f in 0..<values.count { values[f] = rng.below(3) == 0 ? Float(rng.below(100)) : 0 }
        let reasons = rule.map { "[{\"kind\":\"rule\",\"code\":\"\($0)\",\"description\":\"\",\"contribution\":0,\"value\":0}]" } ?? "[]"
        sqlite3_bind_text(insert, 1, "bulk-\(i)", -1, transient)
        sqlite3_bind_int64(insert, 2, Int64(1 + rng.below(users)))
        // Ids grow with time, as live decisions' do.
        let decided = now - 30 * 86_400_000 + Int64(i - Int(have)) * (30 * 86_400_000) / Int64(max(1, count - Int(have)))
        sqlite3_bind_int64(insert, 3, decided)
        sqlite3_bind_int64(insert, 4, decided)
        sqlite3_bind_int64(insert, 5, score)
        sqlite3_bind_text(insert, 6, action, -1, transient)
        sqlite3_bind_int64(insert, 7, action == "decline" ? 1 : 0)
        sqlite3_bind_double(insert, 8, Double(score) / 1000)
        sqlite3_bind_double(insert, 9, Double(rng.below(500)))
        sqlite3_bind_text(insert, 10, "p:\(String(rng.next(), radix: 16))", -1, transient)
        sqlite3_bind_text(insert, 11, "p:\(String(rng.next(), radix: 16))", -1, transient)
        sqlite3_bind_text(insert, 12, reasons, -1, transient)
        sqlite3_bind_int64(insert, 13, set)
        values.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 14, $0.baseAddress, Int32($0.count), transient) }
        request.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 15, $0.baseAddress, Int32($0.count), transient) }
        guard sqlite3_step(insert) == SQLITE_DONE else { throw ServiceError("insert: \(String(cString: sqlite3_errmsg(db)))") }
        sqlite3_reset(insert)
        if let rule {
            let id = sqlite3_last_insert_rowid(db)
            sqlite3_bind_text(reason, 1, rule, -1, transient)
            sqlite3_bind_int64(reason, 2, id)
            guard sqlite3_step(reason) == SQLITE_DONE else { throw ServiceError("insert reason: \(String(cString: sqlite3_errmsg(db)))") }
            sqlite3_reset(reason)
        }
        if i % 200_000 == 199_999 {
            try exec("COMMIT; BEGIN")
            if i % 1_000_000 == 999_999 { say("risk: \(i + 1) decisions stored") }
        }
    }
    try exec("COMMIT")
    // Each review and challenge opened a case: those of the last two days are open in their
    // team's queue, the older ones resolved. The queue counts are computed from them.
    try exec(
        """
        INSERT OR IGNORE INTO cases (id, order_id, user_id, team, status, assignee, outcome, opened_ms, updated_ms, score, action,
          amount, currency, comments)
        SELECT id, order_id, user_id, kind, CASE WHEN decided_ms < \(now - 2 * 86_400_000) THEN 'resolved' ELSE 'open' END,
          CASE WHEN decided_ms < \(now - 2 * 86_400_000) THEN 'bench' ELSE '' END,
          CASE WHEN decided_ms < \(now - 2 * 86_400_000) THEN 'legitimate' ELSE 'unspecified' END, decided_ms, decided_ms, score,
          action, amount, currency, 0
        FROM decisions WHERE action IN ('review', 'challenge');
        DELETE FROM case_counts;
        INSERT INTO case_counts SELECT team, status, assignee != '', count(*) FROM cases WHERE status != 'resolved' GROUP BY 1, 2, 3;
        PRAGMA wal_checkpoint(TRUNCATE)
        """)
    let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    return (max(Int(have), count), users, bytes)
}

/// Where a fraud model is trained: ingest, the feature service and the model service in this
/// process on loopback, with a client of each.
struct FraudTrainingSuite {
    let ingest: HostedBenchService<IngestService>
    let feature: HostedBenchService<FeatureService>
    let model: HostedBenchService<ModelService>
    let ingestClient: RPCClient
    let featureClient: RPCClient
    let modelClient: RPCClient

    static func start(keyFile: String, countries: IPCountryTable?) async throws -> FraudTrainingSuite {
        var ingestSettings = IngestSettings()
        ingestSettings.pseudonymKeyFile = keyFile
        ingestSettings.ipCountries = countries
        let ingest = try await HostedBenchService<IngestService>.start(settings: ingestSettings)
        var consumer = ConsumerSettings()
        consumer.ingestPort = ingest.port
        let modelPort = try freeBenchPort()
        var featureSettings = FeatureSettings(consumer)
        featureSettings.modelPort = modelPort
        let feature = try await HostedBenchService<FeatureService>.start(settings: featureSettings)
        var modelSettings = ModelSettings(consumer)
        modelSettings.featurePort = feature.port
        let model = try await HostedBenchService<ModelService>.start(settings: modelSettings, port: modelPort)
        func client(_ port: Int) -> RPCClient {
            var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
            config.defaultTimeout = .seconds(600)  // exports and jobs of a whole dataset, and callgrind's pace
            return RPCClient(config: config)
        }
        return FraudTrainingSuite(
            ingest: ingest, feature: feature, model: model, ingestClient: client(ingest.port), featureClient: client(feature.port),
            modelClient: client(model.port))
    }

    /// Trains the fraud model as `persona train fraud` does and publishes it; returns the seconds it took.
    func trainFraud() async throws -> Double {
        var train = TrainRequest()
        train.kind = .gbdt
        train.publish = true
        let start = ContinuousClock.now
        let job = try await modelClient.call(ModelAPI.train, train).jobId
        var status = JobStatusResponse()
        repeat {
            try await Task.sleep(for: .milliseconds(100))
            var q = JobStatusRequest()
            q.jobId = job
            status = try await modelClient.call(ModelAPI.jobStatus, q)
        } while status.state != .succeeded && status.state != .failed && status.state != .cancelled
        guard status.state == .succeeded else { throw ServiceError("fraud model training failed: \(status.message)") }
        return start.duration(to: .now) / .seconds(1)
    }

    func stop() async throws {
        for client in [ingestClient, featureClient, modelClient] { await client.shutdown() }
        try await model.stop()
        try await feature.stop()
        try await ingest.stop()
    }
}

/// The Score request a shop sends for `buy`, a purchase event, before recording it.
func scoreRequest(for buy: Event, orderID: String? = nil) -> ScoreRequest {
    var r = ScoreRequest()
    r.userId = buy.userId
    r.orderId = orderID ?? buy.order?.orderId ?? ""
    r.amount = buy.order?.total ?? 0
    r.currency = buy.order?.currency ?? ""
    r.lines = buy.order?.lines ?? []
    r.deviceId = buy.deviceId
    r.ip = buy.ip
    r.channel = buy.channel
    r.sessionId = buy.sessionId
    r.timestampMs = buy.timestampMs
    return r
}
