import ArgumentParser
import Recommend
import ServiceKit

/// `persona-recommend`: runs the recommend service until SIGTERM or SIGINT.
@main
struct RecommendServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "persona-recommend", abstract: "Persona recommend service.")

    @OptionGroup var options: ServiceOptions
    @OptionGroup var recommend: RecommendOptions

    func run() async throws {
        try await ServiceHost<RecommendService>.main(options: options, settings: try recommend.resolve())
    }
}
