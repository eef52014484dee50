import ArgumentParser
import Foundation
import RPC
import ServiceKit
import Wire

/// `persona audience ...`: marketing audiences (docs/CAMPAIGNS.md): named expressions over
/// profiles, checked like rules, kept in the log, evaluated live by the feature service.
struct AudienceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audience",
        abstract: "Define, list and export marketing audiences: expressions over profile fields, tags, segment, scores and RFM.",
        subcommands: [List.self, Define.self, Delete.self, Members.self, Overlap.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Every audience with its size now and its latest measured sizes.")

        @Argument(help: "Only this audience, with every size measured.") var name = ""
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = ListAudiencesRequest()
            r.name = name
            let feature = try endpoints.featureReplicas()
            defer { Task { await feature.shutdown() } }
            let answer = try await feature.listAudiences(r, timeout: .seconds(60))
            print(
                Table.render(
                    header: ["AUDIENCE", "SIZE", "DEFINED", "BY", "EXPRESSION"],
                    rows: answer.audiences.map {
                        [$0.name, String($0.size), RiskText.time($0.definedMs), $0.definedBy.isEmpty ? "-" : $0.definedBy, $0.expression]
                    }))
            if !name.isEmpty, let a = answer.audiences.first {
                if !a.description.isEmpty { print("\n\(a.description)") }
                print("\nsize over time:")
                print(Table.render(header: ["HOUR", "SIZE"], rows: a.history.map { [RiskText.time($0.atMs), String($0.size)] }))
            }
        }
    }

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "define", abstract: "Define an audience, or replace its definition; errors name their column.")

        @Argument(help: "The name: 1 to 64 of a-z, 0-9, '-' and '_'.") var name: String
        @Argument(help: "The expression, e.g. \"segment == 0 and churn >= 0.6 and days_since_last_order > 30\".") var expression: String
        @Option(help: "What it is for.") var description = ""
        @Flag(help: "Check the expression only.") var check = false
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = DefineAudienceRequest()
            (r.name, r.expression, r.description, r.validateOnly) = (name, expression, description, check)
            let answer = try await endpoints.call("feature") { try await $0.call(FeatureAPI.defineAudience, r, timeout: .seconds(20)) }
            guard answer.errors.isEmpty else {
                for e in answer.errors { print("column \(e.column): \(e.message)") }
                throw ExitCode(1)
            }
            print("\(check ? "valid" : "defined") audience \(name), reading \(answer.reads.joined(separator: ", "))")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete an audience.")

        @Argument(help: "The audience.") var name: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = DefineAudienceRequest()
            (r.name, r.remove) = (name, true)
            _ = try await endpoints.call("feature") { try await $0.call(FeatureAPI.defineAudience, r, timeout: .seconds(20)) }
            print("deleted audience \(name)")
        }
    }

    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "members",
            abstract: "The audience's users now, by id (as ingest stores them), or all of them as CSV.")

        @Argument(help: "The audience.") var name: String
        @Option(name: .shortAndLong, help: "At most this many users (0: all).") var limit = 100
        @Option(help: "Write every member (one user_id a line, a header first) to this file ('-': standard output).") var csv: String?
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = AudienceMembersRequest()
            r.name = name
            let feature = try endpoints.featureReplicas()
            defer { Task { await feature.shutdown() } }
            let cap = csv != nil || limit == 0 ? Int.max : limit
            var users: [Int64] = []
            var more = false
            repeat {
                r.pageSize = UInt32(Swift.min(10_000, cap - users.count))
                let page = try await feature.audienceMembers(r, timeout: .seconds(60))
                users += page.userIds
                r.pageToken = page.nextPageToken
                more = !page.nextPageToken.isEmpty
            } while more && users.count < cap
            if let csv {
                let text = "user_id\n" + users.map { "\($0)\n" }.joined()
                if csv == "-" {
                    print(text, terminator: "")
                } else {
                    try text.write(toFile: csv, atomically: true, encoding: .utf8)
                    print("wrote \(users.count) members of \(name) to \(csv)")
                }
                return
            }
            print("\(users.count)\(more ? "+" : "") users in \(name)")
            for chunk in stride(from: 0, to: users.count, by: 10) {
                print(users[chunk..<Swift.min(users.count, chunk + 10)].map(String.init).joined(separator: " "))
            }
        }
    }

    struct Overlap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "overlap", abstract: "How many users two audiences share.")

        @Argument(help: "One audience.") var a: String
        @Argument(help: "The other.") var b: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = AudienceOverlapRequest()
            (r.a, r.b) = (a, b)
            let feature = try endpoints.featureReplicas()
            defer { Task { await feature.shutdown() } }
            let o = try await feature.audienceOverlap(r, timeout: .seconds(60))
            let share = o.aSize == 0 ? 0 : 100 * Double(o.both) / Double(o.aSize)
            print("\(a): \(o.aSize), \(b): \(o.bSize), both: \(o.both) (\(String(format: "%.1f", share))% of \(a))")
        }
    }
}
