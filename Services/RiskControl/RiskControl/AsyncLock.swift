import Synchronization

/// One caller at a time through `run` (publishing a rule set: number, store, swap).
final class AsyncLock: Sendable {
    private let busy = Mutex<(held: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = busy.withLock { b -> Bool in
                if b.held {
                    b.waiting.append(c)
                    return false
                }
                b.held = true
                return true
            }
            if go { c.resume() }
        }
        defer {
            let next = busy.withLock { b -> CheckedContinuation<Void, Never>? in
                if b.waiting.isEmpty {
                    b.held = false
                    return nil
                }
                return b.waiting.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
