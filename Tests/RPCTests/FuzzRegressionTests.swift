import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

@testable import RPC

/// Replays the frame fuzzer's seeds and every input it ever crashed on (Fuzz/regressions/frames)
/// through the frame decoder and message unpacking, as the fuzzer does.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    @Test func seedsAreValidFrames() throws {
        let seeds = fuzzInputs("seeds/frames")
        #expect(seeds.count >= 3)
        for url in seeds {
            var buffer = ByteBuffer(bytes: try Data(contentsOf: url))
            var frames = 0
            while let frame = try FrameDecoder().decodeFrame(&buffer) {
                frames += 1
                #expect(frame.kind != .goAway)
            }
            #expect(frames >= 1 && buffer.readableBytes == 0, "\(url.lastPathComponent)")
        }
    }

    @Test func everyRecordedInputIsHandledWithoutCrashing() throws {
        for url in fuzzInputs("regressions/frames") + fuzzInputs("seeds/frames") {
            var buffer = ByteBuffer(bytes: try Data(contentsOf: url))
            let decoder = FrameDecoder(
                limits: FrameLimits(maxPayloadBytes: 1 << 20, maxDecompressedBytes: 4 << 20, compressionThreshold: 2048))
            while let frame = try? decoder.decodeFrame(&buffer) {
                frame.payload.withUnsafeReadableBytes { bytes in
                    _ = try? AppendRequest(serializedBytes: bytes, limits: .default)
                    _ = try? ScoreRequest(serializedBytes: bytes, limits: .default)
                    _ = try? UserProfile(serializedBytes: bytes, limits: .default)
                    _ = try? ErrorStatus(serializedBytes: bytes, limits: .default)
                }
            }
        }
    }
}
