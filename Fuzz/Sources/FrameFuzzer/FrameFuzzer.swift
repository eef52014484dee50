import FuzzDriver
import NIOCore
import RPC
import Wire

/// One fuzz input: a byte stream as a server would read it. Every frame the decoder accepts
/// has its payload unpacked as each request type a service accepts. Errors are expected;
/// crashes, hangs, leaks and sanitizer reports are not. Any crash found becomes a
/// regression test in Tests/RPCTests/FuzzRegressionTests.swift.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let limits = FrameLimits(maxPayloadBytes: 1 << 20, maxDecompressedBytes: 4 << 20, compressionThreshold: 2048)
    let decoder = FrameDecoder(limits: limits)
    while true {
        guard let frame = try? decoder.decodeFrame(&buffer) else { break }
        frame.payload.withUnsafeReadableBytes { bytes in
            unpackAll(bytes)
        }
    }
    return 0
}

func unpackAll(_ bytes: UnsafeRawBufferPointer) {
    let limits = DecodingLimits.default
    _ = try? AppendRequest(serializedBytes: bytes, limits: limits)
    // Ingest's in-place path: every accessor, and each event stored as sent or packed again.
    if let batch = try? EventBatch(appendRequest: bytes, limits: limits) {
        var out: [UInt8] = []
        for i in 0..<min(batch.count, 64) {
            _ = batch.header(i)
            for field in EventBatch.Text.allCases { _ = batch.withText(i, field) { $0.count } }
            batch.appendStored(i, ingestedAtMs: 1, to: &out)
            if i % 2 == 1 { batch.replace(i, with: batch.event(i)) }
            batch.appendStored(i, ingestedAtMs: 1, to: &out)
        }
    }
    // Ingest's start-up read of stored ids: the id it finds lies inside the bytes.
    if let (id, _) = StoredEvent.idAndIngestionTime(of: bytes), id.count > 0 {
        precondition(id.baseAddress! >= bytes.baseAddress! && id.baseAddress! + id.count <= bytes.baseAddress! + bytes.count)
    }
    _ = try? ReadRequest(serializedBytes: bytes, limits: limits)
    _ = try? ReadResponse(serializedBytes: bytes, limits: limits)
    _ = try? ScoreRequest(serializedBytes: bytes, limits: limits)
    _ = try? GetFeaturesRequest(serializedBytes: bytes, limits: limits)
    _ = try? UserProfile(serializedBytes: bytes, limits: limits)
    _ = try? GetModelResponse(serializedBytes: bytes, limits: limits)
    _ = try? RecommendRequest(serializedBytes: bytes, limits: limits)
    _ = try? UpdateListsRequest(serializedBytes: bytes, limits: limits)
    _ = try? ErrorStatus(serializedBytes: bytes, limits: limits)
    _ = try? HealthResponse(serializedBytes: bytes, limits: limits)
}

/// SwiftPM links executables with `main` renamed to `<Target>_main`; this is that entry
/// point, handing control to libFuzzer's driver.
@_cdecl("FrameFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
