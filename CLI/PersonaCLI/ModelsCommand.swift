import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona models [NAME]`: every version the model service holds, with its metrics.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List model versions with their metrics.")

    @Argument(help: "Only this model's versions.")
    var name: String?

    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var request = ListModelsRequest()
        request.name = name ?? ""
        let models = try await endpoints.call("model") { try await $0.call(ModelAPI.listModels, request, timeout: .seconds(5)) }.models
        guard !models.isEmpty else {
            print(name.map { "no versions of '\($0)'" } ?? "no models yet: persona train als")
            return
        }
        func metric(_ info: ModelInfo, _ prefix: String) -> String {
            info.metrics.first { $0.name.hasPrefix(prefix) }.map { String(format: "%.4f", $0.value) } ?? "-"
        }
        let classifiers = models.filter { $0.kind == .gbdt || $0.kind == .logistic }
        let recommenders = models.filter { !($0.kind == .gbdt || $0.kind == .logistic) }
        if !recommenders.isEmpty {
            let k = recommenders.first?.metrics.first { $0.name.hasPrefix("ndcg@") }?.name.dropFirst(5) ?? "10"
            let rows = recommenders.map { m in
                [
                    m.name, "v\(m.version)\(m.revision > 0 ? " r\(m.revision)" : "")", m.kind.name ?? "", m.published ? "yes" : "",
                    ProfileText.date(m.createdMs), metric(m, "ndcg@"), metric(m, "precision@"),
                    metric(m, "recall@"), metric(m, "coverage@"), "\(m.users)", "\(m.items)", "\(m.interactions)",
                    String(format: "%.1fs", m.trainingSeconds),
                ]
            }
            print(
                Table.render(
                    header: [
                        "NAME", "VERSION", "KIND", "PUBLISHED", "CREATED", "NDCG@\(k)", "P@\(k)", "R@\(k)", "COVERAGE", "USERS", "ITEMS",
                        "PAIRS", "TRAINING",
                    ],
                    rows: rows))
        }
        if !classifiers.isEmpty {
            if !recommenders.isEmpty { print("") }
            let rows = classifiers.map { m in
                [
                    m.name, "v\(m.version)\(m.revision > 0 ? " r\(m.revision)" : "")", m.kind.name ?? "", m.published ? "yes" : "",
                    ProfileText.date(m.createdMs), metric(m, "roc_auc"), metric(m, "pr_auc"),
                    metric(m, "log_loss"), "\(m.interactions)", "\(m.items)", String(format: "%.1fs", m.trainingSeconds),
                ]
            }
            print(
                Table.render(
                    header: [
                        "NAME", "VERSION", "KIND", "PUBLISHED", "CREATED", "ROC-AUC", "PR-AUC", "LOG LOSS", "ROWS", "FEATURES", "TRAINING",
                    ], rows: rows))
        }
    }
}

/// `persona model report|publish|rollback`.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Report on, publish or roll back a model version.",
        subcommands: [ReportCommand.self, CompareCommand.self, PublishCommand.self, RollbackCommand.self])

    struct CompareCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "compare", abstract: "Two versions' metrics and parameters side by side.")
        @Argument var name: String
        @Argument var first: UInt32
        @Argument var second: UInt32
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            func report(_ v: UInt32) async throws -> EvaluationReport {
                var r = GetReportRequest()
                r.name = name
                r.version = v
                return try await endpoints.call("model") { try await $0.call(ModelAPI.getReport, r, timeout: .seconds(5)) }
            }
            let a = try await report(first), b = try await report(second)
            let bValues = Dictionary(b.metrics.map { ($0.name, $0.value) }, uniquingKeysWith: { x, _ in x })
            var rows = a.metrics.map { m -> [String] in
                let other = bValues[m.name]
                return [
                    m.name, String(format: "%.4f", m.value), other.map { String(format: "%.4f", $0) } ?? "-",
                    other.map { String(format: "%+.4f", $0 - m.value) } ?? "-",
                ]
            }
            let aParams = Dictionary(a.params.map { ($0.key, $0.value) }, uniquingKeysWith: { x, _ in x })
            let bParams = Dictionary(b.params.map { ($0.key, $0.value) }, uniquingKeysWith: { x, _ in x })
            for key in Set(aParams.keys).union(bParams.keys).sorted() where aParams[key] != bParams[key] {
                rows.append([key, aParams[key] ?? "-", bParams[key] ?? "-", ""])
            }
            rows.append(["evaluated users", "\(a.users)", "\(b.users)", ""])
            print(Table.render(header: ["", "\(name) v\(a.version)", "\(name) v\(b.version)", "CHANGE"], rows: rows))
        }
    }

    struct PublishCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish a version (other services swap it in).")
        @Argument var name: String
        @Argument var version: UInt32
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var request = PublishModelRequest()
            request.name = name
            request.version = version
            let info = try await endpoints.call("model") { try await $0.call(ModelAPI.publish, request, timeout: .seconds(10)) }.info
            print("published \(name) v\(info?.version ?? version)")
        }
    }

    struct RollbackCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rollback", abstract: "Publish the version published before the current one.")
        @Argument var name: String
        @Option(help: "Publish this version instead.") var to: UInt32 = 0
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var request = RollbackModelRequest()
            request.name = name
            request.version = to
            let info = try await endpoints.call("model") { try await $0.call(ModelAPI.rollback, request, timeout: .seconds(10)) }.info
            print("\(name): v\(info?.version ?? 0) is published")
        }
    }
}
