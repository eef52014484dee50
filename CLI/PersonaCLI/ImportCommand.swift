import ArgumentParser
import Datasets
import Foundation
import RPC
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// `persona import FILE --format F`: turns a dataset into events and appends them to ingest
/// in order, with a progress line, then prints what happened to every row.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import a dataset file into the event log.")

    @Argument(help: "The file to import.")
    var file: String

    @Option(help: "taobao, online-retail, cdnow, ratings (MovieLens user::item::rating::ts) or fraud.")
    var format: String

    @Flag(help: "fraud format: leave out the label events (for rows whose outcome must stay unseen).")
    var withoutLabels = false

    @Option(help: "Events per Append call.")
    var batchSize = 2000

    @Option(
        help:
            """
            Shift every event's time by one amount so that the file's latest event falls at this time \
            (2010-12-07T15:00:00Z or ms): replays a dataset beside another on one shop clock, intervals kept, event \
            ids unchanged.
            """
    )
    var endAt: String?

    @Flag(help: "Then wait until the feature and model services have read every event of the log (up to --wait-timeout seconds).")
    var wait = false

    @Option(help: "Seconds --wait waits at most.")
    var waitTimeout: Double = 300

    @OptionGroup var endpoints: Endpoints

    func validate() throws {
        guard DatasetFormat(rawValue: format) != nil else {
            throw ValidationError("unknown format '\(format)'; one of \(DatasetFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1...10_000).contains(batchSize) else { throw ValidationError("batch size must be 1...10000") }
    }

    func run() async throws {
        let format = DatasetFormat(rawValue: format)!
        let lines = try Self.lines(of: file)
        var skips = DatasetFormat.Skips()
        var events = format.events(lines: lines, options: .init(withLabels: !withoutLabels), skips: &skips)
        if let endAt, let latest = events.map(\.timestampMs).max() {
            let shift = try TrainCommand.time(endAt) - latest
            for i in events.indices { events[i].timestampMs += shift }
        }

        let address = try endpoints.endpoint("ingest")
        let client = RPCClient(host: address.host, port: address.port)
        var progress = Progress(total: events.count)
        var accepted = 0, duplicates = 0
        var rejected: [String: Int] = [:]
        var examples: [String: String] = [:]
        do {
            var start = 0
            while start < events.count {
                let end = min(start + batchSize, events.count)
                var request = AppendRequest()
                request.events = Array(events[start..<end])
                let response = try await client.call(IngestAPI.append, request, timeout: .seconds(60))
                accepted += Int(response.accepted)
                duplicates += Int(response.duplicates)
                for s in response.statuses where s.code == .rejected {
                    let reason = s.reason.name ?? "\(s.reason.rawValue)"
                    rejected[reason, default: 0] += 1
                    examples[reason] = examples[reason] ?? s.detail
                }
                start = end
                progress.update(done: start)
            }
        } catch {
            await client.shutdown()
            progress.finish()
            throw error
        }
        await client.shutdown()
        progress.finish()

        print(
            """
            imported \(file) (\(format.rawValue)): \(lines.filter { !$0.isEmpty }.count) lines -> \(events.count) \
            events in \(progress.elapsedText)
            """
        )
        print("  accepted    \(accepted)")
        print("  duplicates  \(duplicates)")
        print("  rejected    \(rejected.values.reduce(0, +))")
        for (reason, n) in rejected.sorted(by: { $0.key < $1.key }) {
            print("    \(reason): \(n)  (e.g. \(examples[reason] ?? ""))")
        }
        for (reason, n) in skips.byReason.sorted(by: { $0.key < $1.key }) {
            print("  rows skipped, \(reason): \(n)")
        }
        if wait { try await waitConsumed() }
    }

    /// A dataset file's lines as import reads them (empty lines kept, so a line's number,
    /// which event ids carry, is the same wherever the file is read: eval split and eval).
    static func lines(of path: String) throws -> [Substring] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        // Character-wise: "\r\n" is one Character, so split on isNewline, not on "\n".
        return String(decoding: data, as: UTF8.self).split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    }

    func waitConsumed() async throws {
        let started = ContinuousClock.now
        try await endpoints.waitUntilRead(by: [("feature", "offsets"), ("model", "offsets")], timeout: waitTimeout)
        print(String(format: "  read by feature and model within %.1f s", started.duration(to: .now) / .seconds(1)))
    }
}

/// A one-line progress display on stderr (events, events/s, percent, ETA), redrawn in place
/// on a terminal and printed every few seconds otherwise.
struct Progress {
    let total: Int
    let start = ContinuousClock.now
    var lastDraw = ContinuousClock.now - .seconds(10)
    let terminal = isatty(2) == 1

    init(total: Int) { self.total = total }

    var elapsed: Double {
        let d = start.duration(to: .now)
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    var elapsedText: String { String(format: "%.1f s", elapsed) }

    mutating func update(done: Int) {
        let now = ContinuousClock.now
        guard lastDraw.duration(to: now) > (terminal ? .milliseconds(200) : .seconds(5)) || done == total else { return }
        lastDraw = now
        let rate = Double(done) / max(elapsed, 0.001)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(
            format: "[%@] %3d%%  %d/%d events  %.0f events/s  ETA %.0f s", bar, total == 0 ? 100 : 100 * done / total, done, total, rate,
            eta)
        FileHandle.standardError.write(Data(((terminal ? "\r" : "") + line + (terminal ? "" : "\n")).utf8))
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
