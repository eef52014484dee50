import ArgumentParser

/// `persona`: the command line of the Persona suite.
@main
struct Persona: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona",
        abstract: "Talk to a running Persona suite.",
        subcommands: [
            HealthCommand.self, ImportCommand.self, ProfileCommand.self, TrainCommand.self, ModelsCommand.self, ModelCommand.self,
            SegmentsCommand.self, AudienceCommand.self, CampaignCommand.self, JobsCommand.self, RecommendCommand.self, SimilarCommand.self,
            PopularCommand.self,
            RiskCommand.self,
            EraseCommand.self, AuditCommand.self, EvalCommand.self, ReferenceCommand.self, ConsoleCommand.self,
        ])
}
