import ArgumentParser
import Feature
import ServiceKit

/// `persona-feature`: runs the feature service until SIGTERM or SIGINT.
@main
struct FeatureServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona-feature", abstract: "Persona feature service: live user and item profiles.")

    @OptionGroup var options: ServiceOptions
    @OptionGroup var feature: FeatureOptions

    func run() async throws {
        try await ServiceHost<FeatureService>.main(options: options, settings: try feature.resolve())
    }
}
