import ArgumentParser
import RiskControl
import ServiceKit

/// `persona-risk-control`: runs the risk-control service until SIGTERM or SIGINT.
@main
struct RiskControlServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "persona-risk-control", abstract: "Persona risk-control service.")

    @OptionGroup var options: ServiceOptions
    @OptionGroup var risk: RiskOptions

    func run() async throws {
        try await ServiceHost<RiskControlService>.main(options: options, settings: try risk.resolve())
    }
}
