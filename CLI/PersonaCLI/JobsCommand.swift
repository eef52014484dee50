import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona jobs [cancel ID]`: the model service's training jobs.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List training jobs, or cancel one.", subcommands: [ListJobs.self, CancelJob.self],
        defaultSubcommand: ListJobs.self)

    struct ListJobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List training jobs, newest last.")
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            let jobs = try await endpoints.call("model") { try await $0.call(ModelAPI.listJobs, ListJobsRequest(), timeout: .seconds(5)) }
                .jobs
            guard !jobs.isEmpty else {
                print("no training jobs yet: persona train als")
                return
            }
            print(
                Table.render(
                    header: ["JOB", "NAME", "KIND", "STATE", "PROGRESS", "VERSION", "CREATED", "MESSAGE"],
                    rows: jobs.map { j in
                        [
                            j.jobId, j.name, j.kind.name ?? "", j.state.name ?? "", "\(Int(j.progress * 100))%",
                            j.version == 0 ? "" : "v\(j.version)",
                            ProfileText.date(j.createdMs), j.message,
                        ]
                    }))
        }
    }

    struct CancelJob: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a queued or running job.")
        @Argument var job: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var request = CancelJobRequest()
            request.jobId = job
            let status = try await endpoints.call("model") { try await $0.call(ModelAPI.cancelJob, request, timeout: .seconds(5)) }
            print("\(status.jobId): \(status.state.name ?? "") (\(status.message))")
        }
    }
}
