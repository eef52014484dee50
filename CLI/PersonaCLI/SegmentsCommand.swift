import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona segments [NAME]`: the published customer segments, each one's size and what
/// sets it apart.
struct SegmentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "segments", abstract: "The customer segments: each one's size and what sets it apart.")

    @Argument(help: "The segmentation's name.") var name = "segments"
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var request = GetReportRequest()
        request.name = name
        let report: EvaluationReport
        do {
            report = try await endpoints.call("model") { try await $0.call(ModelAPI.getReport, request, timeout: .seconds(5)) }
        } catch let error as RPCError where error.code == .notFound {
            print("no segments yet: persona train segments")
            throw ExitCode(1)
        }
        print("\(name) v\(report.version): \(report.params.first { $0.key == "k" }?.value ?? "?") segments of \(report.users) users")
        print(Table.render(
            header: ["SEGMENT", "USERS", "WHAT SETS IT APART"],
            rows: report.metrics.map { m in
                // "segment 3: 412 users: spends ..." as its three columns.
                let parts = m.name.components(separatedBy: ": ")
                return [parts.first?.replacingOccurrences(of: "segment ", with: "") ?? "", parts.count > 1 ? parts[1].replacingOccurrences(of: " users", with: "") : "", parts.dropFirst(2).joined(separator: ": ")]
            }))
    }
}
