internal import CProtobufC
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Bump allocator that owns every C allocation of one encode or decode.
///
/// Encoding builds the protoc-c struct tree here, packs it, and frees the arena in one go.
/// Decoding hands the arena to libprotobuf-c as its allocator, with a byte budget: an
/// allocation beyond it fails, which makes `protobuf_c_message_unpack` fail cleanly.
final class Arena {
    /// Everything `allocate` reads and writes, in raw memory the arena owns: a class's stored
    /// `var` would pay a dynamic exclusivity check on every access, several per allocation.
    private struct State {
        var cursor: UnsafeMutableRawPointer?
        var remaining = 0
        /// Bytes handed out so far (including alignment padding).
        var allocated = 0
        var budgetExceeded = false
        /// Regular blocks (`BlockPool.blockSize`, the latest last) and large ones.
        var regular = BlockList()
        var large = BlockList()
    }

    private let state: UnsafeMutablePointer<State>
    /// Upper bound on `allocated`; `Int.max` for encoding.
    let budget: Int

    init(budget: Int = .max) {
        self.budget = budget
        state = .allocate(capacity: 1)
        state.initialize(to: State())
    }

    deinit {
        state.pointee.regular.forEach(BlockPool.giveBack)
        state.pointee.large.forEach { free($0) }
        state.pointee.regular.deallocate()
        state.pointee.large.deallocate()
        state.deallocate()
    }

    /// Bytes handed out so far (including alignment padding).
    var allocated: Int { state.pointee.allocated }
    /// Whether an allocation was refused for the budget.
    var budgetExceeded: Bool { state.pointee.budgetExceeded }

    /// Forgets everything allocated, keeping the latest regular block for reuse.
    func reset() {
        let s = state
        let keep = s.pointee.regular.removeAllButLast(BlockPool.giveBack)
        s.pointee.large.forEach { free($0) }
        s.pointee.large.removeAll()
        s.pointee.cursor = keep
        s.pointee.remaining = keep == nil ? 0 : BlockPool.blockSize
        s.pointee.allocated = 0
    }

    /// Memory for `byteCount` bytes aligned to 16, or nil past the budget or on malloc failure.
    @inline(__always)
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        let size = (max(byteCount, 1) + 15) & ~15
        if size <= state.pointee.remaining, state.pointee.allocated + size <= budget { return bump(size) }
        return allocateSlowly(size)
    }

    /// The next `size` bytes of the current block (which has them).
    @inline(__always)
    private func bump(_ size: Int) -> UnsafeMutableRawPointer {
        let s = state
        let result = s.pointee.cursor.unsafelyUnwrapped
        s.pointee.cursor = result + size
        s.pointee.remaining -= size
        s.pointee.allocated += size
        return result
    }

    /// `allocate` when the current block is full or the budget is near.
    @inline(never)
    private func allocateSlowly(_ size: Int) -> UnsafeMutableRawPointer? {
        let s = state
        guard s.pointee.allocated + size <= budget else {
            s.pointee.budgetExceeded = true
            return nil
        }
        if size > s.pointee.remaining {
            if size > BlockPool.blockSize / 4 {
                // Large request: give it a block of its own, keep the current one.
                guard let block = malloc(size) else { return nil }
                guard s.pointee.large.append(block) else {
                    free(block)
                    return nil
                }
                s.pointee.allocated += size
                return block
            }
            guard let block = BlockPool.take() else { return nil }
            guard s.pointee.regular.append(block) else {
                BlockPool.giveBack(block)
                return nil
            }
            s.pointee.cursor = block
            s.pointee.remaining = BlockPool.blockSize
        }
        return bump(size)
    }

    func allocate<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        guard let raw = allocate(byteCount: MemoryLayout<T>.stride * count) else {
            fatalError("out of memory while encoding a message")
        }
        return raw.bindMemory(to: T.self, capacity: count)
    }

    // MARK: Encoding helpers used by the generated code

    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        // Native and small strings lend their UTF-8 in place; others are made contiguous first.
        if let p = value.utf8.withContiguousStorageIfAvailable({ cString($0) }) { return p }
        var value = value
        return value.withUTF8 { cString($0) }
    }

    /// `utf8` and a terminating zero, in the arena.
    private func cString(_ utf8: UnsafeBufferPointer<UInt8>) -> UnsafeMutablePointer<CChar> {
        let p = allocate(CChar.self, count: utf8.count + 1)
        if let base = utf8.baseAddress {
            UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: utf8.count)
        }
        p[utf8.count] = 0
        return p
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
        let c = allocate(M.CStruct.self)
        withUnsafePointer(to: value) { M.fill($0, c, arena: self) }
        return c
    }

    func message<M: CMessageConvertible>(_ box: Boxed<M>) -> UnsafeMutablePointer<M.CStruct> {
        box.withValue { message($0) }
    }

    func messages<M: CMessageConvertible>(_ values: [M]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<M.CStruct>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<M.CStruct>?.self, count: values.count)
        // Each value is read where the array holds it: a copy would retain every field.
        values.withUnsafeBufferPointer { values in
            for i in values.indices {
                let c = allocate(M.CStruct.self)
                M.fill(values.baseAddress.unsafelyUnwrapped + i, c, arena: self)
                array[i] = c
            }
        }
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

/// A growable list of malloc'd blocks in raw memory (see `Arena.State`).
private struct BlockList {
    private var blocks: UnsafeMutablePointer<UnsafeMutableRawPointer>?
    private var count = 0
    private var capacity = 0

    /// Adds `block`; false when the list cannot grow.
    mutating func append(_ block: UnsafeMutableRawPointer) -> Bool {
        if count == capacity {
            let grown = max(8, 2 * capacity)
            guard let memory = realloc(blocks, grown * MemoryLayout<UnsafeMutableRawPointer>.stride) else { return false }
            blocks = memory.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
            capacity = grown
        }
        blocks.unsafelyUnwrapped[count] = block
        count += 1
        return true
    }

    func forEach(_ body: (UnsafeMutableRawPointer) -> Void) {
        for i in 0..<count { body(blocks.unsafelyUnwrapped[i]) }
    }

    mutating func removeAll() { count = 0 }

    /// Hands every block but the latest to `release` and keeps that one (nil when empty).
    mutating func removeAllButLast(_ release: (UnsafeMutableRawPointer) -> Void) -> UnsafeMutableRawPointer? {
        guard count > 0 else { return nil }
        let last = blocks.unsafelyUnwrapped[count - 1]
        for i in 0..<count - 1 { release(blocks.unsafelyUnwrapped[i]) }
        blocks.unsafelyUnwrapped[0] = last
        count = 1
        return last
    }

    func deallocate() { free(blocks) }
}

/// Arena blocks that finished arenas handed back, for the next arena to take. A block used
/// a moment ago is mapped and likely in cache, where fresh memory costs page faults: a
/// 10,000-event batch fills about 4 MB of blocks, which malloc would return to the system
/// and fault in again on every encode. At most `capacity` blocks are kept.
enum BlockPool {
    static let blockSize = 64 << 10
    static let capacity = 128
    /// Free blocks by address (raw pointers are not `Sendable`).
    private static let free = Mutex<[UInt]>([])

    /// A block of `blockSize` bytes, from the pool or malloc (nil when malloc fails).
    static func take() -> UnsafeMutableRawPointer? {
        if let address = free.withLock({ $0.popLast() }) { return UnsafeMutableRawPointer(bitPattern: address) }
        return malloc(blockSize)
    }

    /// Returns a block from `take()` to the pool, or to malloc when the pool is full.
    static func giveBack(_ block: UnsafeMutableRawPointer) {
        let kept = free.withLock { blocks in
            guard blocks.count < capacity else { return false }
            blocks.append(UInt(bitPattern: block))
            return true
        }
        if !kept { Glibc.free(block) }
    }
}
