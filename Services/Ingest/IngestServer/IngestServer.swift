import ArgumentParser
import Ingest
import ServiceKit

/// `persona-ingest`: runs the ingest service until SIGTERM or SIGINT.
@main
struct IngestServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona-ingest", abstract: "Persona ingest service: the durable event log.")

    @OptionGroup var options: ServiceOptions
    @OptionGroup var ingest: IngestOptions

    func run() async throws {
        try await ServiceHost<IngestService>.main(options: options, settings: try ingest.resolve())
    }
}
