import Foundation
import NIOCore
import RPC

/// The leanest client that can time a service's calls at a fixed rate (what wrk2 does for
/// HTTP): one blocking TCP connection, a sender thread that writes each request frame at its
/// scheduled time (requests are encoded before the clock starts), and a receiver thread that
/// reads the answers and times each one from its scheduled send, so a stall anywhere is not
/// hidden (open loop). No tasks, event loops or thread hops on the client side: on two shared
/// cores an async client's own wake-ups were most of the measured tail.
enum PacedClient {
    struct Outcome {
        /// Milliseconds from each answered call's scheduled time to its answer.
        var latencies: [Double]
        var failed: Int
        var answeredPerSecond: Double
    }

    /// Sends `payloads[n]` as a call of `method` at `n / rate` seconds, for every `n`, to
    /// 127.0.0.1:`port`. An answer with an error status counts as failed.
    static func run(port: Int, method: UInt16, rate: Int, payloads: [[UInt8]]) throws -> Outcome {
        let fd = try connect(port: port)
        defer { close(fd) }
        let frames = payloads.enumerated().map { n, payload in
            var out = ByteBuffer()
            let frame = Frame(kind: .request, method: method, correlationID: UInt64(n), payload: ByteBuffer(bytes: payload))
            FrameEncoder.write(frame, into: &out, compressionThreshold: FrameLimits.default.compressionThreshold)
            return Array(out.readableBytesView)
        }
        let interval = 1_000_000_000 / UInt64(rate)
        let start = monotonicNanos() + 1_000_000
        let answers = Answers(count: frames.count)
        let sent = DispatchSemaphore(value: 0)
        let received = DispatchSemaphore(value: 0)
        Thread {
            answers.read(from: fd, start: start, interval: interval)
            received.signal()
        }.start()
        Thread {
            // Wake-ups to the microsecond rather than the default 50 µs timer slack (prctl is
            // variadic, so Swift cannot call it; the thread's proc file sets the same value).
            try? "1".write(toFile: "/proc/thread-self/timerslack_ns", atomically: false, encoding: .utf8)
            for (n, frame) in frames.enumerated() {
                let due = start + UInt64(n) * interval
                var at = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nil) == EINTR {}
                guard writeAll(fd, frame) else { break }
            }
            sent.signal()
        }.start()
        sent.wait()
        // Every answer, or 5 s after the last send (then the missing ones count as failed).
        if received.wait(timeout: .now() + 5) == .timedOut { shutdown(fd, Int32(SHUT_RDWR)); received.wait() }
        let elapsed = Double(monotonicNanos() - start) / 1e9
        let answered = answers.latencies.filter { $0 >= 0 }
        return Outcome(latencies: answered, failed: frames.count - answered.count, answeredPerSecond: Double(answered.count) / elapsed)
    }

    /// What the receiver thread fills in; read after it finished.
    final class Answers: @unchecked Sendable {
        var latencies: [Double]

        init(count: Int) { latencies = [Double](repeating: -1, count: count) }

        /// Reads response frames until every call is answered or the connection ends; an
        /// answer with an error status stays unanswered (-1).
        func read(from fd: Int32, start: UInt64, interval: UInt64) {
            let decoder = FrameDecoder()
            var pending = ByteBuffer()
            var answered = 0
            while answered < latencies.count {
                let n = pending.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 16) { Glibc.read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { return }
                let now = monotonicNanos()
                while let frame = try? decoder.decodeFrame(&pending) {
                    let id = Int(frame.correlationID)
                    if frame.status == 0, id < latencies.count {
                        latencies[id] = Double(now - (start + UInt64(id) * interval)) / 1e6
                    }
                    answered += 1
                }
                pending.discardReadBytes()
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { b in
            var sent = 0
            while sent < b.count {
                let w = write(fd, b.baseAddress! + sent, b.count - sent)
                if w <= 0 { return false }
                sent += w
            }
            return true
        }
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, status == 0 else { throw POSIXError(.ECONNREFUSED) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // A service that stops reading fails the sender's writes after 5 s instead of hanging the run.
        var limit = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func monotonicNanos() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
