import ArgumentParser
import Model
import ServiceKit

/// `persona-model`: runs the model service until SIGTERM or SIGINT.
@main
struct ModelServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona-model", abstract: "Persona model service: training jobs, versioned models.")

    @OptionGroup var options: ServiceOptions
    @OptionGroup var model: ModelOptions

    func run() async throws {
        try await ServiceHost<ModelService>.main(options: options, settings: try model.resolve())
    }
}
