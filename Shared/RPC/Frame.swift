public import NIOCore

/// One unit on the wire: a 24-byte header and a payload. Layout in docs/PROTOCOL.md.
public struct Frame: Sendable, Hashable {
    public enum Kind: UInt8, Sendable {
        case request = 1
        case response = 2
        /// Client to server: the caller gave up on `correlationID`; no response follows.
        case cancel = 3
        /// Server to client: the connection is closing (`status` says why); no new calls.
        case goAway = 4
    }

    public struct Flags: OptionSet, Sendable, Hashable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The payload on the wire is `u32 original length` + one LZ4 block.
        public static let lz4 = Flags(rawValue: 0x01)
        /// The payload on the wire starts with the caller's credential: `u8 length` and that
        /// many bytes (a token), before the message (compressed or not).
        public static let credential = Flags(rawValue: 0x02)
        /// The payload on the wire carries the call's request id: `u8 length` and that many
        /// bytes, after the credential (when there is one) and before the message.
        public static let requestID = Flags(rawValue: 0x04)
        /// The payload on the wire carries the person the caller acts for (the console's
        /// signed-in analyst): `u8 length` and that many bytes of UTF-8, after the request id.
        public static let actingFor = Flags(rawValue: 0x08)
    }

    public static let magic: UInt16 = 0x5052  // "PR"
    public static let version: UInt8 = 1
    public static let headerSize = 24

    public var kind: Kind
    /// Set by the encoder, read by the decoder; callers leave it empty.
    public var flags: Flags
    /// StatusCode raw value; meaningful in responses and go-away frames, 0 otherwise.
    public var status: UInt8
    public var method: UInt16
    public var correlationID: UInt64
    /// Microseconds the caller still waits for the answer; 0 means no deadline.
    public var deadlineMicros: UInt32
    /// The payload, decompressed.
    public var payload: ByteBuffer
    /// The caller's token (requests only; nil: none sent).
    public var credential: [UInt8]?
    /// The request id the call carries across services (requests only; nil: none sent).
    public var requestID: [UInt8]?
    /// The person the caller acts for, as the caller says (requests only; nil: none sent).
    public var actingFor: [UInt8]?

    public init(
        kind: Kind, flags: Flags = [], status: UInt8 = 0, method: UInt16, correlationID: UInt64,
        deadlineMicros: UInt32 = 0, payload: ByteBuffer, credential: [UInt8]? = nil, requestID: [UInt8]? = nil,
        actingFor: [UInt8]? = nil
    ) {
        self.kind = kind
        self.flags = flags
        self.status = status
        self.method = method
        self.correlationID = correlationID
        self.deadlineMicros = deadlineMicros
        self.payload = payload
        self.credential = credential
        self.requestID = requestID
        self.actingFor = actingFor
    }
}

/// Size limits shared by both ends of a connection.
public struct FrameLimits: Sendable, Hashable {
    /// Largest payload accepted as it is on the wire (after compression).
    public var maxPayloadBytes: Int
    /// Largest payload accepted after decompression.
    public var maxDecompressedBytes: Int
    /// Payloads of at least this many bytes are LZ4-compressed when that shrinks them.
    public var compressionThreshold: Int

    public init(maxPayloadBytes: Int, maxDecompressedBytes: Int, compressionThreshold: Int) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxDecompressedBytes = maxDecompressedBytes
        self.compressionThreshold = compressionThreshold
    }

    /// 16 MiB frames, 64 MiB decompressed, compression from 2 KiB.
    public static let `default` = FrameLimits(
        maxPayloadBytes: 16 << 20, maxDecompressedBytes: 64 << 20, compressionThreshold: 2048)
}
