// The sequence benchmark: Persona's SASRec against implicit's ALS and Persona's own ALS,
// EASE, item-kNN and popularity on the leave-last-out protocol (each user's latest item is
// the test, over every item, items met before included), one thread each, every list scored
// by Persona's one metric function; and the serving cost of one user's next items over a
// catalogue of 100,000.
import Datasets
import Foundation
import Math
import Model
import Recommenders
import Wire

func sequenceBenchmark(output: String, sharedData: String) throws {
    let python = try peerPython()
    let datasets: [(String, String, DatasetFormat)] = [
        ("Online Retail, 11 months", "online-retail/Online_Retail_2010-12_to_2011-10.csv", .onlineRetail),
        ("Taobao, 293 users' histories", "taobao/UserBehavior_293_users.csv", .taobao),
    ]
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("persona-sequence-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    var sections: [String] = [], dataLines: [String] = [], figures: [DatasetFigures] = []
    var implicitVersion = ""
    let sequence = try TrainingParameters(kind: .sequence)
    for (title, file, format) in datasets {
        let path = sharedData + "/" + file
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            say("sequence bench: \(path) is missing (../shared/data): skipping \(title)")
            continue
        }
        var skips = DatasetFormat.Skips()
        let store = InteractionTable()
        store.fold(format.events(lines: text.split(whereSeparator: \.isNewline), skips: &skips))
        let (data, _) = store.interactions(weights: sequence.weights)
        let (train, test) = data.leaveLastOut()
        let evaluated = test.indices.filter { !test[$0].isEmpty }
        dataLines.append("| \(title) | \(data.users) | \(data.items) | \(data.pairs) | \(evaluated.count) |")
        var rows: [ModelRow] = [], unseen: [ModelRow] = []
        var epochs = 0
        for kind in [RecommenderModel.Kind.sequence, .als, .ease, .itemKNN, .popularity] {
            let parameters = try TrainingParameters(kind: kind)
            let progress = TrainingProgress()
            let start = ContinuousClock.now
            let model = try Trainer.train(parameters, train, progress: progress)
            let seconds = start.duration(to: .now) / .seconds(1)
            if kind == .sequence {
                epochs = progress.losses.count
                say("  \(title) sequence: \(epochs) epochs, \(progress.message)")
            }
            rows.append(
                metricsRow(
                    side: "Persona", name: kind.rawValue, seconds: seconds, lists: model.nextItemRankings(train: train, test: test, n: 10),
                    test: test, items: data.items))
            unseen.append(
                metricsRow(
                    side: "Persona", name: kind.rawValue, seconds: seconds,
                    lists: model.nextItemRankings(train: train, test: test, n: 10, excludingSeen: true), test: test, items: data.items))
            say(
                """
                  \(title) Persona \(kind.rawValue): \(String(format: "%.2f", seconds)) s, ndcg@10 \
                \(String(format: "%.4f", rows.last!.ndcg))
                """
            )
        }
        // implicit's ALS on the same training pairs, training items ranked like any other.
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
        let als = try TrainingParameters(kind: .als)
        let peers: [String: [String: Any]] = [
            "implicit ALS": [
                "kind": "als", "factors": als.int("factors"), "iterations": als.int("iterations"),
                "regularization": als.float("regularization"), "alpha": als.confidenceScale(train.matrix.values),
            ],
            "implicit ALS, seen left out": [
                "kind": "als", "factors": als.int("factors"), "iterations": als.int("iterations"),
                "regularization": als.float("regularization"), "alpha": als.confidenceScale(train.matrix.values),
                "filter_seen": true,
            ],
        ]
        try JSONSerialization.data(withJSONObject: ["n": 10, "filter_seen": false, "peers": peers]).write(
            to: URL(fileURLWithPath: split + "/params.json"))
        try run(python, ["Benchmarks/peers/recommenders.py", split, split + "/params.json", split + "/out.json"])
        let out = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: split + "/out.json"))) as! [String: Any]
        implicitVersion = out["implicit_version"] as? String ?? ""
        for (name, value) in (out["peers"] as! [String: Any]).sorted(by: { $0.key < $1.key }) {
            let peer = value as! [String: Any]
            var lists = [[Int32]](repeating: [], count: train.users)
            for (n, u) in evaluated.enumerated() { lists[u] = (peer["lists"] as! [[Int]])[n].map { Int32($0) } }
            let row = metricsRow(
                side: "peer", name: name.replacingOccurrences(of: ", seen left out", with: ""), seconds: peer["seconds"] as! Double,
                lists: lists, test: test, items: data.items)
            if name.hasSuffix("seen left out") { unseen.append(row) } else { rows.append(row) }
            say("  \(title) peer \(name): \(String(format: "%.2f", row.seconds)) s, ndcg@10 \(String(format: "%.4f", row.ndcg))")
        }
        figures.append(DatasetFigures(name: title, rows: rows))
        var md =
            """
            ## \(title)\n\n| side | model | training s | HR@10 | NDCG@10 | HR@10, seen left out | NDCG@10, seen left \
            out |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n
            """
        for (r, u) in zip(rows, unseen) {
            md +=
                """
                | \(r.side) | \(r.name) | \(String(format: "%.2f", r.seconds)) | \
                \(String(format: "%.4f", r.hitRate)) | \(String(format: "%.4f", r.ndcg)) | \
                \(String(format: "%.4f", u.hitRate)) | \(String(format: "%.4f", u.ndcg)) |\n
                """
        }
        let ours = rows[0], others = rows.dropFirst()
        let bestOther = others.max { $0.ndcg < $1.ndcg }!
        md +=
            """
            \n- sequence trained \(epochs) epochs (early stopping on each user's second-latest step, patience \
            \(sequence.int("patience")) validations)\n
            """
        md +=
            """
            - sequence NDCG@10 \(String(format: "%.4f", ours.ndcg)) against the best other, \
            \(bestOther.side == "peer" ? "" : "Persona ")\(bestOther.name), \
            \(String(format: "%.4f", bestOther.ndcg)) \
            (\(String(format: "%.2f", ours.ndcg / max(bestOther.ndcg, 1e-12)))x)\n
            """
        sections.append(md)
    }

    // Serving: one user's 50 latest items encoded, then the 10 best of 100,000 items.
    let shape = SASRec.Shape(
        items: 100_000, dim: sequence.int("dim"), maxLength: sequence.int("max_length"), blocks: sequence.int("blocks"))
    var model = RecommenderModel(
        kind: .sequence, itemIDs: (0..<Int64(shape.items)).map { $0 + 1 }, itemCategories: [Int64](repeating: 0, count: shape.items),
        popularity: [Float](repeating: 1, count: shape.items))
    let network = SASRec(shape: shape, seed: 7)
    model.sequence = network
    model.items = network.itemTable
    model.index()
    var rng = SplitMix(seed: 3)
    func timings(_ top: ([(item: Int32, value: Float)]) -> [TopK.Entry]) -> (p50: Double, p99: Double) {
        var micros: [Double] = []
        for _ in 0..<500 {
            let history = (0..<shape.maxLength).map { _ in (item: Int32(rng.below(shape.items)), value: Float(1)) }
            let start = ContinuousClock.now
            let found = top(history)
            micros.append(start.duration(to: .now) / .microseconds(1))
            precondition(found.count == 10)
        }
        micros.sort()
        return (micros[micros.count / 2], micros[micros.count * 99 / 100])
    }
    let exact = timings { model.recommend(user: nil, history: $0, n: 10) }
    let loaded = PublishedModels.Loaded(info: ModelInfo(), model: model, indexAbove: 50_000)
    let indexed = timings { loaded.top(user: nil, history: $0, k: 10) { _ in false } }
    let encodeOnly = timings { h in
        _ = network.encode(h.map(\.item))
        return [TopK.Entry](repeating: TopK.Entry(index: 0, score: 0), count: 10)
    }

    let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    let popularityKeys = TrainingParameters.defaults(.popularity).keys
    let sequenceParameters = sequence.pairs.filter { !popularityKeys.contains($0.0) }.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
    var md = """
        # Sequence recommender benchmark

        Run: \(ISO8601DateFormatter().string(from: Date())), \(machine), release build, one thread on every side \
        (OpenBLAS and implicit set to one thread).
        Peer: implicit \(implicitVersion) (PyPI, in Benchmarks/results/venv).

        Protocol: \(Interactions.leaveLastOutDescription). Every list, Persona's and the peer's, is scored by Persona's \
        `RankingMetrics` on the same split.
        A step is one or more events in a row on one item (the interaction store keeps each user's latest \
        \(InteractionTable.sequenceLimit)); "seen left out" ranks the same lists with the user's training items removed, \
        for comparison.
        Persona's models at their defaults (sequence: \
        \(sequenceParameters)); \
        implicit's ALS at Persona's ALS defaults.

        | dataset | users | items | pairs | evaluated users |
        | --- | ---: | ---: | ---: | ---: |

        """
    md += dataLines.joined(separator: "\n") + "\n\n" + sections.joined(separator: "\n")
    md += """

        ## Serving

        One user's next 10 items over a catalogue of \(shape.items) (\(shape.dim) dimensions, \(shape.blocks) blocks, a \
        history of \(shape.maxLength) items), 500 users, µs:

        | step | p50 | p99 |
        | --- | ---: | ---: |
        | encode the sequence | \(String(format: "%.0f", encodeOnly.p50)) | \(String(format: "%.0f", encodeOnly.p99)) |
        | encode and score every item | \(String(format: "%.0f", exact.p50)) | \(String(format: "%.0f", exact.p99)) |
        | encode and search the HNSW index (recommend's path above `--index-above`: 50,000 here, 200,000 by default) | \
        \(String(format: "%.0f", indexed.p50)) | \(String(format: "%.0f", indexed.p99)) |

        """
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    let json = output.replacingOccurrences(of: ".md", with: ".json")
    try JSONEncoder().encode(["datasets": figures]).write(to: URL(fileURLWithPath: json))
    try run(
        python, ["Benchmarks/peers/plot_models.py", json, output.replacingOccurrences(of: ".md", with: ".png"), "leave-last-out split"])
    say("wrote \(output)")
}

/// A venv with PyTorch for CPU (its own: the wheel is large), under Benchmarks/results/venv-deep.
func deepPython() throws -> String {
    let venv = "Benchmarks/results/venv-deep"
    let python = venv + "/bin/python"
    if !FileManager.default.fileExists(atPath: python) {
        say("creating \(venv) with torch (CPU build) and numpy")
        try run("/usr/bin/env", ["python3", "-m", "venv", venv])
    }
    if (try? run(python, ["-c", "import torch, numpy"])) == nil {
        // The CPU-only build (PyPI's default pulls the CUDA libraries, GBs): a pinned CPU wheel
        // from pip's find-links or extra index, else PyTorch's own CPU index, else PyPI's.
        try run(python, ["-m", "pip", "install", "-q", "numpy"])
        if (try? run(python, ["-m", "pip", "install", "-q", "torch==2.13.0+cpu"])) == nil,
            (try? run(
                python, ["-m", "pip", "install", "-q", "--extra-index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0+cpu"]))
                == nil
        {
            try run(python, ["-m", "pip", "install", "-q", "torch"])
        }
    }
    return python
}

/// `make bench-deep`: SASRec training time against the same architecture in PyTorch (CPU,
/// one thread) on the same sequences, dimensions, blocks, batch and epochs, with no early
/// stopping on either side; both models' lists scored on the leave-last-out split.
func sequenceDeepBenchmark(output: String, sharedData: String, epochs: Int) throws {
    let python = try deepPython()
    let datasets: [(String, String, DatasetFormat)] = [
        ("Online Retail, 11 months", "online-retail/Online_Retail_2010-12_to_2011-10.csv", .onlineRetail),
        ("Taobao, 293 users' histories", "taobao/UserBehavior_293_users.csv", .taobao),
    ]
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("persona-deep-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    let p = try TrainingParameters(kind: .sequence).with(["epochs": "\(epochs)", "patience": "\(epochs)"])
    let length = p.int("max_length")
    var lines: [String] = [], torchVersion = ""
    for (title, file, format) in datasets {
        guard let text = try? String(contentsOfFile: sharedData + "/" + file, encoding: .utf8) else {
            say("deep bench: \(sharedData)/\(file) is missing (../shared/data): skipping \(title)")
            continue
        }
        var skips = DatasetFormat.Skips()
        let store = InteractionTable()
        store.fold(format.events(lines: text.split(whereSeparator: \.isNewline), skips: &skips))
        let (data, _) = store.interactions(weights: p.weights)
        let (train, test) = data.leaveLastOut()
        let evaluated = test.indices.filter { !test[$0].isEmpty }
        // The sequences Persona's trainer takes (no step held out: nothing stops early).
        let sequences = train.sequences.filter { $0.count >= 2 }.map { $0.suffix(length + 1) }
        let dir = work + "/\(format.rawValue)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try sequences.map { $0.map(String.init).joined(separator: " ") }.joined(separator: "\n").write(
            toFile: dir + "/train.txt", atomically: true, encoding: .utf8)
        try evaluated.map { train.sequence($0).suffix(length).map(String.init).joined(separator: " ") }.joined(separator: "\n")
            .write(toFile: dir + "/test.txt", atomically: true, encoding: .utf8)
        let params: [String: Any] = [
            "items": train.items, "dim": p.int("dim"), "max_length": length, "blocks": p.int("blocks"), "dropout": p.float("dropout"),
            "learning_rate": p.float("learning_rate"), "batch": p.int("batch"), "epochs": epochs, "seed": p.int("seed"),
        ]
        try JSONSerialization.data(withJSONObject: params).write(to: URL(fileURLWithPath: dir + "/params.json"))

        let progress = TrainingProgress()
        let start = ContinuousClock.now
        let model = try Trainer.train(p, train, progress: progress)
        let ours = start.duration(to: .now) / .seconds(1)
        let oursRow = metricsRow(
            side: "Persona", name: "sequence", seconds: ours, lists: model.nextItemRankings(train: train, test: test, n: 10), test: test,
            items: data.items)
        say("  \(title) Persona: \(epochs) epochs in \(String(format: "%.1f", ours)) s, ndcg@10 \(String(format: "%.4f", oursRow.ndcg))")
        try run(python, ["Benchmarks/peers/sasrec_torch.py", dir, dir + "/out.json"])
        let out = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.json"))) as! [String: Any]
        torchVersion = out["torch_version"] as? String ?? ""
        var lists = [[Int32]](repeating: [], count: train.users)
        for (n, u) in evaluated.enumerated() { lists[u] = (out["lists"] as! [[Int]])[n].map { Int32($0) } }
        let peer = metricsRow(
            side: "peer", name: "PyTorch SASRec", seconds: out["seconds"] as! Double, lists: lists, test: test, items: data.items)
        say("  \(title) PyTorch: \(String(format: "%.1f", peer.seconds)) s, ndcg@10 \(String(format: "%.4f", peer.ndcg))")
        let lossOurs = progress.losses.last ?? 0, lossPeer = (out["losses"] as? [Double])?.last ?? 0
        lines.append(
            """
            | \(title) | \(sequences.count) | \(sequences.reduce(0) { $0 + $1.count - 1 }) | \
            \(String(format: "%.1f", ours)) | \(String(format: "%.1f", peer.seconds)) | \
            \(String(format: "%.2fx", ours / max(peer.seconds, 1e-9))) | \(String(format: "%.4f", lossOurs)) / \
            \(String(format: "%.4f", lossPeer)) | \(String(format: "%.4f", oursRow.ndcg)) / \
            \(String(format: "%.4f", peer.ndcg)) |
            """
        )
    }
    let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    let md = """
        # Sequence model training against PyTorch

        Run: \(ISO8601DateFormatter().string(from: Date())), \(machine), release build, one thread on each side \
        (OpenBLAS; `torch.set_num_threads(1)`).
        Peer: PyTorch \(torchVersion) (the CPU-only build, in Benchmarks/results/venv-deep), the same architecture in \
        Benchmarks/peers/sasrec_torch.py.

        Both sides: \(p.int("dim")) dimensions, \(p.int("blocks")) blocks, \(length) positions, dropout \
        \(p.string("dropout")), Adam at \(p.string("learning_rate")) (betas 0.9, 0.98), batches of \(p.int("batch")) \
        sequences, \(epochs) epochs, no early stopping, the same training sequences (the leave-last-out training steps); \
        PyTorch pads each batch to its longest sequence and masks the padding, Persona does not pad. NDCG@10 of both on \
        the leave-last-out test items, scored by Persona's `RankingMetrics`.

        | dataset | sequences | positions an epoch | Persona s | PyTorch s | Persona / PyTorch | last epoch's loss \
        (Persona / PyTorch) | NDCG@10 (Persona / PyTorch) |
        | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
        \(lines.joined(separator: "\n"))

        """
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    say("wrote \(output)")
}
