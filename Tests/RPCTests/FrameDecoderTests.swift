import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
import Wire

@testable import RPC

@Suite("Frame decoder")
struct FrameDecoderTests {
    static func encoded(_ frame: Frame, threshold: Int = 2048) -> ByteBuffer {
        var buffer = ByteBuffer()
        FrameEncoder.write(frame, into: &buffer, compressionThreshold: threshold)
        return buffer
    }

    static let frames: [Frame] = [
        Frame(kind: .request, method: 0x0001, correlationID: 1, deadlineMicros: 250_000, payload: ByteBuffer()),
        Frame(kind: .response, status: 17, method: 0x0101, correlationID: .max, payload: ByteBuffer(bytes: [1, 2, 3])),
        Frame(kind: .cancel, method: 0, correlationID: 99, payload: ByteBuffer()),
        // Compressible payload above the threshold: travels LZ4-compressed.
        Frame(kind: .request, method: 0x0102, correlationID: 7, payload: ByteBuffer(repeating: 0x61, count: 10_000)),
        // A credential and a request id in front of the (compressed) message.
        Frame(
            kind: .request, method: 0x0401, correlationID: 8, payload: ByteBuffer(repeating: 0x62, count: 5_000),
            credential: Array("0123456789abcdef".utf8), requestID: Array("3f9a0c1d2e4b5a69".utf8)),
        // And the person the caller acts for, after them.
        Frame(
            kind: .request, method: 0x0403, correlationID: 9, payload: ByteBuffer(bytes: [7, 7]),
            credential: Array("0123456789abcdef".utf8), requestID: Array("r-1".utf8), actingFor: Array("alice".utf8)),
    ]

    @Test("byte by byte and many frames per buffer")
    func verifier() throws {
        let pairs = Self.frames.map { frame -> (ByteBuffer, [Frame]) in
            var expected = frame
            if frame.payload.readableBytes >= 2048 { expected.flags.insert(.lz4) }
            if frame.credential != nil { expected.flags.insert(.credential) }
            if frame.requestID != nil { expected.flags.insert(.requestID) }
            if frame.actingFor != nil { expected.flags.insert(.actingFor) }
            return (Self.encoded(frame), [expected])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func headerLayoutIsAsDocumented() {
        let frame = Frame(
            kind: .request, method: 0x0401, correlationID: 0x0102030405060708, deadlineMicros: 0x000F4240,
            payload: ByteBuffer(bytes: [0xAA]))
        let bytes = Array(Self.encoded(frame).readableBytesView)
        #expect(
            bytes == [
                0x50, 0x52, 0x01, 0x01, 0x00, 0x00, 0x04, 0x01,
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                0x00, 0x0F, 0x42, 0x40, 0x00, 0x00, 0x00, 0x01, 0xAA,
            ])
    }

    @Test func compressedOnlyWhenItShrinks() throws {
        var rng = SystemRandomNumberGenerator()
        let random = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var raw = Self.encoded(Frame(kind: .request, method: 1, correlationID: 1, payload: ByteBuffer(bytes: random)))
        #expect(raw.readableBytes == Frame.headerSize + 5000)
        #expect(raw.getInteger(at: 4, as: UInt8.self) == 0)
        let compressed = Self.encoded(Frame(kind: .request, method: 1, correlationID: 1, payload: ByteBuffer(repeating: 1, count: 5000)))
        #expect(compressed.readableBytes < 200)
        let decoded = try #require(try FrameDecoder().decodeFrame(&raw))
        #expect(Array(decoded.payload.readableBytesView) == random)
    }

    @Test func oversizedFrameRefusedFromItsHeaderAlone() {
        var header = Self.encoded(Frame(kind: .request, method: 1, correlationID: 1, payload: ByteBuffer()))
        header.setInteger(UInt32(1 << 30), at: 20)  // claims 1 GiB; the body never comes
        #expect {
            try FrameDecoder().decodeFrame(&header)
        } throws: { ($0 as? FrameError)?.code == .frameTooLarge }
    }

    @Test func badMagicRefusedOnTheFirstTwoBytes() {
        var buffer = ByteBuffer(bytes: Array("GE".utf8))
        #expect { try FrameDecoder().decodeFrame(&buffer) } throws: { ($0 as? FrameError)?.code == .badMagic }
    }

    @Test func badVersionAndKindRefused() {
        var v2 = Self.encoded(Self.frames[0])
        v2.setInteger(UInt8(2), at: 2)
        #expect { try FrameDecoder().decodeFrame(&v2) } throws: { ($0 as? FrameError)?.code == .unsupportedVersion }
        var kind = Self.encoded(Self.frames[0])
        kind.setInteger(UInt8(9), at: 3)
        #expect { try FrameDecoder().decodeFrame(&kind) } throws: { ($0 as? FrameError)?.code == .unknownFrameKind }
    }

    @Test func lyingDecompressedLengthRefusedBeforeAllocating() throws {
        var frame = Self.encoded(Self.frames[3])
        #expect(frame.getInteger(at: 4, as: UInt8.self) == Frame.Flags.lz4.rawValue)
        frame.setInteger(UInt32.max, at: Frame.headerSize)  // declared original size: 4 GiB
        #expect { try FrameDecoder().decodeFrame(&frame) } throws: { ($0 as? FrameError)?.code == .frameTooLarge }
        var wrong = Self.encoded(Self.frames[3])
        wrong.setInteger(UInt32(9_999), at: Frame.headerSize)
        #expect { try FrameDecoder().decodeFrame(&wrong) } throws: { ($0 as? FrameError)?.code == .badCompression }
    }

    @Test func truncatedFrameAtEOFIsAnError() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var partial = Self.encoded(Self.frames[1])
        partial.moveWriterIndex(to: partial.writerIndex - 1)
        try channel.writeInbound(partial)
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect { try channel.finish() } throws: { ($0 as? FrameError)?.code == .truncated }
    }

    @Test func needsMoreDataForPartialHeader() throws {
        var buffer = Self.encoded(Self.frames[0])
        var head = buffer.readSlice(length: 10)!
        #expect(try FrameDecoder().decodeFrame(&head) == nil)
        #expect(head.readableBytes == 10)
    }
}
