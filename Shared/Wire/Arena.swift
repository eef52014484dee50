internal import CProtobufC

#if canImport(Glibc)
import Glibc
#endif

/// Bump allocator that owns every C allocation of one encode or decode.
///
/// Encoding builds the protoc-c struct tree here, packs it, and frees the arena in one go.
/// Decoding hands the arena to libprotobuf-c as its allocator, with a byte budget: an
/// allocation beyond it fails, which makes `protobuf_c_message_unpack` fail cleanly.
final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer?
    private var remaining = 0
    /// The latest block of `blockSize` bytes (large requests get blocks of their own).
    private var regularBlock: UnsafeMutableRawPointer?
    private let blockSize: Int
    /// Bytes handed out so far (including alignment padding).
    private(set) var allocated = 0
    /// Upper bound on `allocated`; `Int.max` for encoding.
    let budget: Int
    private(set) var budgetExceeded = false

    init(blockSize: Int = 8 << 10, budget: Int = .max) {
        self.blockSize = blockSize
        self.budget = budget
    }

    deinit {
        for block in blocks { free(block) }
    }

    /// Forgets everything allocated, keeping one regular-sized block for reuse.
    func reset() {
        for block in blocks where block != regularBlock { free(block) }
        blocks = regularBlock.map { [$0] } ?? []
        cursor = regularBlock
        remaining = regularBlock == nil ? 0 : blockSize
        allocated = 0
    }

    /// Memory for `byteCount` bytes aligned to 16, or nil past the budget or on malloc failure.
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        let size = (max(byteCount, 1) + 15) & ~15
        guard allocated + size <= budget else {
            budgetExceeded = true
            return nil
        }
        if size > remaining {
            if size > blockSize / 4 {
                // Large request: give it a block of its own, keep the current one.
                guard let block = malloc(size) else { return nil }
                blocks.append(block)
                allocated += size
                return block
            }
            guard let block = malloc(blockSize) else { return nil }
            blocks.append(block)
            regularBlock = block
            cursor = block
            remaining = blockSize
        }
        let result = cursor!
        cursor = result + size
        remaining -= size
        allocated += size
        return result
    }

    func allocate<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        guard let raw = allocate(byteCount: MemoryLayout<T>.stride * count) else {
            fatalError("out of memory while encoding a message")
        }
        return raw.bindMemory(to: T.self, capacity: count)
    }

    // MARK: Encoding helpers used by the generated code

    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        var value = value
        return value.withUTF8 { utf8 in
            let p = allocate(CChar.self, count: utf8.count + 1)
            if let base = utf8.baseAddress {
                UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: utf8.count)
            }
            p[utf8.count] = 0
            return p
        }
    }

    func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: values.count)
        for (i, v) in values.enumerated() { array[i] = string(v) }
        return (values.count, array)
    }

    func scalars<T>(_ values: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(T.self, count: values.count)
        values.withUnsafeBufferPointer { src in
            _ = UnsafeMutableBufferPointer(start: array, count: values.count).initialize(from: src)
        }
        return (values.count, array)
    }

    func enums<E: RawRepresentable>(_ values: [Int32], as: E.Type) -> (Int, UnsafeMutablePointer<E>?)
    where E.RawValue: FixedWidthInteger {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(E.self, count: values.count)
        for (i, v) in values.enumerated() {
            (array + i).initialize(to: E(rawValue: E.RawValue(truncatingIfNeeded: v))!)
        }
        return (values.count, array)
    }

    func binary(_ value: [UInt8]) -> ProtobufCBinaryData {
        let (count, data) = scalars(value)
        return ProtobufCBinaryData(len: count, data: data)
    }

    func message<M: CMessageConvertible>(_ value: M) -> UnsafeMutablePointer<M.CStruct> {
        let p = allocate(M.CStruct.self)
        value.fill(p, arena: self)
        return p
    }

    func messages<M: CMessageConvertible>(_ values: [M]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<M.CStruct>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<M.CStruct>?.self, count: values.count)
        for (i, v) in values.enumerated() { array[i] = message(v) }
        return (values.count, array)
    }

    func storeUnknownFields(_ unknown: UnknownFields, in message: UnsafeMutableRawPointer) {
        guard !unknown.isEmpty else { return }
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self)
        let array = allocate(ProtobufCMessageUnknownField.self, count: unknown.fields.count)
        for (i, f) in unknown.fields.enumerated() {
            let (len, data) = scalars(f.data)
            (array + i).initialize(
                to: ProtobufCMessageUnknownField(
                    tag: f.number,
                    wire_type: ProtobufCWireType(rawValue: .init(f.wireType)),
                    len: len,
                    data: data))
        }
        base.pointee.n_unknown_fields = UInt32(unknown.fields.count)
        base.pointee.unknown_fields = array
    }

    /// A libprotobuf-c allocator drawing from this arena. Frees are no-ops: the arena frees
    /// everything at once when the decode is done.
    func withAllocator<R>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) throws -> R) rethrows -> R {
        var allocator = ProtobufCAllocator(
            alloc: { data, size in
                Unmanaged<Arena>.fromOpaque(data!).takeUnretainedValue().allocate(byteCount: size)
            },
            free: { _, _ in },
            allocator_data: Unmanaged.passUnretained(self).toOpaque())
        return try withExtendedLifetime(self) { try body(&allocator) }
    }
}
