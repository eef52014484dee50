import Glibc

/// A pthread readers-writer lock: many readers or one writer.
public final class ReadWriteLock: @unchecked Sendable {
    private var lock = pthread_rwlock_t()

    public init() { pthread_rwlock_init(&lock, nil) }
    deinit { pthread_rwlock_destroy(&lock) }

    public func read<T, S>(_ state: S, _ body: (S) throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body(state)
    }

    public func write<T, S>(_ state: S, _ body: (S) throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body(state)
    }
}
