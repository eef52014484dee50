import Foundation
import Math
public import RPC
import ServiceKit
public import Wire

/// Rows in the fraud dataset's format with a planted pattern: a fraudster buys within a
/// minute of signing up, on a device three accounts share; a customer buys a day or three
/// later on a device of their own. One row in twenty breaks the pattern either way.
public func plantedFraudRows(_ n: Int) -> [Substring] {
    var rng = SplitMix(seed: 31)
    var lines: [Substring] = ["user_id,signup_time,purchase_time,purchase_value,device_id,source,browser,sex,age,ip_address,class"]
    let day: TimeInterval = 86_400
    let start = Date(timeIntervalSince1970: 1_420_070_400)  // 2015-01-01
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "M/d/yyyy H:mm"
    for i in 0..<n {
        let fraud = rng.below(6) == 0
        let looksFraud = rng.below(20) == 0 ? !fraud : fraud
        let signup = start.addingTimeInterval(Double(i) * 3600)
        let purchase = signup.addingTimeInterval(looksFraud ? 30 : Double(1 + rng.below(3)) * day)
        let device = looksFraud ? "RING\(i / 3)" : "DEV\(i)"
        let value = 10 + rng.below(90)
        let times = "\(formatter.string(from: signup)),\(formatter.string(from: purchase))"
        lines.append("\(1000 + i),\(times),\(value),\(device),SEO,Chrome,M,\(20 + rng.below(40)),\(100_000 + i),\(fraud ? 1 : 0)")
    }
    return lines
}

/// Starts a training job; returns its id.
public func train(
    _ model: RPCClient, _ kind: ModelKind, name: String = "", params: [String: String] = [:], publish: Bool = false, search: Bool = false
) async throws -> String {
    var request = TrainRequest()
    request.kind = kind
    request.name = name
    request.publish = publish
    request.search = search
    request.params = params.sorted { $0.key < $1.key }.map { kv in
        var p = KeyValue()
        p.key = kv.key
        p.value = kv.value
        return p
    }
    return try await model.call(ModelAPI.train, request).jobId
}

/// Polls a job until it is in one of `states`.
public func waitJob(
    _ model: RPCClient, _ id: String, until states: Set<JobState> = [.succeeded, .failed, .cancelled], timeout: Duration = .seconds(120)
) async throws -> JobStatusResponse {
    var request = JobStatusRequest()
    request.jobId = id
    let deadline = ContinuousClock.now + timeout
    while true {
        let status = try await model.call(ModelAPI.jobStatus, request, timeout: .seconds(10))
        if states.contains(status.state) { return status }
        guard ContinuousClock.now < deadline else { throw ServiceError("job \(id) still \(status.state) (\(status.message))") }
        try await Task.sleep(for: .milliseconds(30))
    }
}

/// A model version's artifact (0: the published one), fetched in chunks of `chunk` bytes (0: the server's).
public func fetchArtifact(_ model: RPCClient, _ name: String, version: UInt32 = 0, chunk: UInt32 = 0) async throws -> (ModelInfo, [UInt8]) {
    var bytes: [UInt8] = []
    var request = GetModelRequest()
    request.name = name
    request.version = version
    request.maxBytes = chunk
    while true {
        let response = try await model.call(ModelAPI.getModel, request)
        bytes += response.artifact
        request.version = response.info!.version
        request.offset = UInt64(bytes.count)
        if bytes.count == response.totalBytes { return (response.info!, bytes) }
    }
}
