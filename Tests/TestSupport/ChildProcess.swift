public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program of this package (a service or the CLI) started as a real child process, with
/// its output captured to a file. Always terminate it: tests call `kill` in a `defer`.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let logURL: URL

    /// The directory holding the package's built executables (next to the test bundle).
    public static var productsDirectory: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("persona").path), url.path != "/" {
            url.deleteLastPathComponent()
        }
        return url
    }

    public init(_ product: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let executable = Self.productsDirectory.appendingPathComponent(product)
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: executable.path])
        }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("\(product)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    public func signal(_ signal: Int32) {
        if process.isRunning { Glibc.kill(pid, signal) }
    }

    /// Waits for exit (up to `timeout`) and returns the exit status, or nil if still running.
    public func waitForExit(timeout: Duration = .seconds(10)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    public var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// SIGKILL if still running; for `defer` blocks.
    public func kill() {
        signal(SIGKILL)
        process.waitUntilExit()
    }
}
