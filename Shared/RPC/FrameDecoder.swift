public import NIOCore
import Wire

/// Why bytes from a peer are not a frame. Any of these ends the connection.
public struct FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public static let badMagic = Code(name: "bad_magic")
        public static let unsupportedVersion = Code(name: "unsupported_version")
        public static let unknownFrameKind = Code(name: "unknown_frame_kind")
        /// A frame kind only a server sends (RESPONSE, GO_AWAY), sent by a client.
        public static let unexpectedFrameKind = Code(name: "unexpected_frame_kind")
        /// A REQUEST reusing the correlation id of a call still in flight.
        public static let duplicateCorrelationID = Code(name: "duplicate_correlation_id")
        public static let frameTooLarge = Code(name: "frame_too_large")
        public static let badCompression = Code(name: "bad_compression")
        public static let truncated = Code(name: "truncated")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Splits a byte stream into frames. Checks magic, version and the declared length as soon
/// as the header is in, before waiting for (or buffering) the body, and decompresses LZ4
/// payloads into a buffer whose size is capped before it is allocated.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    public let limits: FrameLimits

    public init(limits: FrameLimits = .default) {
        self.limits = limits
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try decodeFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        let state = try decode(context: context, buffer: &buffer)
        if state == .needMoreData, buffer.readableBytes > 0, seenEOF {
            throw FrameError(code: .truncated, message: "connection closed inside a frame (\(buffer.readableBytes) bytes left)")
        }
        return state
    }

    /// Decodes one frame from the front of `buffer`, or returns nil when more bytes are needed.
    /// Exposed for the fuzzer and for tests.
    public func decodeFrame(_ buffer: inout ByteBuffer) throws -> Frame? {
        // Validate what we have of the header as early as possible: garbage is refused on
        // its first bytes, not after 24 of them.
        if buffer.readableBytes >= 2, let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self), magic != Frame.magic {
            throw FrameError(code: .badMagic, message: "expected 0x5052, got 0x\(String(magic, radix: 16))")
        }
        if buffer.readableBytes >= 3, let version = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt8.self), version != Frame.version
        {
            throw FrameError(code: .unsupportedVersion, message: "version \(version), this peer speaks \(Frame.version)")
        }
        guard buffer.readableBytes >= Frame.headerSize else { return nil }
        let start = buffer.readerIndex
        let kindByte = buffer.getInteger(at: start + 3, as: UInt8.self)!
        guard let kind = Frame.Kind(rawValue: kindByte) else {
            throw FrameError(code: .unknownFrameKind, message: "frame kind \(kindByte)")
        }
        let flags = Frame.Flags(rawValue: buffer.getInteger(at: start + 4, as: UInt8.self)!)
        let length = Int(buffer.getInteger(at: start + 20, as: UInt32.self)!)
        guard length <= limits.maxPayloadBytes else {
            throw FrameError(code: .frameTooLarge, message: "payload of \(length) bytes exceeds the limit of \(limits.maxPayloadBytes)")
        }
        guard buffer.readableBytes >= Frame.headerSize + length else { return nil }

        let status = buffer.getInteger(at: start + 5, as: UInt8.self)!
        let method = buffer.getInteger(at: start + 6, as: UInt16.self)!
        let correlationID = buffer.getInteger(at: start + 8, as: UInt64.self)!
        let deadline = buffer.getInteger(at: start + 16, as: UInt32.self)!
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        var payload = buffer.readSlice(length: length)!
        var credential: [UInt8]?
        if flags.contains(.credential) {
            guard let n = payload.readInteger(as: UInt8.self), let bytes = payload.readBytes(length: Int(n)) else {
                throw FrameError(code: .truncated, message: "credential flag set but the payload holds no credential")
            }
            credential = bytes
        }
        var requestID: [UInt8]?
        if flags.contains(.requestID) {
            guard let n = payload.readInteger(as: UInt8.self), let bytes = payload.readBytes(length: Int(n)) else {
                throw FrameError(code: .truncated, message: "request id flag set but the payload holds no request id")
            }
            requestID = bytes
        }
        var actingFor: [UInt8]?
        if flags.contains(.actingFor) {
            guard let n = payload.readInteger(as: UInt8.self), let bytes = payload.readBytes(length: Int(n)) else {
                throw FrameError(code: .truncated, message: "acting-for flag set but the payload holds no name")
            }
            actingFor = bytes
        }
        if flags.contains(.lz4) {
            payload = try decompress(payload)
        }
        return Frame(
            kind: kind, flags: flags, status: status, method: method, correlationID: correlationID,
            deadlineMicros: deadline, payload: payload, credential: credential, requestID: requestID, actingFor: actingFor)
    }

    private func decompress(_ compressed: ByteBuffer) throws -> ByteBuffer {
        var compressed = compressed
        guard let original = compressed.readInteger(as: UInt32.self) else {
            throw FrameError(code: .badCompression, message: "compressed payload without its length")
        }
        guard Int(original) <= limits.maxDecompressedBytes else {
            throw FrameError(
                code: .frameTooLarge,
                message: "payload decompresses to \(original) bytes, limit \(limits.maxDecompressedBytes)")
        }
        var out = ByteBufferAllocator().buffer(capacity: Int(original))
        do {
            try out.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(original)) { dst in
                try compressed.withUnsafeReadableBytes { src in
                    try LZ4Block.decompress(src, into: UnsafeMutableRawBufferPointer(rebasing: dst.prefix(Int(original))))
                }
                return Int(original)
            }
        } catch let error as WireError {
            throw FrameError(code: .badCompression, message: error.message)
        }
        return out
    }
}

/// Writes frames, compressing payloads of at least `limits.compressionThreshold` bytes when
/// LZ4 makes them smaller, and sending them raw otherwise.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public let limits: FrameLimits

    public init(limits: FrameLimits = .default) {
        self.limits = limits
    }

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        Self.write(frame, into: &out, compressionThreshold: limits.compressionThreshold)
    }

    public static func write(_ frame: Frame, into out: inout ByteBuffer, compressionThreshold: Int) {
        let start = out.writerIndex
        var flags = frame.flags.subtracting([.lz4, .credential, .requestID, .actingFor])
        let credential = frame.credential.map { Array($0.prefix(255)) }
        let requestID = frame.requestID.map { Array($0.prefix(255)) }
        let actingFor = frame.actingFor.map { Array($0.prefix(255)) }
        if credential != nil { flags.insert(.credential) }
        if requestID != nil { flags.insert(.requestID) }
        if actingFor != nil { flags.insert(.actingFor) }
        let prefix = [credential, requestID, actingFor].reduce(0) { $0 + ($1.map { 1 + $0.count } ?? 0) }
        let length = frame.payload.readableBytes
        out.reserveCapacity(minimumWritableBytes: Frame.headerSize + prefix + length)
        writeHeader(frame, flags: flags, length: UInt32(prefix + length), into: &out)
        for field in [credential, requestID, actingFor] {
            guard let field else { continue }
            out.writeInteger(UInt8(field.count))
            out.writeBytes(field)
        }
        if length >= compressionThreshold, length <= LZ4Block.maxInputSize {
            let bound = LZ4Block.compressBound(length)
            out.writeInteger(UInt32(length))
            let compressed = out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { dst in
                frame.payload.withUnsafeReadableBytes { src in
                    LZ4Block.compress(src, into: UnsafeMutableRawBufferPointer(rebasing: dst.prefix(bound))) ?? 0
                }
            }
            if compressed > 0, compressed + 4 < length {
                flags.insert(.lz4)
                out.setInteger(flags.rawValue, at: start + 4)
                out.setInteger(UInt32(prefix + compressed + 4), at: start + 20)
                return
            }
            out.moveWriterIndex(to: start + Frame.headerSize + prefix)
        }
        var payload = frame.payload
        out.writeBuffer(&payload)
    }

    private static func writeHeader(_ frame: Frame, flags: Frame.Flags, length: UInt32, into out: inout ByteBuffer) {
        out.writeInteger(Frame.magic)
        out.writeInteger(Frame.version)
        out.writeInteger(frame.kind.rawValue)
        out.writeInteger(flags.rawValue)
        out.writeInteger(frame.status)
        out.writeInteger(frame.method)
        out.writeInteger(frame.correlationID)
        out.writeInteger(frame.deadlineMicros)
        out.writeInteger(length)
    }
}
