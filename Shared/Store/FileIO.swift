import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Thin checked wrappers over the POSIX calls the store needs. Every failure throws with
/// the path and errno text; short reads and writes are retried.
enum FileIO {
    static func error(_ what: String, _ path: String) -> StoreError {
        StoreError(.io, "\(what) \(path): \(String(cString: strerror(errno)))")
    }

    static func open(_ path: String, flags: Int32) throws -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw error("open", path) }
        return fd
    }

    static func size(_ fd: Int32, path: String) throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw error("stat", path) }
        return Int(st.st_size)
    }

    static func read(_ fd: Int32, count: Int, at offset: Int, path: String) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        try out.withUnsafeMutableBytes { b in
            while done < count {
                let n = pread(fd, b.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0, errno == EINTR { continue }
                guard n >= 0 else { throw error("read", path) }
                if n == 0 { break }
                done += n
            }
        }
        if done < count { out.removeSubrange(done...) }
        return out
    }

    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw error("write", path) }
            done += n
        }
    }

    static func sync(_ fd: Int32, path: String) throws {
        guard fdatasync(fd) == 0 else { throw error("fsync", path) }
    }

    static func truncate(_ fd: Int32, to size: Int, path: String) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw error("truncate", path) }
    }

    /// Makes a rename or a new file in `directory` durable.
    static func syncDirectory(_ directory: String) throws {
        let fd = try open(directory, flags: O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw error("fsync", directory) }
    }

    static func makeDirectory(_ path: String) throws {
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o755) != 0, errno != EEXIST { throw error("mkdir", partial) }
        }
    }

    static func list(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw error("opendir", directory) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

/// Writes whole files atomically: a reader (or a restart after a crash) sees either the
/// old content or the new, never a mix. Write to a temporary file, fsync it, rename it over
/// the target, fsync the directory.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let file = try AtomicFileWriter(path: path)
        try bytes.withUnsafeBytes { try file.append($0) }
        try file.commit()
    }

    /// The file's bytes, or nil when it does not exist.
    public static func read(_ path: String) throws -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw FileIO.error("open", path)
        }
        defer { close(fd) }
        return try FileIO.read(fd, count: FileIO.size(fd, path: path), at: 0, path: path)
    }
}

/// A file written in pieces and put in place atomically: appended to under a temporary name
/// (`path` + ".tmp"), then `commit()` fsyncs it, renames it over `path` and fsyncs the
/// directory. Until then `path` keeps its old contents; a writer dropped without a commit
/// deletes its temporary file.
public final class AtomicFileWriter {
    public let path: String
    let temporary: String
    private var fd: Int32
    /// Bytes appended so far.
    public private(set) var size = 0

    public init(path: String) throws {
        self.path = path
        temporary = path + ".tmp"
        fd = try FileIO.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(fd >= 0, "append after commit")
        guard !bytes.isEmpty else { return }
        try FileIO.write(fd, bytes, at: size, path: temporary)
        size += bytes.count
    }

    /// Makes the file durable and puts it at `path`.
    public func commit() throws {
        precondition(fd >= 0, "committed twice")
        try FileIO.sync(fd, path: temporary)
        close(fd)
        fd = -1
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw FileIO.error("rename", temporary)
        }
        let slash = path.lastIndex(of: "/")
        try FileIO.syncDirectory(slash.map { String(path[..<$0]) } ?? ".")
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporary)
        }
    }
}

/// A file only ever appended to, each append durable (fdatasync) before it returns: an
/// audit log. Opened with O_APPEND, so every write lands at the end whatever the offset.
public final class AppendOnlyFile: Sendable {
    public let path: String
    private let fd: Mutex<Int32>

    /// Opens (or creates, readable by its owner only) the file at `path`.
    public init(path: String) throws {
        let fd = Glibc.open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileIO.error("open", path) }
        self.path = path
        self.fd = Mutex(fd)
    }

    deinit { fd.withLock { _ = close($0) } }

    /// The file's last byte; nil when it is empty.
    public func lastByte() throws -> UInt8? {
        try fd.withLock { fd in
            let size = try FileIO.size(fd, path: path)
            return size > 0 ? try FileIO.read(fd, count: 1, at: size - 1, path: path).first : nil
        }
    }

    public func append(_ bytes: [UInt8]) throws {
        try fd.withLock { fd in
            try bytes.withUnsafeBytes { try FileIO.write(fd, $0, at: 0, path: path) }
            try FileIO.sync(fd, path: path)
        }
    }
}
