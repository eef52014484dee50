// The fraud classifiers' benchmark: ../shared/data/fraud/Fraud_Data_train.csv imported
// through ingest in time order, folded by the feature service, and exported as
// point-in-time rows (ExportTraining), split as `persona train fraud` splits them (70% train,
// 10% validation, 20% test, seeded shuffle). Persona's gradient-boosted trees and logistic
// regression against LightGBM, scikit-learn's HistGradientBoosting and LogisticRegression on
// those same rows, one thread each, every side's test scores measured by the same code; and
// TreeSHAP's time per prediction against LightGBM's own.
import Classifiers
import Datasets
import Feature
import Foundation
import Ingest
import Math
import Model
import RPC
import ServiceKit
import Wire

func classifierBenchmark(output: String, sharedData: String) async throws {
    let path = sharedData + "/fraud/Fraud_Data_train.csv"
    guard FileManager.default.fileExists(atPath: path) else {
        say("classifiers: \(path) is missing (set PERSONA_SHARED_DATA); skipped")
        return
    }
    let python = try peerPython()
    if (try? run(python, ["-c", "import lightgbm, sklearn"])) == nil {
        try run(python, ["-m", "pip", "install", "-q", "lightgbm", "scikit-learn"])
    }
    // Through the suite: ingest, feature, the export.
    let ingest = try await HostedBenchService<IngestService>.start(settings: IngestSettings())
    var consumer = ConsumerSettings()
    consumer.ingestPort = ingest.port
    let feature = try await HostedBenchService<FeatureService>.start(settings: FeatureSettings(consumer))
    let ingestClient = RPCClient(host: "127.0.0.1", port: ingest.port)
    var featureConfig = RPCClient.Config.defaults(host: "127.0.0.1", port: feature.port)
    featureConfig.defaultTimeout = .seconds(300)
    let featureClient = RPCClient(config: featureConfig)
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var skips = DatasetFormat.Skips()
    let events = DatasetFormat.fraud.events(lines: text.split(separator: "\n"), skips: &skips).sorted { $0.timestampMs < $1.timestampMs }
    try await appendAndFold(events, ingest: ingestClient, feature: featureClient, batch: 5000)
    var request = ExportTrainingRequest()
    request.chunkRows = 10_000
    var exported: [TrainingRow] = []
    var names: [String] = []
    var schema: UInt32 = 0
    while true {
        let page = try await featureClient.call(FeatureAPI.exportTraining, request)
        exported += page.rows
        names = page.names
        schema = page.schemaVersion
        if page.done { break }
        request.cursor = page.nextCursor
    }
    await ingestClient.shutdown()
    await featureClient.shutdown()
    try await feature.stop()
    try await ingest.stop()
    let data = ClassifierRun.Rows(names: names, schemaVersion: schema, rows: exported)
    let (train, valid, test) = ClassifierRun.parts(data, split: "random")
    let d = names.count
    say(
        """
        classifiers: \(exported.count) labelled orders exported, \(d) features; \(train.labels.count) train, \
        \(valid.labels.count) validate, \(test.labels.count) test
        """
    )

    // Persona, same parameters as `persona train fraud` (the defaults).
    let parameters = try ClassifierRun.Parameters(learner: "gbdt")
    var t0 = ContinuousClock.now
    let trees = BoostedTrees.train(rows: train.rows, labels: train.labels, features: d, parameters: parameters.trees, validation: valid)
    let treeSeconds = t0.duration(to: .now) / .seconds(1)
    t0 = ContinuousClock.now
    let logistic = try LogisticRegression.train(rows: train.rows, labels: train.labels, features: d, parameters: parameters.logistic)
    let logisticSeconds = t0.duration(to: .now) / .seconds(1)
    func rows(_ t: ClassifierRun.Table) -> [[Float]] { (0..<t.labels.count).map { Array(t.rows[$0 * d..<($0 + 1) * d]) } }
    let testRows = rows(test), validRows = rows(valid)
    func calibrated(_ margin: ([Float]) -> Float) -> [Float] {
        let c = IsotonicCalibration(scores: validRows.map(margin), labels: valid.labels)
        return testRows.map { c.probability(margin($0)) }
    }
    let ourTrees = calibrated(trees.margin), ourLogistic = calibrated(logistic.margin)

    // The peers on the same rows.
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("persona-classifiers-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    for (name, t) in [("train", train), ("valid", valid), ("test", test)] {
        try t.rows.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(work)/\(name).f32")) }
        try t.labels.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(work)/\(name).labels")) }
    }
    try Data("{\"features\": \(d)}".utf8).write(to: URL(fileURLWithPath: work + "/shape.json"))
    try run(python, ["Benchmarks/peers/classifiers.py", work, work + "/out.json"])
    let out = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work + "/out.json"))) as! [String: Any]
    func peer(_ key: String) -> (seconds: Double, test: [Float]) {
        let p = out[key] as! [String: Any]
        return (p["seconds"] as! Double, (p["test"] as! [Double]).map(Float.init))
    }

    // TreeSHAP: 300 trees of depth 6, one row at a time.
    var shapParameters = BoostedTrees.Parameters()
    shapParameters.trees = 300
    shapParameters.maxDepth = 6
    shapParameters.maxLeaves = 63
    let deep = BoostedTrees.train(rows: train.rows, labels: train.labels, features: d, parameters: shapParameters)
    let shap = TreeSHAP(deep)
    var micros: [Double] = []
    for row in testRows.prefix(2000) {
        let t = ContinuousClock.now
        let phi = shap.attributions(row)
        micros.append(t.duration(to: .now) / .microseconds(1))
        precondition(abs(shap.expected + phi.reduce(0, +) - deep.margin(row)) < 1e-2)
    }
    micros.sort()
    let lightShap = out["lightgbm_shap_us"] as! [String: Double]

    struct Row { var side: String; var name: String; var seconds: Double; var scores: [Float] }
    let lgbm = peer("lightgbm"), hist = peer("sklearn_hist"), lr = peer("sklearn_logistic")
    let table = [
        Row(side: "Persona", name: "gbdt (\(trees.trees.count) trees)", seconds: treeSeconds, scores: ourTrees),
        Row(
            side: "peer",
            name: "LightGBM \(out["lightgbm_version"] as! String) (\((out["lightgbm"] as! [String: Any])["trees"] as! Int) trees)",
            seconds: lgbm.seconds, scores: lgbm.test),
        Row(
            side: "peer", name: "scikit-learn HistGradientBoosting (\((out["sklearn_hist"] as! [String: Any])["trees"] as! Int) trees)",
            seconds: hist.seconds, scores: hist.test),
        Row(side: "Persona", name: "logistic", seconds: logisticSeconds, scores: ourLogistic),
        Row(
            side: "peer", name: "scikit-learn LogisticRegression \(out["sklearn_version"] as! String)", seconds: lr.seconds, scores: lr.test
        ),
    ]
    var lines = ""
    var figures: [[String: Any]] = []
    for r in table {
        let roc = BinaryMetrics.rocAUC(r.scores, test.labels), pr = BinaryMetrics.prAUC(r.scores, test.labels),
            loss = BinaryMetrics.logLoss(r.scores, test.labels)
        lines += String(
            format: "| %@ | %@ | %.2f | %.4f | %.4f | %.4f |\n", r.side as NSString, r.name as NSString, r.seconds, roc, pr, loss)
        figures.append(["name": r.name, "side": r.side, "seconds": r.seconds, "roc_auc": roc, "pr_auc": pr, "log_loss": loss])
        say(
            """
            \(r.name): \(String(format: "%.2f", r.seconds)) s, ROC-AUC \(String(format: "%.4f", roc)), PR-AUC \
            \(String(format: "%.4f", pr)), log loss \(String(format: "%.4f", loss))
            """
        )
    }
    let p50 = micros[micros.count / 2], p99 = micros[Int(Double(micros.count) * 0.99)]
    say(
        """
        TreeSHAP over \(deep.trees.count) trees of depth \(shapParameters.maxDepth): p50 \
        \(String(format: "%.1f", p50)) µs, p99 \(String(format: "%.1f", p99)) µs
        """
    )
    let segments = try await kmeansBenchmark(sharedData: sharedData, python: python)
    let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    let positives = Int(test.labels.reduce(0, +))
    let md = """
        # Fraud classifiers

        Run: \(ISO8601DateFormatter().string(from: Date())), \(machine), release build, one thread on every side.
        Rows: ../shared/data/fraud/Fraud_Data_train.csv imported through ingest in time order, folded by the feature \
        service, exported as point-in-time rows (ExportTraining: every labelled order's \(d) features as of its time); \
        split as `persona train fraud` splits (seeded shuffle: \(train.labels.count) train, \(valid.labels.count) \
        validation, \(test.labels.count) test with \(positives) frauds).
        Every side: 300 trees at most, learning rate 0.05, 31 leaves, depth 8, 20 rows a leaf, L2 1, 255 bins, early \
        stopping after 30 rounds (Persona and LightGBM on the validation rows; HistGradientBoosting on its own 12.5% of \
        the training rows, as it cannot take a validation set). Persona's probabilities are isotonic-calibrated on the \
        validation rows (as published); the peers' are their own predict_proba. Scores are measured by the same code \
        (Shared/Math `BinaryMetrics`).
        Goal (issue): ROC-AUC and PR-AUC at least the best peer's, training time at most LightGBM's.

        | side | model | training s | ROC-AUC | PR-AUC | log loss |
        | --- | --- | ---: | ---: | ---: | ---: |
        \(lines)
        TreeSHAP per prediction (\(deep.trees.count) trees of depth 6, one row at a time, \(micros.count) rows): Persona \
        p50 \(String(format: "%.1f", p50)) µs, p99 \(String(format: "%.1f", p99)) µs; LightGBM's `pred_contrib` p50 \
        \(String(format: "%.1f", lightShap["p50"]!)) µs, p99 \(String(format: "%.1f", lightShap["p99"]!)) µs (its call \
        overhead included). Goal: p99 below 50 µs.

        ![ROC-AUC and PR-AUC against training time](classifiers.png)

        ## Segments: k-means

        \(segments)

        """
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    let json = output.replacingOccurrences(of: ".md", with: ".json")
    try JSONSerialization.data(withJSONObject: ["rows": figures]).write(to: URL(fileURLWithPath: json))
    try run(python, ["Benchmarks/peers/plot_classifiers.py", json, output.replacingOccurrences(of: ".md", with: ".png")])
    say("wrote \(output)")
}

/// k-means against scikit-learn's on the standardised profiles of the Online Retail
/// customers (the eleven-month file through ingest and the feature service; recency,
/// frequency, monetary, order value, distinct items, sessions, purchase interval, tenure;
/// the counts and amounts as log(1 + x)), k = 8, twenty seeds each. A markdown paragraph.
func kmeansBenchmark(sharedData: String, python: String) async throws -> String {
    let path = sharedData + "/online-retail/Online_Retail_2010-12_to_2011-10.csv"
    guard FileManager.default.fileExists(atPath: path) else { return "Skipped: \(path) is missing." }
    let ingest = try await HostedBenchService<IngestService>.start(settings: IngestSettings())
    var consumer = ConsumerSettings()
    consumer.ingestPort = ingest.port
    let feature = try await HostedBenchService<FeatureService>.start(settings: FeatureSettings(consumer))
    let ingestClient = RPCClient(host: "127.0.0.1", port: ingest.port)
    let featureClient = RPCClient(host: "127.0.0.1", port: feature.port)
    var skips = DatasetFormat.Skips()
    let events = DatasetFormat.onlineRetail.events(
        lines: try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n"), skips: &skips
    )
    .sorted { $0.timestampMs < $1.timestampMs }
    try await appendAndFold(events, ingest: ingestClient, feature: featureClient, batch: 2000)
    let names = [
        "recency_days", "frequency", "monetary", "average_order_value", "distinct_items", "sessions", "purchase_interval_mean_days",
        "days_since_first_seen",
    ]
    let logged: Set<String> = ["frequency", "monetary", "average_order_value", "distinct_items", "sessions"]
    let users = Array(Set(events.map(\.userId))).sorted()
    var raw: [[Float]] = []
    for start in stride(from: 0, to: users.count, by: 1000) {
        var request = GetFeaturesRequest()
        request.userIds = Array(users[start..<min(users.count, start + 1000)])
        request.names = names
        for row in try await featureClient.call(FeatureAPI.getFeatures, request).rows where row.found {
            raw.append(zip(names, row.values).map { logged.contains($0) ? log1p(max(0, $1)) : $1 })
        }
    }
    await ingestClient.shutdown()
    await featureClient.shutdown()
    try await feature.stop()
    try await ingest.stop()
    let cols = names.count
    var rows = raw.flatMap { $0 }
    for j in 0..<cols {
        let column = raw.map { $0[j] }
        let mean = column.reduce(0, +) / Float(column.count)
        let sd = (column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(column.count)).squareRoot()
        for i in 0..<raw.count { rows[i * cols + j] = sd > 0 ? (rows[i * cols + j] - mean) / sd : 0 }
    }
    let k = 8
    var ours: [(seconds: Double, inertia: Double, iterations: Int)] = []
    for seed in 0..<20 {
        let t = ContinuousClock.now
        let m = KMeans.fit(rows: rows, cols: cols, k: k, seed: UInt64(seed + 1), tolerance: 1e-4)
        ours.append((t.duration(to: .now) / .seconds(1), m.inertia, m.iterations))
    }
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("persona-kmeans-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    try rows.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: work + "/rows.f32")) }
    try run(python, ["Benchmarks/peers/kmeans.py", work + "/rows.f32", "\(cols)", "\(k)", work + "/out.json"])
    let peer =
        ((try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work + "/out.json"))) as! [String: Any])["runs"]
        as! [[String: Any]])
        .map { (seconds: $0["seconds"] as! Double, inertia: $0["inertia"] as! Double, iterations: $0["iterations"] as! Int) }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    let ourTime = median(ours.map(\.seconds)), peerTime = median(peer.map(\.seconds))
    let ourBest = ours.map(\.inertia).min()!, peerBest = peer.map(\.inertia).min()!
    let ourMedian = median(ours.map(\.inertia)), peerMedian = median(peer.map(\.inertia))
    say(
        String(
            format:
                """
                k-means over %d profiles x %d: Persona %.3f s (inertia median %.1f, best %.1f), scikit-learn %.3f s \
                (median %.1f, best %.1f)
                """,
            raw.count, cols, ourTime, ourMedian, ourBest, peerTime, peerMedian, peerBest))
    return String(
        format: """
            %d Online Retail customers' profiles from the feature service (GetFeatures: %@; the counts and amounts as \
            log(1 + x), then standardised), k = %d, twenty seeds per side (iterations vary widely with the start), one \
            greedy k-means++ start each, one thread.

            | side | median seconds | median inertia | best inertia | iterations (median) |
            | --- | ---: | ---: | ---: | ---: |
            | Persona `KMeans` (Lloyd, tolerance 1e-4: scikit-learn's stopping rule) | %.4f | %.1f | %.1f | %d |
            | scikit-learn KMeans (Lloyd, tol 1e-4) | %.4f | %.1f | %.1f | %d |

            Median inertia: Persona %.2f%% from scikit-learn's (goal: time at equal inertia, within 1%%). Time ratio: %.2fx scikit-learn's.
            """, raw.count, names.joined(separator: ", ") as NSString, k, ourTime, ourMedian, ourBest, ours.map(\.iterations).sorted()[2],
        peerTime, peerMedian, peerBest,
        peer.map(\.iterations).sorted()[2], 100 * (ourMedian - peerMedian) / peerMedian, ourTime / peerTime)
}

/// Appends `events` to ingest in batches, then waits until the feature service has folded
/// everything ingest holds.
func appendAndFold(_ events: [Event], ingest: RPCClient, feature: RPCClient, batch: Int = 5000) async throws {
    for start in stride(from: 0, to: events.count, by: batch) {
        var request = AppendRequest()
        request.events = Array(events[start..<min(events.count, start + batch)])
        _ = try await ingest.call(IngestAPI.append, request)
    }
    let info = try await ingest.call(IngestAPI.logInfo, LogInfoRequest())
    let ends = info.partitions.map { String($0.endOffset) }.joined(separator: ",")
    while try await feature.call(HealthAPI.check, HealthRequest()).checks.first(where: { $0.key == "offsets" })?.value != ends {
        try await Task.sleep(for: .milliseconds(1))
    }
}
