import Foundation
import Recommenders
import ServiceKit
import Store
import Wire

/// Training jobs: queued and run one at a time per kind, each on that kind's own thread
/// (never the RPC event loops or Swift's cooperative pool, so calls stay fast while a model
/// trains). Their statuses are written to `jobs.state` on every change; a job that was
/// queued or running when the service died is reported FAILED on the next start (its
/// version was never added, so nothing half-trained is ever published).
final class JobBoard: @unchecked Sendable {
    /// What a job runs: given its id and progress, returns the version it added and its metrics.
    typealias Work = @Sendable (String, TrainingProgress) throws -> (version: UInt32, metrics: [Metric])

    private struct Job {
        var status: JobStatusResponse
        let progress: TrainingProgress
    }

    private let lock = NSLock()
    private var jobs: [String: Job] = [:]
    private var order: [String] = []
    private var queues: [String: DispatchQueue] = [:]
    private var counter = 0
    private let path: String
    private let running = DispatchGroup()
    /// Told of every job that ends (succeeded, failed or cancelled), for the service's log
    /// and metrics.
    let ended: @Sendable (JobStatusResponse) -> Void

    /// Stamps the jobs' times.
    let clock: WallClock

    init(path: String, clock: WallClock = .system, ended: @escaping @Sendable (JobStatusResponse) -> Void = { _ in }) throws {
        self.path = path
        self.clock = clock
        self.ended = ended
        if let bytes = try AtomicFile.read(path) {
            let saved = try ListJobsResponse(serializedBytes: bytes)
            for var status in saved.jobs {
                if status.state == .queued || status.state == .running {
                    let was = status.state == .queued ? "queued" : "running"
                    status.state = .failed
                    status.message = "the model service stopped while this job was \(was); nothing was published: train again"
                    status.finishedMs = clock.nowMs
                }
                jobs[status.jobId] = Job(status: status, progress: TrainingProgress())
                order.append(status.jobId)
            }
            counter = order.count
            try save()
        }
    }

    /// Queues `work` behind the other jobs of `kind`; returns the job's id at once.
    func submit(name: String, kind: ModelKind, _ work: @escaping Work) throws -> String {
        let kindName = kind.name ?? "\(kind.rawValue)"
        let progress = TrainingProgress()
        let (id, queue): (String, DispatchQueue) = try lock.withLock {
            counter += 1
            let id = "\(kindName)-\(clock.nowMs)-\(counter)"
            var status = JobStatusResponse()
            status.jobId = id
            status.name = name
            status.kind = kind
            status.state = .queued
            status.message = "queued"
            status.createdMs = clock.nowMs
            jobs[id] = Job(status: status, progress: progress)
            order.append(id)
            try save()
            let queue = queues[kindName] ?? DispatchQueue(label: "persona.model.train.\(kindName)")
            queues[kindName] = queue
            return (id, queue)
        }
        running.enter()
        queue.async { [self] in
            defer { running.leave() }
            self.run(id, progress, work)
        }
        return id
    }

    private func run(_ id: String, _ progress: TrainingProgress, _ work: Work) {
        guard
            update(
                id,
                {
                    $0.state = progress.isCancelled ? .cancelled : .running;
                    $0.message = progress.isCancelled ? "cancelled before it started" : "starting"
                }) == .running
        else {
            return
        }
        let result = Result { try work(id, progress) }
        let final = update(id) { s in
            s.finishedMs = clock.nowMs
            s.progress = progress.fraction
            switch result {
            case .success(let (version, metrics)):
                s.state = .succeeded
                s.version = version
                s.metrics = metrics
                s.progress = 1
                s.message = "trained version \(version)"
            case .failure(is TrainingProgress.Cancelled):
                s.state = .cancelled
                s.message = "cancelled; nothing was added"
            case .failure(let error):
                s.state = .failed
                s.message = "\(error)"
            }
        }
        if final != nil, let status = status(id) { ended(status) }
    }

    /// Changes a job's status and saves the board; returns the new state.
    @discardableResult
    private func update(_ id: String, _ change: (inout JobStatusResponse) -> Void) -> JobState? {
        lock.withLock {
            guard var job = jobs[id] else { return nil }
            change(&job.status)
            jobs[id] = job
            try? save()
            return job.status.state
        }
    }

    /// The job's status, with live progress while it runs.
    func status(_ id: String) -> JobStatusResponse? {
        lock.withLock {
            guard let job = jobs[id] else { return nil }
            var s = job.status
            if s.state == .running {
                s.progress = job.progress.fraction
                s.message = job.progress.message
            }
            return s
        }
    }

    var all: [JobStatusResponse] { lock.withLock { order }.compactMap { status($0) } }

    /// Asks a job to stop: a queued one never starts, a running one stops at its next step.
    func cancel(_ id: String) -> JobStatusResponse? {
        guard let progress = lock.withLock({ jobs[id]?.progress }) else { return nil }
        progress.cancel()
        update(id) {
            if $0.state == .queued { $0.state = .cancelled; $0.message = "cancelled before it started"; $0.finishedMs = clock.nowMs }
        }
        return status(id)
    }

    /// Cancels every job and waits (up to `timeout`) for the running ones to stop.
    func shutdown(timeout: Duration = .seconds(10)) {
        let ids = lock.withLock { order }
        for id in ids { _ = cancel(id) }
        _ = running.wait(timeout: .now() + .milliseconds(Int(timeout / .milliseconds(1))))
    }

    /// Called with the lock held.
    private func save() throws {
        var list = ListJobsResponse()
        list.jobs = order.suffix(1000).compactMap { jobs[$0]?.status }
        try AtomicFile.write(list.serializedBytes(), to: path)
    }
}
