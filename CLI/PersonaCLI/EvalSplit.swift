import ArgumentParser
import Datasets
import Foundation

/// `persona eval split FILE --format F (--at T | --share S | --last-of-user | --users S) --train A --test B`:
/// a dataset file cut into a training file and a held-out file of the same format, for a
/// trial: import the first, train, then score the served answers against the second.
struct EvalSplit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: """
            Cut a dataset file into a training part and a held-out part (by time, by a share in time order, each \
            user's last row, or a share of users).
            """
    )

    @Argument(help: "The dataset file.") var file: String
    @Option(help: "Its format: taobao, online-retail, cdnow, ratings or fraud.") var format: String
    @Option(help: "Rows before this time train, later rows are held out (ISO 8601 or ms since the epoch).") var at: String?
    @Option(help: "With --at: rows from this time on are left out of both parts.") var until: String?
    @Option(help: "The first SHARE of rows in time order train (0...1), the rest are held out (fraud: by purchase time).")
    var share: Double?
    @Flag(help: "Each user's last row in time order is held out (leave-last-out).") var lastOfUser = false
    @Option(help: "A share of users (0...1, drawn by a hash of the id and --seed) train; the others' rows are held out.")
    var users: Double?
    @Option(help: "The seed of --users.") var seed: UInt64 = 1
    @Option(help: "Where the training part is written.") var train: String
    @Option(help: "Where the held-out part is written.") var test: String

    func validate() throws {
        guard DatasetFormat(rawValue: format) != nil else {
            throw ValidationError("unknown format '\(format)'; one of \(DatasetFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard [at != nil, share != nil, lastOfUser, users != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --at, --share, --last-of-user and --users")
        }
        if let share, !(0...1).contains(share) { throw ValidationError("--share must be within 0...1") }
        if let users, !(0...1).contains(users) { throw ValidationError("--users must be within 0...1") }
        if until != nil && at == nil { throw ValidationError("--until goes with --at") }
    }

    func run() throws {
        // As `persona import` reads it, so line numbers (and the rows they name) agree.
        let lines = try ImportCommand.lines(of: file)
        let rule: DatasetSplit.Rule
        if let at {
            rule = .time(at: try TrainCommand.time(at), until: try until.map(TrainCommand.time))
        } else if let share {
            rule = .share(share)
        } else if let users {
            rule = .users(share: users, seed: seed)
        } else {
            rule = .lastOfUser
        }
        let split = DatasetSplit(DatasetFormat(rawValue: format)!, lines: lines, rule: rule)
        func write(_ rows: [Int], to path: String) throws {
            let body = (split.shared + rows).map { lines[$0] }.joined(separator: "\n") + "\n"
            guard FileManager.default.createFile(atPath: path, contents: Data(body.utf8)) else {
                throw ValidationError("cannot write \(path)")
            }
        }
        try write(split.train, to: train)
        try write(split.test, to: test)
        print("\(file): \(split.train.count) lines to \(train), \(split.test.count) held out to \(test)")
        if split.dropped > 0 { print("  \(split.dropped) lines after --until left out") }
    }
}
