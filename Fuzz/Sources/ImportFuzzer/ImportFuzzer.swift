import Datasets
import FuzzDriver
import Wire

/// One fuzz input: a dataset file a shop hands over. Its lines are read as every format
/// `persona import` knows (taobao, online-retail, cdnow, ratings, fraud) and split every way
/// `persona eval split` does. Rows that make no sense are skipped with a reason; no input
/// crashes, hangs or makes more than a few events a line, every event packs, and each split
/// puts every line in at most one part. Crashes found become regression tests in
/// Tests/DatasetsTests/ImportFuzzRegressionTests.swift.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    for format in DatasetFormat.allCases {
        var skips = DatasetFormat.Skips()
        let events = format.events(lines: lines, options: .init(withLabels: true), skips: &skips)
        // At most a register, a profile, a purchase and a label a row, plus one catalogue entry.
        precondition(events.count <= 5 * lines.count, "\(format): \(events.count) events from \(lines.count) lines")
        for e in events { precondition(!e.serializedBytes().isEmpty) }
        for rule: DatasetSplit.Rule in [.time(at: 1_300_000_000_000, until: nil), .share(0.5), .lastOfUser, .users(share: 0.5, seed: 1)] {
            let split = DatasetSplit(format, lines: lines, rule: rule)
            let parts = split.train + split.test
            precondition(Set(parts).count == parts.count && parts.allSatisfy { lines.indices.contains($0) }, "\(format) \(rule)")
        }
    }
    return 0
}

@_cdecl("ImportFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
