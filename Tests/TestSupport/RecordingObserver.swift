public import RPC
import Synchronization
public import Wire

/// Counts what an RPC server reports, for tests that check metrics-worthy events.
public final class RecordingObserver: RPCServerObserver {
    private let state = Mutex<(calls: [String: Int], statuses: [StatusCode: Int], protocolErrors: [String: Int])>(([:], [:], [:]))

    public init() {}

    private let startedCalls = Atomic<Int>(0)
    public var started: Int { startedCalls.load(ordering: .relaxed) }

    public func callStarted(method: String) {
        startedCalls.add(1, ordering: .relaxed)
    }

    public func callFinished(method: String, status: StatusCode, duration: Duration) {
        state.withLock {
            $0.calls[method, default: 0] += 1
            $0.statuses[status, default: 0] += 1
        }
    }

    public func callRefused(method: String, status: StatusCode) {
        state.withLock {
            $0.calls[method, default: 0] += 1
            $0.statuses[status, default: 0] += 1
        }
    }

    public func protocolError(_ code: FrameError.Code) {
        state.withLock { $0.protocolErrors[code.name, default: 0] += 1 }
    }

    public func count(_ status: StatusCode) -> Int { state.withLock { $0.statuses[status] ?? 0 } }
    public func protocolErrors(_ code: FrameError.Code) -> Int { state.withLock { $0.protocolErrors[code.name] ?? 0 } }
}
