import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Real `nats-server` processes with JetStream on loopback, each with its own ports and store
/// folder: one server, or a cluster of several (a RAFT group for replicated streams). Tests
/// SIGKILL and restart single servers; `stop()` ends every one (call it in a `defer`).
public final class NATSServers: @unchecked Sendable {
    public struct Node {
        public let name: String
        public let port: Int
        public let clusterPort: Int
        /// The HTTP monitoring port (`/healthz`).
        public let monitorPort: Int
        public let storeDirectory: String
        var process: Process?
    }

    public private(set) var nodes: [Node]
    private let directory: String

    /// Where Debian puts the server (`apt-get install nats-server`), else the PATH's.
    public static var executable: String? {
        for path in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return nil
    }

    /// Starts `count` servers (clustered when more than one) and waits until each accepts
    /// connections.
    public init(count: Int) throws {
        guard Self.executable != nil else {
            throw CocoaError(
                .fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "nats-server is not installed (apt-get install nats-server)"])
        }
        let directory = temporaryDirectory()
        self.directory = directory
        nodes = (0..<count).map { i in
            Node(
                name: "n\(i)", port: freePort(), clusterPort: freePort(), monitorPort: freePort(), storeDirectory: "\(directory)/n\(i)",
                process: nil)
        }
        for i in nodes.indices { try start(i) }
    }

    deinit { stop() }

    /// The servers as `--log` names them: `nats://127.0.0.1:p1,127.0.0.1:p2,...`.
    public var url: String { "nats://" + nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    /// Each server's URL, as `JetStreamLog.Config` takes them.
    public var servers: [String] { nodes.map { "nats://127.0.0.1:\($0.port)" } }

    /// (Re)starts server `i` on its ports and store folder, and waits until it accepts
    /// connections.
    public func start(_ i: Int) throws {
        let node = nodes[i]
        try FileManager.default.createDirectory(atPath: node.storeDirectory, withIntermediateDirectories: true)
        var arguments = [
            "-a", "127.0.0.1", "-p", "\(node.port)", "-m", "\(node.monitorPort)", "-js", "-sd", node.storeDirectory, "--server_name",
            node.name,
        ]
        if nodes.count > 1 {
            let routes = nodes.enumerated().filter { $0.offset != i }.map { "nats://127.0.0.1:\($0.element.clusterPort)" }
            arguments += [
                "--cluster_name", "persona", "--cluster", "nats://127.0.0.1:\(node.clusterPort)", "--routes", routes.joined(separator: ","),
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable!)
        process.arguments = arguments
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        nodes[i].process = process
        let deadline = Date().addingTimeInterval(10)
        while !Self.accepts(port: node.port) {
            guard Date() < deadline, process.isRunning else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "nats-server \(node.name) did not start"])
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Waits (up to `timeout`) until server `i` says it is healthy: its `/healthz` answers 200
    /// once JetStream on it is current, its streams caught up with their leaders after a restart.
    public func waitHealthy(_ i: Int, timeout: Duration = .seconds(60)) throws {
        let deadline = ContinuousClock.now + timeout
        while !Self.healthy(port: nodes[i].monitorPort) {
            guard ContinuousClock.now < deadline else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "nats-server \(nodes[i].name) is not healthy"])
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// SIGKILL server `i` (its store folder stays for a restart).
    public func kill(_ i: Int) {
        guard let process = nodes[i].process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        nodes[i].process = nil
    }

    /// Stops every server and removes their store folders.
    public func stop() {
        for i in nodes.indices { kill(i) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether `GET /healthz` on the monitoring port answers 200.
    private static func healthy(port: Int) -> Bool {
        let fd = connected(port: port)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let request = Array("GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return false }
        let status = String(decoding: buffer[..<n], as: UTF8.self).split(separator: " ", maxSplits: 2)
        return status.count > 1 && status[1] == "200"
    }

    private static func accepts(port: Int) -> Bool {
        let fd = connected(port: port)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// A socket connected to 127.0.0.1:`port`, or -1.
    private static func connected(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let ok = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if ok { return fd }
        close(fd)
        return -1
    }
}

extension NATSServers {
    /// Runs `work` with all servers up, again with server 0 SIGKILLed, and again with it
    /// restarted (and caught up) and server 1 SIGKILLed: a quorum of a three-server stream
    /// holds throughout.
    public func withRollingKills(_ work: () async throws -> Void) async throws {
        try await work()
        kill(0)
        try await work()
        try start(0)
        // Server 0 must have caught up before server 1 goes, or the streams lose their quorum.
        try waitHealthy(0)
        kill(1)
        try await work()
    }

    /// Runs `body` while no other test in this process runs one: clusters of three servers
    /// electing RAFT leaders side by side on two cores starve one another past their
    /// timeouts, so the tests that start a cluster take turns.
    public static func exclusively<R>(_ body: () async throws -> R) async throws -> R {
        await ClusterTurns.shared.acquire()
        do {
            let result = try await body()
            await ClusterTurns.shared.release()
            return result
        } catch {
            await ClusterTurns.shared.release()
            throw error
        }
    }
}

/// Whose turn it is to run a NATS cluster, and who waits for one.
actor ClusterTurns {
    static let shared = ClusterTurns()
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}
