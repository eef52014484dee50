import ArgumentParser
import Foundation

/// `persona cli-reference` (hidden): every command's own help as Markdown, the body of
/// docs/CLI.md (`make docs` writes it; a test compares it with the help the commands give).
struct ReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cli-reference", abstract: "Print every command's help as Markdown (docs/CLI.md).", shouldDisplay: false)

    /// Help lines are wrapped at this width whatever the terminal.
    static let columns = 100

    func run() {
        print(Self.markdown(Persona.self, path: []), terminator: "")
    }

    /// The command's help under a heading naming it, then each of its subcommands' (hidden
    /// ones left out), depth first in the order `persona help` lists them.
    static func markdown(_ command: any ParsableCommand.Type, path: [String]) -> String {
        let name = command.configuration.commandName ?? "persona"
        let here = path + [name]
        let help = path.isEmpty ? Persona.helpMessage(columns: columns) : Persona.helpMessage(for: command, columns: columns)
        var out = "\(String(repeating: "#", count: min(here.count + 1, 4))) `\(here.joined(separator: " "))`\n\n```\n"
        out += help.trimmingCharacters(in: .newlines) + "\n```\n\n"
        for sub in command.configuration.subcommands where sub.configuration.shouldDisplay {
            out += markdown(sub, path: here)
        }
        return out
    }
}
