public import Foundation

/// Runs a program to completion, feeding `input` on stdin, and returns its exit status and
/// stdout. For tests that check our bytes against other implementations (protoc).
public func runProcess(_ executable: String, _ arguments: [String], input: [UInt8] = [], environment: [String: String] = [:]) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    // Write stdin on another thread so a large output cannot deadlock against a large input.
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    // Both pipes drained at once, so neither fills while the other is read.
    nonisolated(unsafe) var err = Data()
    let errRead = DispatchSemaphore(value: 0)
    Thread {
        err = stderr.fileHandleForReading.readDataToEndOfFile()
        errRead.signal()
    }.start()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    errRead.wait()
    process.waitUntilExit()
    return (process.terminationStatus, [UInt8](out), String(decoding: err, as: UTF8.self))
}

/// The repository root, found from this source file's location.
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
