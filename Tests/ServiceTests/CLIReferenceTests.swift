import Foundation
import TestSupport
import Testing

/// docs/CLI.md is generated from the programs' own help, so it cannot drift from them.
@Suite("Command reference")
struct CLIReferenceTests {
    @Test("docs/CLI.md is word for word the help of persona and the five services (make docs writes it)")
    func referenceIsTheHelp() async throws {
        let script = repositoryRoot.appendingPathComponent("scripts/cli-reference.sh").path
        let run = try await runProcess("/bin/bash", [script, ChildProcess.productsDirectory.path])
        #expect(run.status == 0, "\(run.stderr)")
        let generated = String(decoding: run.stdout, as: UTF8.self)
        let committed = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/CLI.md"), encoding: .utf8)
        #expect(generated.contains("## `persona`") && generated.contains("### `persona-risk-control`"))
        if generated != committed {
            let a = generated.split(separator: "\n", omittingEmptySubsequences: false)
            let b = committed.split(separator: "\n", omittingEmptySubsequences: false)
            let line = a.indices.first { $0 >= b.count || a[$0] != b[$0] } ?? a.count
            Issue.record("docs/CLI.md differs from the programs' help from line \(line + 1) on: run `make docs` and commit it")
        }
    }
}
