// The recommendation benchmark: Persona's models against implicit (ALS, BPR, BM25 and
// cosine item-kNN) and a numpy EASE on the same time split of real shop data, one thread
// each, every side's lists scored by Persona's one metric function; the math kernels
// against numpy's OpenBLAS on the same shapes; and the interaction store's memory per pair
// and consumption rate.
import Datasets
import Foundation
import Math
import Model
import Recommenders
import Wire

struct ModelRow: Codable {
    var side: String
    var name: String
    var seconds: Double
    var ndcg: Double
    var precision: Double
    var recall: Double
    var hitRate: Double
    var map: Double
    var coverage: Double
}

struct DatasetFigures: Codable {
    var name: String
    var rows: [ModelRow]
}

/// A Python venv with the peers (created on first use, under Benchmarks/results/venv).
func peerPython() throws -> String {
    let venv = "Benchmarks/results/venv"
    let python = venv + "/bin/python"
    if !FileManager.default.fileExists(atPath: python) {
        say("creating \(venv) with implicit, numpy, scipy, matplotlib (PyPI)")
        try run("/usr/bin/env", ["python3", "-m", "venv", venv])
    }
    if (try? run(python, ["-c", "import implicit, numpy, scipy, matplotlib, threadpoolctl"])) == nil {
        try run(python, ["-m", "pip", "install", "-q", "implicit==0.7.3", "numpy", "scipy", "matplotlib", "threadpoolctl"])
    }
    return python
}

@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw ServiceFailure("\(executable) \(arguments.joined(separator: " ")) exited \(p.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}

struct ServiceFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func metricsRow(side: String, name: String, seconds: Double, lists: [[Int32]], test: [[Int32]], items: Int) -> ModelRow {
    let m = RankingMetrics.evaluate(lists: lists, test: test, catalogue: items, ks: [10])[0]
    return ModelRow(
        side: side, name: name, seconds: seconds, ndcg: m.ndcg, precision: m.precision, recall: m.recall, hitRate: m.hitRate, map: m.map,
        coverage: m.coverage)
}

/// The store's figures on a dataset: events folded per second (best of 3 fresh stores) and
/// memory per pair after compaction.
func storeFigures(_ events: [Event]) -> (eventsPerSecond: Double, bytesPerPair: Double, pairs: Int) {
    var best = Duration.seconds(1000)
    var store = InteractionTable()
    for _ in 0..<3 {
        store = InteractionTable()
        let start = ContinuousClock.now
        store.fold(events)
        best = min(best, start.duration(to: .now))
    }
    store.compact()
    let s = store.summary
    return (Double(events.count) / (best / .seconds(1)), Double(s.bytes) / Double(max(1, s.pairs)), s.pairs)
}

func modelBenchmark(output: String, sharedData: String) throws {
    let python = try peerPython()
    let datasets: [(String, String, DatasetFormat)] = [
        ("Online Retail, 11 months", "online-retail/Online_Retail_2010-12_to_2011-10.csv", .onlineRetail),
        ("Taobao, 293 users' histories", "taobao/UserBehavior_293_users.csv", .taobao),
    ]
    var figures: [DatasetFigures] = []
    var storeLines: [String] = []
    var datasetLines: [String] = []
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("persona-model-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    var implicitVersion = "", numpyVersion = ""
    for (title, file, format) in datasets {
        let path = sharedData + "/" + file
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            say("model bench: \(path) is missing (../shared/data): skipping \(title)")
            continue
        }
        var skips = DatasetFormat.Skips()
        let events = format.events(lines: text.split(whereSeparator: \.isNewline), skips: &skips)
        let store = InteractionTable()
        store.fold(events)
        let figures0 = storeFigures(events)
        storeLines.append(
            """
            | \(title) | \(events.count) | \(figures0.pairs) | \(Int(figures0.eventsPerSecond)) | \
            \(String(format: "%.1f", figures0.bytesPerPair)) |
            """
        )
        say("\(title): store \(Int(figures0.eventsPerSecond)) events/s, \(String(format: "%.1f", figures0.bytesPerPair)) bytes per pair")

        let defaults = try TrainingParameters(kind: .als)
        let (data, _) = store.interactions(weights: defaults.weights)
        let (train, test) = data.splitByTime()
        let evaluated = test.indices.filter { !test[$0].isEmpty }
        datasetLines.append(
            """
            | \(title) | \(data.users) | \(data.items) | \(data.pairs) | \(train.pairs) | \(evaluated.count) | \
            \(test.reduce(0) { $0 + $1.count }) |
            """
        )
        var rows: [ModelRow] = []

        // Persona, defaults of every kind, then the searched ALS and item-kNN.
        var ours: [(String, TrainingParameters, Bool)] = RecommenderModel.Kind.allCases.map {
            ($0.rawValue, try! TrainingParameters(kind: $0), false)
        }
        ours.append(("als --search", defaults, true))
        ours.append(("item_knn --search", try TrainingParameters(kind: .itemKNN), true))
        for (name, parameters, search) in ours {
            var chosen = parameters
            if search { chosen = try TrainingRun.searchParameters(parameters, train) }
            let start = ContinuousClock.now
            let model = try Trainer.train(chosen, train)
            let seconds = start.duration(to: .now) / .seconds(1)
            let changes = TrainingRun.changed(from: parameters, to: chosen)
            let label = search ? "\(name) (\(changes.isEmpty ? "kept the defaults" : changes))" : name
            rows.append(
                metricsRow(
                    side: "Persona", name: label, seconds: seconds, lists: model.rankings(train: train, test: test, n: 10), test: test,
                    items: data.items))
            say("  Persona \(label): \(String(format: "%.3f", seconds)) s, ndcg@10 \(String(format: "%.4f", rows.last!.ndcg))")
        }

        // The peers, on the same split, at the same parameters.
        let split = work + "/\(format.rawValue)"
        try FileManager.default.createDirectory(atPath: split, withIntermediateDirectories: true)
        var csv = ""
        for u in 0..<train.users {
            for j in train.matrix.rowStart[u]..<train.matrix.rowStart[u + 1] {
                csv += "\(u),\(train.matrix.indices[j]),\(train.matrix.values[j])\n"
            }
        }
        try csv.write(toFile: split + "/train.csv", atomically: true, encoding: .utf8)
        try evaluated.map(String.init).joined(separator: "\n").write(toFile: split + "/users.csv", atomically: true, encoding: .utf8)
        try "\(train.users) \(train.items)".write(toFile: split + "/shape.txt", atomically: true, encoding: .utf8)
        let als = defaults, bpr = try TrainingParameters(kind: .bpr), ease = try TrainingParameters(kind: .ease),
            knn = try TrainingParameters(kind: .itemKNN)
        let peers: [String: [String: Any]] = [
            "implicit ALS": [
                "kind": "als", "factors": als.int("factors"), "iterations": als.int("iterations"),
                "regularization": als.float("regularization"), "alpha": als.confidenceScale(train.matrix.values),
            ],
            "implicit BPR": [
                "kind": "bpr", "factors": bpr.int("factors"), "iterations": bpr.int("iterations"),
                "learning_rate": bpr.float("learning_rate"), "regularization": bpr.float("regularization"),
            ],
            "implicit BM25 item-kNN": [
                "kind": "bm25", "neighbors": knn.int("neighbors"), "k1": knn.float("bm25_k1"), "b": knn.float("bm25_b"),
            ],
            "implicit cosine item-kNN": ["kind": "cosine", "neighbors": knn.int("neighbors")],
            "numpy EASE": ["kind": "ease", "lambda": ease.float("lambda"), "items": Trainer.easeCoverage(ease, train)],
        ]
        let params = try JSONSerialization.data(withJSONObject: ["n": 10, "peers": peers])
        try params.write(to: URL(fileURLWithPath: split + "/params.json"))
        try run(python, ["Benchmarks/peers/recommenders.py", split, split + "/params.json", split + "/out.json"])
        let out = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: split + "/out.json"))) as! [String: Any]
        implicitVersion = out["implicit_version"] as? String ?? ""
        numpyVersion = out["numpy_version"] as? String ?? ""
        for (name, value) in (out["peers"] as! [String: Any]).sorted(by: { $0.key < $1.key }) {
            let peer = value as! [String: Any]
            let peerLists = (peer["lists"] as! [[Int]]).map { $0.map { Int32($0) } }
            var lists = [[Int32]](repeating: [], count: train.users)
            for (n, u) in evaluated.enumerated() { lists[u] = peerLists[n] }
            rows.append(
                metricsRow(side: "peer", name: name, seconds: peer["seconds"] as! Double, lists: lists, test: test, items: data.items))
            say("  peer \(name): \(String(format: "%.3f", rows.last!.seconds)) s, ndcg@10 \(String(format: "%.4f", rows.last!.ndcg))")
        }
        figures.append(DatasetFigures(name: title, rows: rows))
    }

    // The store on many users with short histories (no models: the slice is two hours).
    if let text = try? String(contentsOfFile: sharedData + "/taobao/UserBehavior_2h_sample.csv", encoding: .utf8) {
        var skips = DatasetFormat.Skips()
        let f = storeFigures(DatasetFormat.taobao.events(lines: text.split(whereSeparator: \.isNewline), skips: &skips))
        storeLines.append(
            """
            | Taobao, 2-hour slice (58,732 users) | 96168 | \(f.pairs) | \(Int(f.eventsPerSecond)) | \
            \(String(format: "%.1f", f.bytesPerPair)) |
            """
        )
    }

    // Kernels against numpy on the same shapes.
    let gemmShapes = [[256, 64, 4000], [1024, 1024, 1024], [4000, 64, 64]]
    let gramShapes = [[4000, 64], [20000, 128]]
    let shapes = work + "/shapes.json", productsOut = work + "/products.json"
    try JSONSerialization.data(withJSONObject: ["gemm": gemmShapes, "gram": gramShapes]).write(to: URL(fileURLWithPath: shapes))
    try run(python, ["Benchmarks/peers/products.py", shapes, productsOut])
    let numpy = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: productsOut))) as! [String: Any]
    let blasLine = (numpy["blas"] as? [[String: Any]] ?? []).map {
        "\($0["internal_api"] ?? "") \($0["version"] ?? ""), \($0["architecture"] ?? "") kernels"
    }.joined(separator: "; ")
    func best(_ body: () -> Void) -> Double {
        var b = Double.infinity
        for _ in 0..<5 {
            let start = ContinuousClock.now
            body()
            b = min(b, start.duration(to: .now) / .seconds(1))
        }
        return b
    }
    var kernelLines: [String] = []
    var rng = SystemRandomNumberGenerator()
    func random(_ r: Int, _ c: Int) -> Matrix {
        Matrix(rows: r, cols: c, values: (0..<r * c).map { _ in Float.random(in: -1...1, using: &rng) })
    }
    for (n, s) in gemmShapes.enumerated() {
        let a = random(s[0], s[1]), b = random(s[1], s[2])
        let flops = 2.0 * Double(s[0] * s[1] * s[2])
        let blas = flops / best { _ = Kernels.gemm(a, b) } / 1e9
        let own = flops / best { _ = Kernels.gemmBlocked(a, b) } / 1e9
        let peer = ((numpy["gemm"] as! [[String: Any]])[n]["gflops"] as! Double)
        kernelLines.append(
            """
            | gemm \(s[0])x\(s[1]) · \(s[1])x\(s[2]) | \(String(format: "%.1f", blas)) | \
            \(String(format: "%.1f", own)) | \(String(format: "%.1f", peer)) | \
            \(String(format: "%.0f%%", 100 * blas / peer)) |
            """
        )
    }
    for (n, s) in gramShapes.enumerated() {
        let y = random(s[0], s[1])
        let flops = 2.0 * Double(s[0] * s[1] * s[1])
        let blas = flops / best { _ = Kernels.gram(y) } / 1e9
        let own = flops / best { _ = Kernels.gramBlocked(y) } / 1e9
        let peer = ((numpy["gram"] as! [[String: Any]])[n]["gflops"] as! Double)
        kernelLines.append(
            """
            | Gram YᵀY, Y \(s[0])x\(s[1]) | \(String(format: "%.1f", blas)) | \(String(format: "%.1f", own)) | \
            \(String(format: "%.1f", peer)) | \(String(format: "%.0f%%", 100 * blas / peer)) |
            """
        )
    }
    // gemv: a user scored against every item (the serving kernel), own SIMD loop; numpy's matvec as peer is in the README note.
    let items = random(20000, 64), user = (0..<64).map { _ in Float.random(in: -1...1) }
    var scores: [Float] = []
    let gemvSeconds = best { for _ in 0..<50 { Kernels.score(items, user, into: &scores) } } / 50
    kernelLines.append(
        "| gemv 20000x64 (score a user against every item) | | \(String(format: "%.1f", 2.0 * 20000 * 64 / gemvSeconds / 1e9)) | | |")

    // The report.
    let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    var md = """
        # Recommendation models benchmark

        Run: \(ISO8601DateFormatter().string(from: Date())), \(machine), release build, one thread on every side \
        (OpenBLAS and implicit set to one thread).
        Peers: implicit \(implicitVersion), numpy \(numpyVersion) (PyPI, in Benchmarks/results/venv).

        Protocol: \(Interactions.protocolDescription). Every list, Persona's and the peers', is scored by Persona's \
        `RankingMetrics` on the same split.
        Interaction values: view 1, cart 3, favourite 2, purchase 5 per event (the defaults); ALS confidence 1 + \
        alpha·value/median value (alpha 1), given to implicit as its confidence matrix.
        Peers run at the parameters Persona's defaults use: ALS 128 factors, 15 iterations, regularization 10, CG (3 \
        steps); BPR 64 factors, 100 iterations, learning rate 0.05, regularization 0.01; item-kNN 100 neighbours (BM25 \
        K1 100, B 0.8); EASE lambda 200 over the items at least two users have (both keep every weight).
        Training time is the fit alone (Persona: `Trainer.train`; implicit: `fit`; EASE: Gram, inverse and B).

        ## Data

        | dataset | users | items | pairs | training pairs | evaluated users | test pairs |
        | --- | ---: | ---: | ---: | ---: | ---: | ---: |
        \(datasetLines.joined(separator: "\n"))

        """
    for f in figures {
        md +=
            """
            \n## \(f.name)\n\n| side | model | training s | NDCG@10 | P@10 | R@10 | HR@10 | MAP@10 | coverage |\n| \
            --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n
            """
        for r in f.rows {
            md +=
                """
                | \(r.side) | \(r.name) | \(String(format: "%.3f", r.seconds)) | \(String(format: "%.4f", r.ndcg)) | \
                \(String(format: "%.4f", r.precision)) | \(String(format: "%.4f", r.recall)) | \
                \(String(format: "%.4f", r.hitRate)) | \(String(format: "%.4f", r.map)) | \
                \(String(format: "%.3f", r.coverage)) |\n
                """
        }
        func ratio(_ ours: String, _ peer: String) -> String? {
            guard let a = f.rows.first(where: { $0.side == "Persona" && $0.name == ours }),
                let b = f.rows.first(where: { $0.side == "peer" && $0.name == peer })
            else { return nil }
            return
                """
                - \(ours) against \(peer): training time \(String(format: "%.2fx", a.seconds / b.seconds)) of the \
                peer's, NDCG@10 \(String(format: "%.4f", a.ndcg)) against \(String(format: "%.4f", b.ndcg)) \
                (\(String(format: "%.2fx", a.ndcg / max(b.ndcg, 1e-12))))
                """
        }
        md +=
            "\n"
            + [
                ratio("als", "implicit ALS"), ratio("bpr", "implicit BPR"), ratio("ease", "numpy EASE"),
                ratio("item_knn", "implicit BM25 item-kNN"),
            ].compactMap { $0 }.joined(separator: "\n") + "\n"
        let bestOurs = f.rows.filter { $0.side == "Persona" }.max { $0.ndcg < $1.ndcg }!,
            bestPeer = f.rows.filter { $0.side == "peer" }.max { $0.ndcg < $1.ndcg }
        if let bestPeer {
            md +=
                """
                - best of Persona: \(bestOurs.name) \(String(format: "%.4f", bestOurs.ndcg)); best peer: \
                \(bestPeer.name) \(String(format: "%.4f", bestPeer.ndcg)) \
                (\(String(format: "%.2fx", bestOurs.ndcg / max(bestPeer.ndcg, 1e-12))))\n
                """
        }
    }
    md += """

        ![NDCG@10 against training time](models.png)

        ## Interaction store

        Events folded into a fresh store on one thread (best of 3), and its memory per (user, item) pair after \
        compaction (pool, user and item tables, dictionaries). Goals: at least 1,000,000 events/s, at most 16 bytes a \
        pair.

        | dataset | events | pairs | events/s | bytes per pair |
        | --- | ---: | ---: | ---: | ---: |
        \(storeLines.joined(separator: "\n"))

        ## Kernels (GFLOP/s, one thread, best of 5)

        `Kernels.gemm` and `Kernels.gram` call OpenBLAS (Debian's libopenblas, kernels: \(Kernels.blasCore), \
        OPENBLAS_CORETYPE \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset")); the module's own \
        blocked loops are beside them; numpy runs the same shapes on the OpenBLAS it bundles (\(blasLine)). Goal: within \
        80% of numpy.

        | product | Persona (OpenBLAS) | Persona's own loop | numpy | Persona / numpy |
        | --- | ---: | ---: | ---: | ---: |
        \(kernelLines.joined(separator: "\n"))

        """
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    let json = work + "/figures.json"
    try JSONEncoder().encode(["datasets": figures]).write(to: URL(fileURLWithPath: json))
    let png = (output as NSString).deletingLastPathComponent + "/models.png"
    try run(python, ["Benchmarks/peers/plot_models.py", json, png])
    say("wrote \(output) and \(png)")
}
