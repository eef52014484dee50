import ArgumentParser
import Ingest
import ServiceKit

/// `persona-ingest`: runs the ingest service until SIGTERM or SIGINT.
@main
struct IngestServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "persona-ingest", abstract: "Persona ingest service.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        try await ServiceHost<IngestService>.main(options: options)
    }
}
