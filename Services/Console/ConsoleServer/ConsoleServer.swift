import ArgumentParser
import Console
import Foundation
import Logging
import RPC
import ServiceKit

/// `persona-console`: serves the risk console over HTTP until SIGTERM or SIGINT.
@main
struct ConsoleServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "persona-console", abstract: "Persona's risk console: decisions, labels, rules and lists in a browser.")

    @OptionGroup var console: ConsoleOptions

    func run() async throws {
        let settings = try console.resolve()
        let logger = {
            var l = Logger(label: "persona-console")
            l.logLevel = settings.logLevel
            return l
        }()
        // The services see the console as its tokens file's admin token.
        if let path = settings.tokensFile {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let tokens = try AccessToken.parse(text, file: path)
            guard let admin = tokens.first(where: { $0.role == .admin }) else {
                throw ValidationError("\(path) holds no admin token for the console to present")
            }
            ProcessCredential.set(admin.secret)
        }
        let app = try Console(settings: settings, logger: logger)
        try await app.application { port in logger.info("console on http://\(settings.host):\(port)") }.runService()
        await app.close()
    }
}
