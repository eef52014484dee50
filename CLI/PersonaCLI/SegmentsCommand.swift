import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona segments [NAME]`: the published customer segments, each one's size and what
/// sets it apart; `persona segments members` lists a segment, a tag or an audience.
struct SegmentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segments", abstract: "The customer segments: each one's size and what sets it apart.",
        subcommands: [Show.self, Members.self], defaultSubcommand: Show.self)
}

extension SegmentsCommand {
    /// `persona segments members`: the users of a segment, with a tag, or whose propensity
    /// or churn probability is at least a bound (an audience for a campaign), by id.
    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "members", abstract: "List the users of a segment, with a tag, or whose propensity/churn score is at least --min.")

        @Option(help: "The segment's id.") var segment: Int32?
        @Option(help: "A profile tag (e.g. champions).") var tag: String?
        @Option(help: "A published user classifier's name (propensity, churn).") var score: String?
        @Option(help: "With --score: the least probability (0...1).") var min: Float = 0.5
        @Option(name: .shortAndLong, help: "At most this many users.") var limit = 100
        @OptionGroup var endpoints: Endpoints

        func validate() throws {
            guard [segment != nil, tag != nil, score != nil].filter({ $0 }).count == 1 else {
                throw ValidationError("give one of --segment, --tag or --score")
            }
            guard (0...1).contains(min) else { throw ValidationError("--min must be within 0...1") }
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
        }

        func run() async throws {
            var request = SegmentMembersRequest()
            request.segmentId = segment ?? 0
            request.tag = tag ?? ""
            request.score = score ?? ""
            request.minProbability = min
            let feature = try endpoints.featureReplicas()
            var users: [Int64] = []
            var more = false
            repeat {
                request.pageSize = UInt32(Swift.min(10_000, limit - users.count))
                let page: SegmentMembersResponse
                do { page = try await feature.segmentMembers(request, timeout: .seconds(30)) } catch {
                    await feature.shutdown()
                    throw ValidationError("feature: \(error)")
                }
                users += page.userIds
                request.pageToken = page.nextPageToken
                more = !page.nextPageToken.isEmpty
            } while more && users.count < limit
            await feature.shutdown()
            let what = score.map { String(format: "%@ >= %.2f", $0, Double(min)) } ?? tag.map { "tag \($0)" } ?? "segment \(segment ?? 0)"
            print("\(users.count)\(more ? "+" : "") users with \(what)")
            for chunk in stride(from: 0, to: users.count, by: 10) {
                print(users[chunk..<Swift.min(users.count, chunk + 10)].map(String.init).joined(separator: " "))
            }
        }
    }
}

extension SegmentsCommand {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Each segment's size and what sets it apart.")

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
            print(
                Table.render(
                    header: ["SEGMENT", "USERS", "WHAT SETS IT APART"],
                    rows: report.metrics.map { m in
                        // "segment 3: 412 users: spends ..." as its three columns.
                        let parts = m.name.components(separatedBy: ": ")
                        return [
                            parts.first?.replacingOccurrences(of: "segment ", with: "") ?? "",
                            parts.count > 1 ? parts[1].replacingOccurrences(of: " users", with: "") : "",
                            parts.dropFirst(2).joined(separator: ": "),
                        ]
                    }))
        }
    }
}
