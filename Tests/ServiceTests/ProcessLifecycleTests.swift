import Foundation
import RPC
import TestSupport
import Testing
import Wire

/// The service executables as real processes: signals, SIGKILL, restart.
@Suite("Service processes", .serialized, .timeLimit(.minutes(3)))
struct ProcessLifecycleTests {
    static func start(_ product: String, port: Int, metricsPort: Int, dataDir: String, tokens: String? = nil) throws -> ChildProcess {
        try ChildProcess(
            product,
            ["--port", "\(port)", "--metrics-port", "\(metricsPort)", "--data-dir", dataDir, "--log-level", "info"]
                + (tokens.map { ["--tokens-file", $0] } ?? []))
    }

    @Test("SIGTERM: stop accepting, finish in-flight calls, exit 0")
    func sigtermExitsCleanly() async throws {
        let port = freePort()
        let process = try Self.start("persona-risk-control", port: port, metricsPort: freePort(), dataDir: temporaryDirectory())
        defer { process.kill() }
        let client = RPCClient(host: "127.0.0.1", port: port)
        #expect(try await waitHealthy(client).service == "risk-control")
        process.signal(SIGTERM)
        let status = await process.waitForExit()
        #expect(status == 0, "exit status \(String(describing: status)); output:\n\(process.output)")
        #expect(process.output.contains("risk-control stopped"))
        await client.shutdown()
    }

    @Test("a service starts itself again with its heap on huge pages; an operator's GLIBC_TUNABLES is kept")
    func hugePagesForTheHeap() async throws {
        let mode = try String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)
        let inherited = ProcessInfo.processInfo.environment["GLIBC_TUNABLES"]
        let expected =
            inherited.map { "GLIBC_TUNABLES=\($0)" }
            ?? (mode.contains("[never]") ? nil : "GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1")
        for (environment, tunables) in [
            ([String: String](), expected), (["GLIBC_TUNABLES": "glibc.malloc.arena_max=2"], "GLIBC_TUNABLES=glibc.malloc.arena_max=2"),
        ] {
            let port = freePort()
            let process = try ChildProcess(
                "persona-risk-control",
                ["--port", "\(port)", "--metrics-port", "0", "--data-dir", temporaryDirectory(), "--log-level", "info"],
                environment: environment)
            defer { process.kill() }
            let client = RPCClient(host: "127.0.0.1", port: port)
            _ = try await waitHealthy(client)
            // The same pid, now running with the tunable (exec keeps the process).
            let variables = try String(contentsOfFile: "/proc/\(process.pid)/environ", encoding: .utf8).split(separator: "\0").map(
                String.init)
            // glibc 2.36 rewrites the variable in the environment it hands the process so that it
            // shows only the first tunable of a list (it still applies all of them).
            let found = variables.filter { $0.hasPrefix("GLIBC_TUNABLES=") }
            #expect(found.count == (tunables == nil ? 0 : 1))
            if let tunables, let value = found.first {
                #expect(value.count > "GLIBC_TUNABLES=".count && tunables.hasPrefix(value), "\(value)")
            }
            let inUse = tunables?.contains("glibc.malloc.hugetlb=1") ?? false
            #expect(process.output.contains("huge_pages=\(inUse)"), "output:\n\(process.output)")
            await client.shutdown()
        }
    }

    @Test("SIGKILL and restart while a client keeps calling: the client recovers by itself")
    func clientSurvivesKillAndRestart() async throws {
        let port = freePort(), metrics = freePort(), dir = temporaryDirectory()
        var process = try Self.start("persona-ingest", port: port, metricsPort: metrics, dataDir: dir)
        defer { process.kill() }
        var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
        config.backoff = ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(250))
        let client = RPCClient(config: config)
        let firstStart = try await waitHealthy(client).startedAtMs

        process.signal(SIGKILL)
        #expect(await process.waitForExit() != nil)
        var failures = 0
        for _ in 0..<5 {
            do { _ = try await client.call(HealthAPI.check, HealthRequest(), timeout: .milliseconds(200)) } catch { failures += 1 }
        }
        #expect(failures == 5)

        // Same data directory: the lock of the killed process died with it.
        process = try Self.start("persona-ingest", port: port, metricsPort: metrics, dataDir: dir)
        let restarted = try await waitHealthy(client)
        #expect(restarted.status == .serving)
        #expect(restarted.startedAtMs >= firstStart)
        await client.shutdown()
    }

    @Test func secondProcessOnTheSameDataDirectoryRefusesToStart() async throws {
        let dir = temporaryDirectory()
        let port = freePort()
        let first = try Self.start("persona-model", port: port, metricsPort: freePort(), dataDir: dir)
        defer { first.kill() }
        let client = RPCClient(host: "127.0.0.1", port: port)
        _ = try await waitHealthy(client)
        let second = try Self.start("persona-model", port: freePort(), metricsPort: freePort(), dataDir: dir)
        defer { second.kill() }
        let status = await second.waitForExit()
        #expect(status != nil && status != 0)
        #expect(second.output.contains("in use by another process"))
        await client.shutdown()
    }

    @Test("persona health prints every service, and exits 1 when one is down")
    func cliHealth() async throws {
        let names = ["persona-ingest", "persona-feature", "persona-model", "persona-risk-control", "persona-recommend"]
        let ports = names.map { _ in freePort() }
        let processes = try zip(names, ports).map { try Self.start($0, port: $1, metricsPort: freePort(), dataDir: temporaryDirectory()) }
        defer { processes.forEach { $0.kill() } }
        for port in ports {
            let client = RPCClient(host: "127.0.0.1", port: port)
            _ = try await waitHealthy(client)
            await client.shutdown()
        }
        let flags = zip(["--ingest", "--feature", "--model", "--risk-control", "--recommend"], ports).flatMap { [$0, "127.0.0.1:\($1)"] }
        let cli = ChildProcess.productsDirectory.appendingPathComponent("persona").path
        let healthy = try await runProcess(cli, ["health"] + flags)
        let text = String(decoding: healthy.stdout, as: UTF8.self)
        #expect(healthy.status == 0, "\(text)\(healthy.stderr)")
        let lines = text.split(separator: "\n")
        #expect(lines.count == 6)
        #expect(lines.dropFirst().allSatisfy { $0.contains("SERVING") })
        for name in ["ingest", "feature", "model", "risk-control", "recommend"] {
            #expect(lines.contains { $0.hasPrefix(name + " ") })
        }

        processes[2].kill()
        let degraded = try await runProcess(cli, ["health", "--timeout", "0.5"] + flags)
        #expect(degraded.status == 1)
        let degradedText = String(decoding: degraded.stdout, as: UTF8.self)
        #expect(degradedText.split(separator: "\n").first { $0.hasPrefix("model") }?.contains("DOWN") == true)
    }

    @Test("with a tokens file the five processes refuse calls without a token; the CLI presents the file's admin token")
    func tokensOnEveryProcess() async throws {
        let tokens = try RoleTokens()
        let names = ["persona-ingest", "persona-feature", "persona-model", "persona-risk-control", "persona-recommend"]
        let ports = names.map { _ in freePort() }
        let processes = try zip(names, ports).map {
            try Self.start($0, port: $1, metricsPort: freePort(), dataDir: temporaryDirectory(), tokens: tokens.file)
        }
        defer { processes.forEach { $0.kill() } }
        for port in ports {
            let client = RPCClient(host: "127.0.0.1", port: port)
            _ = try await waitHealthy(client)
            await client.shutdown()
        }
        let flags = zip(["--ingest", "--feature", "--model", "--risk-control", "--recommend"], ports).flatMap { [$0, "127.0.0.1:\($1)"] }
        let cli = ChildProcess.productsDirectory.appendingPathComponent("persona").path
        // Health stays open.
        #expect(try await runProcess(cli, ["health"] + flags).status == 0)
        let wrong = temporaryDirectory() + ".secret"
        try "not-a-token-anyone-accepts".write(toFile: wrong, atomically: true, encoding: .utf8)
        let refused = try await runProcess(cli, ["risk", "rules", "show", "--token-file", wrong] + flags)
        #expect(refused.status != 0 && refused.stderr.contains("UNAUTHENTICATED"), "\(refused.stderr)")
        let shown = try await runProcess(cli, ["risk", "rules", "show", "--token-file", tokens.file] + flags)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(String(decoding: shown.stdout, as: UTF8.self).contains("active rules v0"))
        let models = try await runProcess(cli, ["models", "--token-file", tokens.file] + flags)
        #expect(models.status == 0, "\(models.stderr)")
    }
}
