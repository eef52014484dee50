import ArgumentParser
import Foundation
import RPC
import ServiceKit
import Wire

/// `persona risk cases ...`: the case queues (docs/RISK.md, "Cases").
struct RiskCases: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cases",
        abstract: "The case queues: list them, show a case, take the next one, or change one (status, assignee, team, comment, outcome).",
        subcommands: [List.self, Show.self, Take.self, Update.self], defaultSubcommand: List.self)

    static let statuses = Dictionary(uniqueKeysWithValues: CaseStatus.allKnown.dropFirst().map { ($0.name ?? "", $0) })
    static let outcomes = Dictionary(uniqueKeysWithValues: CaseOutcome.allKnown.dropFirst().map { ($0.name ?? "", $0) })

    static func row(_ c: Case) -> [String] {
        [
            c.caseId, RiskText.time(c.openedMs), c.team, c.status.name ?? "-", c.assignee.isEmpty ? "-" : c.assignee,
            c.outcome == .unspecified ? "-" : c.outcome.name ?? "-", c.orderId, String(c.userId), String(c.score),
            RiskText.action(c.action),
        ]
    }

    static let header = ["CASE", "OPENED", "TEAM", "STATUS", "ASSIGNEE", "OUTCOME", "ORDER", "USER", "SCORE", "ACTION"]

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Every team's queue counts, then the cases, oldest first.")

        @Option(help: "Only this team's cases.") var team = ""
        @Option(help: "open, investigating, waiting or resolved (default: every status but resolved).") var status: String?
        @Option(help: "Only the cases this person works.") var assignee = ""
        @Option(help: "At most this many.") var limit: UInt32 = 50
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var q = QueryCasesRequest()
            q.team = team
            if let status { q.status = try RiskText.parse(status, RiskCases.statuses, "status") }
            q.assignee = assignee
            q.limit = limit
            let answer = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.queryCases, q, timeout: .seconds(10)) }
            print(
                Table.render(
                    header: ["TEAM", "OPEN", "INVESTIGATING", "WAITING", "NOBODY'S"],
                    rows: answer.teams.map {
                        [$0.team, String($0.`open`), String($0.investigating), String($0.waiting), String($0.unassigned)]
                    }))
            print("")
            print(Table.render(header: RiskCases.header, rows: answer.cases.map(RiskCases.row)))
            if !answer.nextPageToken.isEmpty { print("more: the next page starts after case \(answer.nextPageToken)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "A case with every change and comment.")

        @Argument(help: "The case id (its decision's id).") var id: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = GetCaseRequest()
            r.caseId = id
            let answer = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.getCase, r, timeout: .seconds(10)) }
            guard let c = answer.case else { throw ValidationError("no case \(id)") }
            print(Table.render(header: RiskCases.header, rows: [RiskCases.row(c)]))
            print("")
            for change in answer.history {
                let comment = change.comment.isEmpty ? "" : ": \"\(change.comment)\""
                print("\(RiskText.time(change.atMs))  \(change.by) \(change.summary)\(comment)")
            }
        }
    }

    struct Take: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "take", abstract: "Take the oldest open case of a team that nobody works; it becomes yours, investigating.")

        @Argument(help: "The team (a decision's kind by default: order, payment, login, signup, refund).") var team: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = TakeNextCaseRequest()
            r.team = team
            let answer = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.takeNextCase, r, timeout: .seconds(10)) }
            guard let c = answer.case else {
                print("the \(team) queue has no open case that nobody works")
                return
            }
            print(Table.render(header: RiskCases.header, rows: [RiskCases.row(c)]))
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update", abstract: "Change a case; an outcome resolves it and labels its order.")

        @Argument(help: "The case id.") var id: String
        @Option(help: "open, investigating or waiting.") var status: String?
        @Option(help: "Give it to this person.") var assign: String?
        @Flag(help: "Give it back to the queue.") var unassign = false
        @Option(help: "Move it to this team's queue.") var team = ""
        @Option(help: "A comment.") var comment = ""
        @Option(help: "fraud, legitimate or false_positive: resolves the case and labels the order.") var outcome: String?
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = UpdateCaseRequest()
            r.caseId = id
            if let status { r.status = try RiskText.parse(status, RiskCases.statuses, "status") }
            if let assign { (r.assign, r.assignee) = (true, assign) }
            if unassign { (r.assign, r.assignee) = (true, "") }
            r.team = team
            r.comment = comment
            if let outcome { r.outcome = try RiskText.parse(outcome, RiskCases.outcomes, "outcome") }
            let c = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.updateCase, r, timeout: .seconds(10)) }
            print(Table.render(header: RiskCases.header, rows: [RiskCases.row(c)]))
        }
    }
}

/// `persona risk replay ID`: a stored decision made again from its stored inputs and versions.
struct RiskReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Make a stored decision again from its stored request, features, model version and rules; exits 1 when it differs.")

    @Argument(help: "The decision id.") var id: String
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var r = ReplayRequest()
        r.decisionId = id
        let answer = try await endpoints.call("risk-control") { try await $0.call(RiskAPI.replay, r, timeout: .seconds(30)) }
        if let stored = answer.stored { print("stored:   " + RiskText.summary(stored)) }
        if let replayed = answer.replayed { print("replayed: " + RiskText.summary(replayed)) }
        for note in answer.notes { print("note: \(note)") }
        if answer.matches {
            print("matches")
        } else {
            for d in answer.differences { print("differs: \(d)") }
            throw ExitCode(1)
        }
    }
}
