internal import CProtobufC

/// The bridge between a generated Swift message and its protoc-c struct. Internal: nothing
/// outside Wire sees a C type.
protocol CMessageConvertible: WireMessage {
    associatedtype CStruct
    /// Initialises `c` (whose memory lives in `arena`) from the message at `m`. It reads the
    /// message where it lies: a method on `self` had each message copied first (its strings
    /// and boxes retained and released), a fifth of a batch's encode.
    static func fill(_ m: UnsafePointer<Self>, _ c: UnsafeMutablePointer<CStruct>, arena: Arena)
    init(cMessage: UnsafePointer<CStruct>)
    /// Sets the fields of the message at `m` (a default value) from `c`, in place: an
    /// initialiser's result is copied out whole, its strings and boxes retained and released.
    static func read(_ c: UnsafePointer<CStruct>, into m: UnsafeMutablePointer<Self>)
    /// The protoc-c `*__unpack` function of this message.
    static func cUnpack(_ allocator: UnsafeMutablePointer<ProtobufCAllocator>, _ count: Int, _ bytes: UnsafePointer<UInt8>)
        -> UnsafeMutablePointer<CStruct>?
}

func packMessage<M: CMessageConvertible>(_ message: M) -> [UInt8] {
    pack(message, in: Arena())
}

func packMessages<M: CMessageConvertible>(_ messages: [M]) -> [[UInt8]] {
    let arena = Arena()
    return messages.map { message in
        defer { arena.reset() }
        return pack(message, in: arena)
    }
}

private func pack<M: CMessageConvertible>(_ message: M, in arena: Arena) -> [UInt8] {
    let c = arena.message(message)
    let base = UnsafeRawPointer(c).assumingMemoryBound(to: ProtobufCMessage.self)
    let size = protobuf_c_message_get_packed_size(base)
    guard size > 0 else { return [] }
    return withExtendedLifetime(arena) {
        [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = protobuf_c_message_pack(base, buffer.baseAddress!)
        }
    }
}

func unpackMessage<M: CMessageConvertible>(_ bytes: UnsafeRawBufferPointer, limits: DecodingLimits) throws -> M {
    let (arena, c) = try unpackC(bytes, limits: limits, name: "\(M.self)", M.cUnpack)
    return withExtendedLifetime(arena) { M(cMessage: c) }
}

/// Runs a protoc-c `*__unpack` over `bytes` into a new arena, under `limits`. The C tree lives
/// as long as the returned arena.
func unpackC<CStruct>(
    _ bytes: UnsafeRawBufferPointer, limits: DecodingLimits, name: String,
    _ unpack: (UnsafeMutablePointer<ProtobufCAllocator>, Int, UnsafePointer<UInt8>) -> UnsafeMutablePointer<CStruct>?
) throws -> (Arena, UnsafeMutablePointer<CStruct>) {
    guard bytes.count <= limits.maxMessageBytes else {
        throw WireError(code: .tooLarge, message: "\(bytes.count) bytes exceeds the limit of \(limits.maxMessageBytes)")
    }
    let arena = Arena(budget: limits.allocationBudget(for: bytes.count))
    // libprotobuf-c wants a non-null pointer even for an empty message.
    var empty: UInt8 = 0
    let c = withUnsafePointer(to: &empty) { emptyPointer in
        arena.withAllocator { allocator in
            unpack(allocator, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer)
        }
    }
    guard let c else {
        if arena.budgetExceeded {
            throw WireError(
                code: .allocationBudgetExceeded,
                message: "decoding \(name) from \(bytes.count) bytes needs more than \(arena.budget) bytes")
        }
        throw WireError(code: .malformed, message: "not a valid \(name)")
    }
    return (arena, c)
}

// MARK: Decoding helpers used by the generated code

func readString(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p, p.pointee != 0 else { return "" }
    return String(cString: p)
}

func readStrings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
    guard let p, count > 0 else { return [] }
    return (0..<count).map { readString(p[$0]) }
}

func readScalars<T>(_ p: UnsafeMutablePointer<T>?, _ count: Int) -> [T] {
    guard let p, count > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: count))
}

func readEnums<E: RawRepresentable>(_ p: UnsafeMutablePointer<E>?, _ count: Int) -> [Int32]
where E.RawValue: FixedWidthInteger {
    guard let p, count > 0 else { return [] }
    return (0..<count).map { Int32(truncatingIfNeeded: p[$0].rawValue) }
}

func readBinary(_ b: ProtobufCBinaryData) -> [UInt8] {
    readScalars(b.data, b.len)
}

func readMessages<M: CMessageConvertible>(
    _ p: UnsafeMutablePointer<UnsafeMutablePointer<M.CStruct>?>?, _ count: Int, as: M.Type
) -> [M] {
    guard let p, count > 0 else { return [] }
    // Built in place: no intermediate copies of (possibly large) message values.
    return [M](unsafeUninitializedCapacity: count) { buffer, initialized in
        let base = buffer.baseAddress.unsafelyUnwrapped
        for i in 0..<count {
            (base + i).initialize(to: M())
            if let c = p[i] { M.read(c, into: base + i) }
        }
        initialized = count
    }
}

extension UnknownFields {
    init(cMessage: UnsafeRawPointer) {
        self.init()
        let base = cMessage.assumingMemoryBound(to: ProtobufCMessage.self).pointee
        guard base.n_unknown_fields > 0, let list = base.unknown_fields else { return }
        fields = (0..<Int(base.n_unknown_fields)).map { i in
            let f = list[i]
            return Field(number: f.tag, wireType: UInt8(truncatingIfNeeded: f.wire_type.rawValue), data: readScalars(f.data, f.len))
        }
    }
}
