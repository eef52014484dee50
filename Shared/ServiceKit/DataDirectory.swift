import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A service's data directory, created if missing and locked (flock on `LOCK`) for as long
/// as the service runs, so two processes can never write the same state.
public final class DataDirectory: Sendable {
    public let path: String
    private let lockFD: Mutex<Int32?>

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.path = url.standardizedFileURL.path
        let fd = open(self.path + "/LOCK", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Error(description: "cannot open \(self.path)/LOCK: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw Error(description: "\(self.path) is in use by another process")
        }
        self.lockFD = Mutex(fd)
    }

    deinit {
        unlock()
    }

    /// Releases the lock (the service has closed its state); later calls do nothing.
    public func unlock() {
        lockFD.withLock { fd in
            if let f = fd { close(f) }
            fd = nil
        }
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Whether the directory still accepts writes (a check for Health).
    public var isWritable: Bool { access(path, W_OK) == 0 }
}
