public import Foundation

/// Runs a program to completion, feeding `input` on stdin, and returns its exit status and
/// stdout. The blocking reads and waits run on threads of their own: a test waiting for a
/// long command must not hold one of the cooperative pool's threads (two on a two-core
/// machine), which every other test running meanwhile needs. At most one program a core runs
/// at once (the protoc checks alone would start a hundred), so the tests that time their
/// own servers are not starved.
public func runProcess(_ executable: String, _ arguments: [String], input: [UInt8] = [], environment: [String: String] = [:]) async throws
    -> (status: Int32, stdout: [UInt8], stderr: String)
{
    await ProcessSlots.shared.acquire()
    defer { Task { await ProcessSlots.shared.release() } }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    return await withCheckedContinuation { continuation in
        // Write stdin on another thread so a large output cannot deadlock against a large input.
        Thread {
            stdin.fileHandleForWriting.write(Data(input))
            try? stdin.fileHandleForWriting.close()
        }.start()
        // Both pipes drained at once, so neither fills while the other is read.
        nonisolated(unsafe) var err = Data()
        let errRead = DispatchSemaphore(value: 0)
        Thread {
            err = stderr.fileHandleForReading.readDataToEndOfFile()
            errRead.signal()
        }.start()
        Thread {
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            errRead.wait()
            process.waitUntilExit()
            continuation.resume(returning: (process.terminationStatus, [UInt8](out), String(decoding: err, as: UTF8.self)))
        }.start()
    }
}

/// The repository root, found from this source file's location.
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// How many programs `runProcess` may run at once, and who waits for a turn.
actor ProcessSlots {
    static let shared = ProcessSlots(free: max(2, ProcessInfo.processInfo.activeProcessorCount))

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(free: Int) { self.free = free }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}

/// The files of a fuzz target's seeds or regressions folder (`Fuzz/seeds/rules`, ...), in
/// name order, hidden files left out.
public func fuzzInputs(_ folder: String) -> [URL] {
    let dir = repositoryRoot.appendingPathComponent("Fuzz/\(folder)")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
}
