import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona erase USER --yes`: erases a user everywhere (an admin call at ingest). The
/// erasure event goes into the log, ingest removes the user's stored events from it, and
/// every service forgets them as it reads the erasure: feature drops the profile, model the
/// interactions and the factor rows of stored models, recommend what it holds in memory,
/// risk-control pseudonymises the user's decisions.
struct EraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase", abstract: "Erase a user from every service (irreversible; needs an admin token).",
        discussion: "Example: persona erase 17850 --yes --wait")

    @Argument(help: "The user id.")
    var user: Int64

    @Flag(help: "Confirm: the user's events, profile and model rows cannot be brought back.")
    var yes = false

    @Flag(help: "Then wait until feature, model, risk-control and recommend have applied it (up to --wait-timeout seconds).")
    var wait = false

    @Option(help: "Seconds --wait waits at most.")
    var waitTimeout: Double = 120

    @OptionGroup var endpoints: Endpoints

    func validate() throws {
        guard user > 0 else { throw ValidationError("user id must be positive") }
        guard yes else { throw ValidationError("erasing user \(user) cannot be undone: repeat with --yes") }
    }

    func run() async throws {
        var request = EraseRequest()
        request.userId = user
        let response = try await endpoints.call("ingest") { try await $0.call(IngestAPI.erase, request, timeout: .seconds(300)) }
        print(
            """
            erased user \(user): erasure event at partition \(response.partition) offset \(response.offset); \
            \(response.eventsRemoved) stored events removed from \(response.segmentsRewritten) log segments
            """
        )
        guard wait else { return }
        let started = ContinuousClock.now
        try await endpoints.waitUntilRead(
            by: [("feature", "offsets"), ("model", "offsets"), ("risk-control", "erasure_offsets"), ("recommend", "erasure_offsets")],
            timeout: waitTimeout)
        print(
            String(
                format: "  applied by feature, model, risk-control and recommend within %.1f s", started.duration(to: .now) / .seconds(1)))
    }
}
