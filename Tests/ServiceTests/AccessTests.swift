import Feature
import Foundation
import Ingest
import Model
import NIOCore
import RPC
import Recommend
import RiskControl
import ServiceKit
import TestSupport
import Testing
import Wire

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Every method in docs/PROTOCOL.md's table: id and name.
func documentedMethods() throws -> [(id: UInt16, name: String)] {
    let text = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
    return text.split(separator: "\n").compactMap { line in
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count >= 2, cells[0].hasPrefix("0x"), let id = UInt16(cells[0].dropFirst(2), radix: 16), cells[1].contains("/") else {
            return nil
        }
        return (id, cells[1])
    }
}

/// One token a role, in a tokens file.
struct RoleTokens {
    let file: String
    let secrets: [Role: [UInt8]]

    init() throws {
        var lines: [String] = []
        var secrets: [Role: [UInt8]] = [:]
        for role in Role.allCases {
            let secret = "\(role.rawValue)-secret-\(UUID().uuidString)"
            lines.append("\(role.rawValue) \(role.rawValue)-1 \(secret)")
            secrets[role] = Array(secret.utf8)
        }
        file = temporaryDirectory() + ".tokens"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        self.secrets = secrets
    }
}

/// A call of method `id` with an empty request, answered with whatever comes back.
func rawCall(_ port: Int, _ id: UInt16, credential: [UInt8]?) async -> StatusCode {
    var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
    config.credential = credential ?? []
    let client = RPCClient(config: config)
    defer { Task { await client.shutdown() } }
    do {
        _ = try await client.call(Method<HealthRequest, HealthResponse>(id: id, name: "raw"), HealthRequest(), timeout: .seconds(15))
        return .ok
    } catch let e as RPCError {
        return e.code
    } catch {
        return .ok  // answered; the answer is not an EmptyAnswer
    }
}

@Suite("Access control", .serialized, .timeLimit(.minutes(3)))
struct AccessTests {
    @Test("every documented method has a role (or is open, or admin's alone), so a method added without one fails here")
    func everyMethodHasARole() throws {
        let methods = try documentedMethods()
        #expect(methods.count >= 35)
        for m in methods {
            let placed = AccessTable.open.contains(m.id) || AccessTable.adminOnly.contains(m.id) || AccessTable.roles[m.id] != nil
            #expect(placed, "\(m.name) (0x\(String(m.id, radix: 16))) has no role")
            #expect(
                !(AccessTable.adminOnly.contains(m.id) && AccessTable.roles[m.id] != nil), "\(m.name) is both admin's alone and others'")
        }
    }

    @Test("the credential travels in the frame, before the message, compressed or not")
    func credentialInTheFrame() throws {
        for size in [10, 10_000] {
            let payload = ByteBuffer(bytes: [UInt8](repeating: 7, count: size))
            let frame = Frame(
                kind: .request, method: 0x0401, correlationID: 9, payload: payload, credential: Array("a-token-of-16-bytes".utf8))
            var out = ByteBuffer()
            FrameEncoder.write(frame, into: &out, compressionThreshold: 2048)
            #expect(out.getInteger(at: 4, as: UInt8.self)! & 0x02 != 0)
            #expect(out.getInteger(at: 24, as: UInt8.self) == 19)
            let back = try #require(try FrameDecoder().decodeFrame(&out))
            #expect(back.credential == Array("a-token-of-16-bytes".utf8) && back.payload == payload)
        }
        var bare = ByteBuffer()
        FrameEncoder.write(
            Frame(kind: .request, method: 1, correlationID: 1, payload: ByteBuffer(bytes: [1, 2])), into: &bare, compressionThreshold: 2048)
        #expect(bare.getInteger(at: 4, as: UInt8.self)! & 0x02 == 0)
        #expect(try FrameDecoder().decodeFrame(&bare)?.credential == nil)
    }

    @Test("tokens files: roles, ids, comments; bad lines name their line")
    func tokensFile() throws {
        let tokens = try AccessToken.parse(
            """
            # rotation in progress\nservice svc-old 0123456789abcdef0123\nservice svc-new fedcba9876543210fedc # \
            added today\nadmin ops 0123456789abcdefXYZ\n
            """
        )
        #expect(tokens.map(\.id) == ["svc-old", "svc-new", "ops"] && tokens[2].role == .admin)
        #expect(throws: AccessError.self) { try AccessToken.parse("root x 0123456789abcdef") }
        #expect(throws: AccessError.self) { try AccessToken.parse("admin x short") }
        #expect(throws: AccessError.self) { try AccessToken.parse("admin x 0123456789abcdef\nanalyst x 0123456789abcdef") }
        let policy = AccessPolicy(tokens: tokens)
        #expect(policy.check(method: HealthAPI.check.id, credential: nil) == .allowed(token: nil, role: nil))
        #expect(policy.check(method: RiskAPI.score.id, credential: nil) == .unauthenticated)
        #expect(policy.check(method: RiskAPI.score.id, credential: Array("0123456789abcdef0124".utf8)) == .unauthenticated)
        #expect(
            policy.check(method: RiskAPI.score.id, credential: Array("0123456789abcdef0123".utf8))
                == .allowed(token: "svc-old", role: .service))
        #expect(
            policy.check(method: ModelAPI.train.id, credential: Array("fedcba9876543210fedc".utf8))
                == .denied(token: "svc-new", role: .service))
        #expect(
            policy.check(method: ModelAPI.train.id, credential: Array("0123456789abcdefXYZ".utf8)) == .allowed(token: "ops", role: .admin))
    }

    /// Each service, its methods called with no token, a token of a role the table does not
    /// allow, and one it does.
    @Test(
        "every method of every service: no token UNAUTHENTICATED, a wrong role PERMISSION_DENIED, the right role through; refusals counted")
    func everyMethodOfEveryService() async throws {
        let tokens = try RoleTokens()
        let methods = try documentedMethods()
        defer { ProcessCredential.set(nil) }
        func check<S: PersonaService>(_ type: S.Type, _ settings: S.Settings, _ prefix: UInt16) async throws {
            let options = ServiceOptions.Resolved(
                host: "127.0.0.1", port: 0, metricsPort: 0, dataDir: temporaryDirectory(), logLevel: .error, tokensFile: tokens.file)
            let host = try await ServiceHost<S>(options: options, settings: settings)
            let (port, metricsPort) = try await host.start()
            let running = Task { try await host.run(handleSignals: false) }
            defer { host.shutdown() }
            // Serving before the first refusal is asked for (a loaded machine is slow to start one).
            try await eventually { await rawCall(port, HealthAPI.check.id, credential: nil) == .ok }
            for m in methods where m.id >> 8 == prefix {
                let right: Role =
                    AccessTable.adminOnly.contains(m.id)
                    ? .admin : AccessTable.roles[m.id]?.sorted { $0.rawValue < $1.rawValue }.first ?? .admin
                let bare = await rawCall(port, m.id, credential: nil)
                #expect(bare == .unauthenticated, "\(m.name) without a token: \(bare)")
                if let wrong = Role.allCases.first(where: { !AccessTable.allows($0, m.id) }) {
                    let denied = await rawCall(port, m.id, credential: tokens.secrets[wrong])
                    #expect(denied == .permissionDenied, "\(m.name) as \(wrong): \(denied)")
                }
                let through = await rawCall(port, m.id, credential: tokens.secrets[right])
                #expect(through != .unauthenticated && through != .permissionDenied, "\(m.name) as \(right): \(through)")
            }
            #expect(await rawCall(port, HealthAPI.check.id, credential: nil) == .ok)
            // Every service answers Audit/Read, to admin alone.
            #expect(await rawCall(port, AuditAPI.read.id, credential: nil) == .unauthenticated)
            #expect(await rawCall(port, AuditAPI.read.id, credential: tokens.secrets[.analyst]) == .permissionDenied)
            #expect(await rawCall(port, AuditAPI.read.id, credential: tokens.secrets[.admin]) == .ok)
            let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metricsPort)/metrics")!)
            #expect(String(decoding: data, as: UTF8.self).contains("persona_rpc_refused_total{method="))
            host.shutdown()
            _ = await running.result
        }
        var feature = FeatureSettings()
        (feature.ingestPort, feature.modelPort) = (freePort(), freePort())
        var model = ModelSettings()
        (model.consumer.ingestPort, model.featurePort) = (freePort(), freePort())
        var risk = RiskSettings()
        (risk.featurePort, risk.modelPort, risk.ingestPort) = (freePort(), freePort(), freePort())
        var recommend = RecommendSettings()
        (recommend.featurePort, recommend.modelPort, recommend.ingestPort) = (freePort(), freePort(), freePort())
        try await check(IngestService.self, IngestSettings(), 0x01)
        try await check(FeatureService.self, feature, 0x02)
        try await check(ModelService.self, model, 0x03)
        try await check(RiskControlService.self, risk, 0x04)
        try await check(RecommendService.self, recommend, 0x05)
    }

    @Test("an audience event appended with a producer token is refused NOT_ALLOWED; a service token's is stored")
    func audienceEventsNeedAService() async throws {
        let file = temporaryDirectory() + ".tokens"
        let producer = "producer-secret-0123456789", service = "service-secret-0123456789"
        try "producer shop \(producer)\nservice svc \(service)\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { ProcessCredential.set(nil) }
        let options = ServiceOptions.Resolved(
            host: "127.0.0.1", port: 0, metricsPort: 0, dataDir: temporaryDirectory(), logLevel: .error, tokensFile: file)
        let host = try await ServiceHost<IngestService>(options: options, settings: IngestSettings())
        let (port, _) = try await host.start()
        let running = Task { try await host.run(handleSignals: false) }
        defer { host.shutdown() }
        func append(as secret: String, id: String) async throws -> EventStatus? {
            var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
            config.credential = Array(secret.utf8)
            let client = RPCClient(config: config)
            defer { Task { await client.shutdown() } }
            var e = Event()
            (e.eventId, e.kind, e.timestampMs) = (id, .audience, 1_700_000_000_000)
            var a = AudienceDefinition()
            (a.name, a.expression) = ("everyone", "frequency >= 0")
            e.audience = a
            var r = AppendRequest()
            r.events = [e]
            return try await client.call(IngestAPI.append, r, timeout: .seconds(5)).statuses.first
        }
        let refused = try #require(try await append(as: producer, id: "a1"))
        #expect(refused.code == .rejected && refused.reason == .notAllowed, "\(refused)")
        #expect(try await append(as: service, id: "a2")?.code == .accepted)
        host.shutdown()
        _ = await running.result
    }

    @Test("a token is rotated without a restart: old and new both accepted, then the old one removed")
    func rotation() async throws {
        let file = temporaryDirectory() + ".tokens"
        let old = "analyst-old-0123456789", new = "analyst-new-9876543210"
        try "service svc service-secret-0123456789\nanalyst a-old \(old)\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { ProcessCredential.set(nil) }
        let options = ServiceOptions.Resolved(
            host: "127.0.0.1", port: 0, metricsPort: 0, dataDir: temporaryDirectory(), logLevel: .error, tokensFile: file)
        var settings = RiskSettings()
        (settings.featurePort, settings.modelPort, settings.ingestPort) = (freePort(), freePort(), freePort())
        let host = try await ServiceHost<RiskControlService>(options: options, settings: settings)
        let (port, _) = try await host.start()
        let running = Task { try await host.run(handleSignals: false) }
        defer { host.shutdown() }
        #expect(await rawCall(port, RiskAPI.getLists.id, credential: Array(old.utf8)) == .ok)
        #expect(await rawCall(port, RiskAPI.getLists.id, credential: Array(new.utf8)) == .unauthenticated)
        try "service svc service-secret-0123456789\nanalyst a-old \(old)\nanalyst a-new \(new)\n".write(
            toFile: file, atomically: true, encoding: .utf8)
        try await eventually { await rawCall(port, RiskAPI.getLists.id, credential: Array(new.utf8)) == .ok }
        #expect(await rawCall(port, RiskAPI.getLists.id, credential: Array(old.utf8)) == .ok)
        try "service svc service-secret-0123456789\nanalyst a-new \(new)\n".write(toFile: file, atomically: true, encoding: .utf8)
        try await eventually { await rawCall(port, RiskAPI.getLists.id, credential: Array(old.utf8)) == .unauthenticated }
        #expect(await rawCall(port, RiskAPI.getLists.id, credential: Array(new.utf8)) == .ok)
        host.shutdown()
        _ = await running.result
    }

    @Test("a burst of refused calls on one connection closes it")
    func burstClosesTheConnection() async throws {
        let tokens = try RoleTokens()
        defer { ProcessCredential.set(nil) }
        let options = ServiceOptions.Resolved(
            host: "127.0.0.1", port: 0, metricsPort: 0, dataDir: temporaryDirectory(), logLevel: .error, tokensFile: tokens.file)
        let host = try await ServiceHost<IngestService>(options: options, settings: IngestSettings())
        let (port, _) = try await host.start()
        let running = Task { try await host.run(handleSignals: false) }
        defer { host.shutdown() }
        // 30 calls without a token on one raw connection: 20 refusals, then GO_AWAY and the close.
        var bytes = ByteBuffer()
        for i in 0..<30 {
            FrameEncoder.write(
                Frame(kind: .request, method: IngestAPI.logInfo.id, correlationID: UInt64(i + 1), payload: ByteBuffer()), into: &bytes,
                compressionThreshold: 2048)
        }
        let frames = try exchange(port: port, Array(bytes.readableBytesView))
        let refused = frames.filter { $0.kind == .response && $0.status == UInt8(StatusCode.unauthenticated.rawValue) }
        #expect(refused.count == 20)
        #expect(frames.last?.kind == .goAway)
        host.shutdown()
        _ = await running.result
    }
}

@Suite("Audit log", .serialized, .timeLimit(.minutes(2)))
struct AuditTests {
    /// A risk-control host on `dir` with the role tokens.
    static func riskHost(_ dir: String, _ tokens: RoleTokens) async throws -> (ServiceHost<RiskControlService>, Int, Task<Void, any Error>)
    {
        let options = ServiceOptions.Resolved(
            host: "127.0.0.1", port: 0, metricsPort: 0, dataDir: dir, logLevel: .error, tokensFile: tokens.file)
        var settings = RiskSettings()
        (settings.featurePort, settings.modelPort, settings.ingestPort) = (freePort(), freePort(), freePort())
        let host = try await ServiceHost<RiskControlService>(options: options, settings: settings)
        let (port, _) = try await host.start()
        return (host, port, Task { try await host.run(handleSignals: false) })
    }

    static func client(_ port: Int, _ tokens: RoleTokens, _ role: Role) -> RPCClient {
        var config = RPCClient.Config.defaults(host: "127.0.0.1", port: port)
        config.credential = tokens.secrets[role]!
        return RPCClient(config: config)
    }

    @Test(
        "admin calls are recorded with token id, what and status, before they are answered; the log survives a restart and holds no secret")
    func adminCallsAreAudited() async throws {
        let tokens = try RoleTokens()
        let dir = temporaryDirectory()
        defer { ProcessCredential.set(nil) }
        var (host, port, running) = try await Self.riskHost(dir, tokens)
        let admin = Self.client(port, tokens, .admin), analyst = Self.client(port, tokens, .analyst)
        var rules = RulesSource()
        rules.source = "amount > 5000 => decline \"large\"\n"
        _ = try await admin.call(RiskAPI.publishRules, rules)
        var lists = UpdateListsRequest()
        var entry = ListEntry()
        (entry.list, entry.field, entry.value, entry.reason) = (.block, .device, "dev-raw-42", "chargebacks")
        lists.add = [entry]
        _ = try await analyst.call(RiskAPI.updateLists, lists)
        rules.source = "amount >> 1 => decline\n"
        await #expect(throws: RPCError.self) { _ = try await analyst.call(RiskAPI.publishRules, rules) }
        // Reads are not audited.
        _ = try await analyst.call(RiskAPI.getRules, GetRulesRequest())
        var entries = try await admin.call(AuditAPI.read, AuditRequest()).entries
        #expect(entries.map(\.method) == ["Risk/PublishRules", "Risk/UpdateLists", "Risk/PublishRules"])
        #expect(entries.map(\.tokenId) == ["admin-1", "analyst-1", "analyst-1"])
        #expect(entries.map(\.status) == ["ok", "ok", "invalid_argument"])
        #expect(
            entries[0].what == "published rules v1 (1 rules)" && entries[0].service == "risk-control"
                && entries[0].peer.hasPrefix("127.0.0.1:"))
        #expect(
            entries[1].what.hasPrefix("added block device ") && entries[1].what.contains("(chargebacks)")
                && !entries[1].what.contains("dev-raw-42"))
        #expect(entries[2].what.contains("rules not valid"))
        var byToken = AuditRequest()
        byToken.tokenId = "admin-1"
        #expect(try await admin.call(AuditAPI.read, byToken).entries.count == 1)
        await #expect(throws: RPCError.self) { _ = try await analyst.call(AuditAPI.read, AuditRequest()) }
        await admin.shutdown()
        await analyst.shutdown()
        host.shutdown()
        _ = await running.result

        // A torn last line (a crash mid-write) is skipped; entries after the restart append.
        let file = dir + "/audit.log"
        let handle = try #require(FileHandle(forWritingAtPath: file))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"time_ms":1,"serv"#.utf8))
        try handle.close()
        (host, port, running) = try await Self.riskHost(dir, tokens)
        let again = Self.client(port, tokens, .admin)
        rules.source = "amount > 9000 => review\n"
        _ = try await again.call(RiskAPI.publishRules, rules)
        entries = try await again.call(AuditAPI.read, AuditRequest()).entries
        #expect(entries.count == 4 && entries.last?.what == "published rules v2 (1 rules)")
        var since = AuditRequest()
        since.sinceMs = entries[3].timeMs
        since.limit = 1
        #expect(try await again.call(AuditAPI.read, since).entries.map(\.what) == ["published rules v2 (1 rules)"])
        let text = try String(contentsOfFile: file, encoding: .utf8)
        for secret in tokens.secrets.values { #expect(!text.contains(String(decoding: secret, as: UTF8.self))) }
        await again.shutdown()
        host.shutdown()
        _ = await running.result
    }
}

/// Retries `condition` for up to 10 s (a tokens file is re-read every 2 s).
func eventually(_ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw ServiceError("condition not met within 10 s") }
        try await Task.sleep(for: .milliseconds(200))
    }
}

/// Writes `bytes` on a fresh connection and reads frames until the server closes it.
func exchange(port: Int, _ bytes: [UInt8]) throws -> [Frame] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw ServiceError("cannot connect") }
    var limit = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var pending = ByteBuffer()
    var frames: [Frame] = []
    let decoder = FrameDecoder()
    while true {
        let n = pending.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 16) { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { break }
        while let f = try decoder.decodeFrame(&pending) { frames.append(f) }
    }
    return frames
}
