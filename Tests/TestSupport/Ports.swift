import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The next port `freePort` tries: below Linux's ephemeral range (32768 and up), so neither
/// the kernel's port-0 binds nor the tests' outgoing connections can take a port handed out
/// here, and never the same one twice in a test process.
private let nextPort = Atomic<Int>(20_000 + Int(getpid() % 1000) * 10)

/// A TCP port on 127.0.0.1 that was free a moment ago (it binds, then is closed), for tests
/// that must pass a port to a child process up front.
public func freePort() -> Int {
    for _ in 0..<12_000 {
        let port = 20_000 + (nextPort.add(1, ordering: .relaxed).oldValue - 20_000) % 12_000
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if bound { return port }
    }
    preconditionFailure("no free port in 20000..<32000")
}
