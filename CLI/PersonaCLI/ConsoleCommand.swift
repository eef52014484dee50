import ArgumentParser
import Console
import Foundation

/// `persona console user add|list`: the risk console's people, kept in its data directory.
struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console", abstract: "The risk console's people (persona-console).", subcommands: [UserCommand.self])

    struct UserCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "user", abstract: "Add or list the people who may sign in to the console.", subcommands: [Add.self, List.self])
    }

    /// Where the console keeps its people.
    struct Store: ParsableArguments {
        @Option(help: "The console's data directory (env PERSONA_CONSOLE_DATA_DIR, default ./data/console).")
        var dataDir: String?

        func people() throws -> People {
            let dir = dataDir ?? ProcessInfo.processInfo.environment["PERSONA_CONSOLE_DATA_DIR"] ?? "data/console"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return try People(path: dir + "/console.db")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a person, or set their role and password; the password is read from standard input (one line).")

        @Argument(help: "Their sign-in name.")
        var name: String

        @Option(help: "analyst, rule-author or admin.")
        var role: String

        @OptionGroup var store: Store

        func run() async throws {
            guard let role = ConsoleRole(rawValue: role) else {
                throw ValidationError("role must be one of \(ConsoleRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                throw ValidationError("no password on standard input")
            }
            do {
                try store.people().add(name: name, role: role, password: password, nowMs: Int64(Date().timeIntervalSince1970 * 1000))
            } catch let refused as People.Refused {
                throw ValidationError(refused.description)
            }
            print("\(name) may sign in to the console as \(role.rawValue)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the console's people and their roles.")

        @OptionGroup var store: Store

        func run() async throws {
            for p in try store.people().list() { print("\(p.name)\t\(p.role.rawValue)") }
        }
    }
}
