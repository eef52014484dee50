import ArgumentParser
import Foundation
import RPC
import Recommenders
import Wire

/// `persona train KIND`: starts a training job at the model service, follows it with a
/// progress bar, and prints the new version's metrics beside the popularity baseline.
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract:
            """
            Train a recommendation model (popularity, item_knn, als, bpr, ease, content, sequence), the ranker over \
            them, a classifier (fraud, propensity, churn: gbdt or logistic), the customer segments or an uplift \
            model from a past campaign, and publish it.
            """
    )

    @Argument(
        help:
            """
            popularity, item_knn, als, bpr, ease, content (TF-IDF over the catalogue), sequence (SASRec over each \
            user's latest items); ranker (learns on a validation period how to rank the published recommenders' \
            candidates together); fraud (the gbdt learner on the labelled orders), propensity (buys in the next \
            horizon_days, default 30), churn (does nothing in them), gbdt, logistic; segments (k-means over the \
            profiles); or uplift (--param campaign=NAME: who a past campaign's offer moved, docs/CAMPAIGNS.md).
            """
    )
    var kind: String

    @Option(help: "The model's name (default: the kind).")
    var name: String?

    @Option(name: .customLong("param"), help: "A parameter as name=value (repeatable); an unknown name is refused with the valid ones.")
    var params: [String] = []

    @Flag(help: "Try the kind's small parameter grid on a validation split and keep the best.")
    var search = false

    @Flag(help: "Add the version without publishing it.")
    var noPublish = false

    @Option(help: "Train only on pairs whose latest event is at or after this time (ISO 8601 or ms since the epoch).")
    var from: String?

    @Option(help: "Train only on pairs whose latest event is before this time.")
    var to: String?

    @OptionGroup var endpoints: Endpoints

    static let kinds =
        RecommenderModel.Kind.allCases.map(\.rawValue) + ["fraud", "propensity", "churn", "gbdt", "logistic", "segments", "uplift"]
    /// The kinds that name a classifier's target; they train the gbdt learner unless `learner=` says otherwise.
    static let targets = ["fraud", "propensity", "churn"]

    func validate() throws {
        guard Self.kinds.contains(kind) else {
            throw ValidationError("unknown kind '\(kind)'; one of \(Self.kinds.joined(separator: ", "))")
        }
    }

    func run() async throws {
        var request = TrainRequest()
        request.kind = Self.targets.contains(kind) ? .gbdt : kind == "segments" ? .kmeans : ModelKind(name: kind) ?? ModelKind(rawValue: -1)
        request.name = name ?? ""
        request.search = search
        request.publish = !noPublish
        request.dataFromMs = try from.map(Self.time) ?? 0
        request.dataToMs = try to.map(Self.time) ?? 0
        request.params = try params.map { p in
            guard let eq = p.firstIndex(of: "=") else { throw ValidationError("parameter '\(p)' is not name=value") }
            var kv = KeyValue()
            kv.key = String(p[..<eq])
            kv.value = String(p[p.index(after: eq)...])
            return kv
        }
        if Self.targets.contains(kind) {
            if let learner = request.params.first(where: { $0.key == "learner" }) {
                request.kind = learner.value == "logistic" ? .logistic : learner.value == "gbdt" ? .gbdt : ModelKind(rawValue: -1)
                request.params.removeAll { $0.key == "learner" }
            }
            if !request.params.contains(where: { $0.key == "target" }) {
                var kv = KeyValue()
                kv.key = "target"
                kv.value = kind
                request.params.append(kv)
            }
        }
        let endpoint = try endpoints.endpoint("model")
        let client = RPCClient(host: endpoint.host, port: endpoint.port)
        do {
            let started = try await client.call(ModelAPI.train, request, timeout: .seconds(10))
            let status = try await follow(started.jobId, client)
            await client.shutdown()
            try await report(status, endpoint: endpoint)
        } catch let error as RPCError {
            await client.shutdown()
            throw ValidationError("model at \(endpoint.address): \(error)")
        }
    }

    static func time(_ text: String) throws -> Int64 {
        if let ms = Int64(text) { return ms }
        let iso = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withFullDate]] {
            iso.formatOptions = options
            if let d = iso.date(from: text) { return Int64(d.timeIntervalSince1970 * 1000) }
        }
        throw ValidationError("'\(text)' is not a time (2011-10-01, 2011-10-01T00:00:00Z or milliseconds)")
    }

    /// Polls the job until it ends, drawing its progress.
    func follow(_ id: String, _ client: RPCClient) async throws -> JobStatusResponse {
        var bar = ProgressBar()
        var request = JobStatusRequest()
        request.jobId = id
        while true {
            let status = try await client.call(ModelAPI.jobStatus, request, timeout: .seconds(5))
            bar.draw(fraction: status.progress, text: status.message)
            switch status.state {
            case .succeeded, .failed, .cancelled:
                bar.finish()
                return status
            default:
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func report(_ status: JobStatusResponse, endpoint: Endpoints.Endpoint) async throws {
        guard status.state == .succeeded else {
            print("job \(status.jobId) \(status.state.name ?? "?"): \(status.message)")
            throw ExitCode(1)
        }
        let client = RPCClient(host: endpoint.host, port: endpoint.port)
        defer { Task { await client.shutdown() } }
        var r = GetReportRequest()
        r.name = status.name
        r.version = status.version
        let report = try await client.call(ModelAPI.getReport, r, timeout: .seconds(5))
        var l = ListModelsRequest()
        l.name = status.name
        let info = try await client.call(ModelAPI.listModels, l, timeout: .seconds(5)).models.first { $0.version == status.version }
        await client.shutdown()
        let published = info?.published == true
        if status.kind == .kmeans {
            print(
                """
                \(status.name) v\(status.version) (kmeans): \(report.params.first { $0.key == "k" }?.value ?? "?") \
                segments of \(report.users) users in \(String(format: "%.1f", info?.trainingSeconds ?? 0)) \
                s\(published ? ", published" : "")
                """
            )
            if let s = report.curves.first(where: { $0.name == "silhouette" }) {
                print("  silhouette by k: " + zip(s.x, s.y).map { String(format: "%.0f: %.3f", $0, $1) }.joined(separator: "  "))
            }
            for m in report.metrics { print("  " + m.name) }
            return
        }
        let classifier = status.kind == .gbdt || status.kind == .logistic
        // A fraud model's rows are labelled orders; a propensity or churn model's, users at cut-offs.
        let rowsAre = report.params.contains { $0.key == "target" && $0.value != "fraud" } ? "rows" : "labelled orders"
        let data =
            classifier
            ? "\(info?.interactions ?? 0) \(rowsAre) of \(info?.users ?? 0) users, \(info?.items ?? 0) features"
            : "\(info?.interactions ?? 0) interactions of \(info?.users ?? 0) users and \(info?.items ?? 0) items"
        print(
            """
            \(status.name) v\(status.version) (\(status.kind.name ?? "")): trained in \
            \(String(format: "%.1f", info?.trainingSeconds ?? 0)) s on \(data)\(published ? ", published" : "")
            """
        )
        print("  parameters: " + report.params.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        let baseline = Dictionary(report.baseline.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let rows = report.metrics.map { m in
            [m.name, String(format: "%.4f", m.value), baseline[m.name].map { String(format: "%.4f", $0) } ?? "-"]
        }
        print(
            Table.render(header: ["METRIC", "MODEL", classifier ? "PREVALENCE" : "POPULARITY"], rows: rows).split(separator: "\n").map {
                "  " + $0
            }.joined(separator: "\n"))
        if classifier {
            print("  thresholds (calibrated probability, on the validation rows):")
            for t in report.thresholds { print("    " + t.name) }
            print("  most important features:")
            for m in report.importance.prefix(8) { print("    " + m.name) }
            print(
                """
                  evaluated on \(report.testPairs) held-out \(rowsAre == "rows" ? "rows" : "orders") of \
                \(report.users) users (\(report.protocol))
                """
            )
        } else {
            print("  evaluated on \(report.users) users, \(report.testPairs) held-out pairs (\(report.protocol))")
        }
        if let names = report.comparison.first?.metrics.map(\.name).filter({ $0.hasPrefix("ndcg@") || $0.hasPrefix("hit_rate@") }),
            !names.isEmpty
        {
            print("  beside the other kinds at their defaults, same split:")
            let rows = report.comparison.map { c in
                [c.model] + names.map { n in c.metrics.first { $0.name == n }.map { String(format: "%.4f", $0.value) } ?? "-" } + [
                    String(format: "%.1f", c.trainingSeconds)
                ]
            }
            print(
                Table.render(header: ["MODEL"] + names.map { $0.uppercased() } + ["TRAINING S"], rows: rows).split(separator: "\n").map {
                    "    " + $0
                }.joined(separator: "\n"))
        }
    }
}

/// A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise.
struct ProgressBar {
    let terminal = isatty(2) == 1
    var last = ContinuousClock.now - .seconds(10)
    var lastText = ""

    mutating func draw(fraction: Double, text: String) {
        let now = ContinuousClock.now
        guard
            last.duration(to: now) > (terminal ? .milliseconds(150) : .seconds(3))
                || (!terminal && text != lastText && last.duration(to: now) > .seconds(1))
        else { return }
        last = now
        lastText = text
        let width = 30, filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: max(0, min(width, filled))) + String(repeating: ".", count: max(0, width - filled))
        let line = String(format: "[%@] %3d%%  %@", bar, Int(fraction * 100), text)
        FileHandle.standardError.write(Data(((terminal ? "\r\u{1B}[K" : "") + line + (terminal ? "" : "\n")).utf8))
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
