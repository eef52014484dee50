/// A Persona protobuf message as a plain Swift value.
///
/// Every message in `Shared/Schema` is generated as a struct conforming to this protocol
/// (see `scripts/protogen.py`). Encoding and decoding go through libprotobuf-c, but callers
/// only ever see Swift values and byte arrays: the C structs live in an arena that is freed
/// before these calls return.
public protocol WireMessage: Sendable, Hashable {
    init()
    /// The protobuf encoding of this message.
    func serializedBytes() -> [UInt8]
    /// The encodings of many messages, one array each: cheaper than calling
    /// `serializedBytes()` in a loop (one arena serves them all).
    static func serializedBytes(each messages: [Self]) -> [[UInt8]]
    /// Decodes a message, refusing input larger than `limits.maxMessageBytes` and any message
    /// whose decoded form would need more memory than `limits.allocationBudget(for:)`.
    init(serializedBytes bytes: UnsafeRawBufferPointer, limits: DecodingLimits) throws
}

extension WireMessage {
    public init(serializedBytes bytes: [UInt8], limits: DecodingLimits = .default) throws {
        self = try bytes.withUnsafeBytes { try Self(serializedBytes: $0, limits: limits) }
    }
}

/// Bounds applied to one decode.
///
/// libprotobuf-c allocates a whole C struct for every nested message; a hostile frame of
/// empty sub-messages (2 bytes each on the wire) would otherwise make the decoder allocate
/// about a hundred times its size. The budget caps that amplification.
public struct DecodingLimits: Sendable, Hashable {
    /// Largest encoded message accepted.
    public var maxMessageBytes: Int
    /// Allocation allowed for one message: `baseAllocation + allocationFactor × encoded size`.
    public var allocationFactor: Int
    public var baseAllocation: Int

    public init(maxMessageBytes: Int, allocationFactor: Int, baseAllocation: Int) {
        self.maxMessageBytes = maxMessageBytes
        self.allocationFactor = allocationFactor
        self.baseAllocation = baseAllocation
    }

    /// 16 MiB messages, at most 64 KiB + 16 bytes of C memory per encoded byte. A batch of
    /// minimal events (an item upsert with an id, a category and a price: about 35 bytes on
    /// the wire, 350 decoded with its 216-byte Event struct) needs about 10.
    public static let `default` = DecodingLimits(
        maxMessageBytes: 16 << 20, allocationFactor: 16, baseAllocation: 64 << 10)

    /// For answers from Persona's own services (clients decoding responses): a response of
    /// thousands of small statuses legitimately needs 15-20 bytes of C structs per wire byte.
    public static let trustedPeer = DecodingLimits(
        maxMessageBytes: 64 << 20, allocationFactor: 64, baseAllocation: 1 << 20)

    public func allocationBudget(for encodedBytes: Int) -> Int {
        baseAllocation + allocationFactor * encodedBytes
    }
}

/// Why a message could not be decoded or encoded. A struct with a growable `code`, so that
/// callers switch on codes and new codes do not break them.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The bytes are not a valid encoding of the expected message.
        public static let malformed = Code(name: "malformed")
        /// The input is larger than the configured limit.
        public static let tooLarge = Code(name: "too large")
        /// Decoding would need more memory than the per-message budget allows.
        public static let allocationBudgetExceeded = Code(name: "allocation budget exceeded")
        /// An LZ4 block that does not decompress to its declared size.
        public static let badCompression = Code(name: "bad compression")
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

/// Fields of a decoded message that this build's schema does not know. They are kept as raw
/// wire bytes and written back by the encoder, so an older service relaying a newer message
/// does not drop data.
public struct UnknownFields: Hashable, Sendable {
    public struct Field: Hashable, Sendable {
        public var number: UInt32
        /// Protobuf wire type (0 varint, 1 64-bit, 2 length-delimited, 5 32-bit).
        public var wireType: UInt8
        /// The field's bytes after its tag, as on the wire (length-delimited fields keep their length).
        public var data: [UInt8]

        public init(number: UInt32, wireType: UInt8, data: [UInt8]) {
            self.number = number
            self.wireType = wireType
            self.data = data
        }
    }

    public var fields: [Field] = []
    public var isEmpty: Bool { fields.isEmpty }
    public init() {}
}

/// Immutable heap box for a sub-message field, so that a message with many optional
/// sub-messages stays a few words wide. Compared and hashed by value.
public final class Boxed<Value: Hashable & Sendable>: Hashable, Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
    /// Lends the value to `body` without copying it out of the box (reading `value` into an
    /// argument copies it, retaining each of its fields).
    @inlinable @inline(__always)
    public func withValue<R>(_ body: (borrowing Value) throws -> R) rethrows -> R { try body(value) }
    public static func == (a: Boxed, b: Boxed) -> Bool { a === b || a.value == b.value }
    public func hash(into hasher: inout Hasher) { hasher.combine(value) }
}
