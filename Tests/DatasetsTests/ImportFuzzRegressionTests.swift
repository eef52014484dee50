import Datasets
import Foundation
import TestSupport
import Testing

/// Replays the import fuzzer's seeds and every file it ever crashed on
/// (Fuzz/regressions/import) through every format and every split.
@Suite("Import fuzz regressions")
struct ImportFuzzRegressionTests {
    @Test("each seed is a real file of its format: every row makes events, none is skipped")
    func seedsImport() throws {
        let formats: [String: DatasetFormat] = [
            "fraud": .fraud, "online-retail": .onlineRetail, "taobao": .taobao, "cdnow": .cdnow, "ratings": .ratings,
        ]
        let seeds = fuzzInputs("seeds/import")
        #expect(seeds.count == formats.count)
        for url in seeds {
            let format = try #require(formats[url.deletingPathExtension().lastPathComponent])
            let lines = try String(contentsOf: url, encoding: .utf8).split(whereSeparator: \.isNewline)
            var skips = DatasetFormat.Skips()
            #expect(!format.events(lines: lines, skips: &skips).isEmpty)
            #expect(skips.byReason.isEmpty, "\(url.lastPathComponent): \(skips.byReason)")
        }
    }

    @Test("every recorded file is read as every format and split every way without a crash")
    func recordedInputsImport() throws {
        for url in fuzzInputs("regressions/import") + fuzzInputs("seeds/import") {
            let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
            let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            for format in DatasetFormat.allCases {
                var skips = DatasetFormat.Skips()
                #expect(format.events(lines: lines, skips: &skips).count <= 5 * lines.count)
                for rule: DatasetSplit.Rule in [.time(at: 1_300_000_000_000, until: nil), .share(0.5), .lastOfUser] {
                    let split = DatasetSplit(format, lines: lines, rule: rule)
                    #expect(Set(split.train).isDisjoint(with: split.test))
                }
            }
        }
    }
}
