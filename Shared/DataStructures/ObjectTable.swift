import CMemory

/// What `ObjectTable` keeps: a class with a non-zero 64-bit id.
public protocol Identified: AnyObject {
    var id: Int64 { get }
}

/// Users or items by id, built for folding millions of them. Swift's `Dictionary` keeps keys
/// and values in separate arrays and hands back a retained reference, and a retain of an
/// object not in cache is an atomic write that stalls everything behind it: every cold
/// lookup paid its misses one after another. Here a slot holds the id and an unretained
/// pointer side by side (one cache line per lookup), and a batch of lookups can be done in
/// stages that only prefetch (`prefetchSlot`, `prefetchObject`, then the layout's
/// `prefetchBuffers`), run a few events ahead of the fold, so the misses of many events
/// overlap. `values` owns the objects, densely, in insertion order.
///
/// Open addressing with linear probing on a mix of the id, deletion by backward shift. Id 0
/// marks an empty slot and is never stored.
public struct ObjectTable<Object: Identified> {
    private struct Slot: ProbedSlot {
        var id: Int64
        var object: Unmanaged<Object>?

        var probeKey: UInt64 { UInt64(bitPattern: id) }
        var isEmpty: Bool { id == 0 }
        static var empty: Slot { Slot(id: 0, object: nil) }
    }

    private var slots = [Slot](repeating: .empty, count: 1024) {
        didSet { slotBuffer = RawArray(storage: bufferAddress(slots)) }
    }
    /// `slots`' buffer, for lookups that read it without retaining it (a lookup per event
    /// and stage). Follows every change of `slots`.
    private var slotBuffer: RawArray

    public init() {
        slotBuffer = RawArray(storage: bufferAddress(slots))
    }

    /// The slots, read through `slotBuffer`.
    @inline(__always)
    private var slotPointer: UnsafeBufferPointer<Slot> { slotBuffer.typed(Slot.self) }
    /// The objects, owned here; erasure moves the last one into the hole.
    public private(set) var values: [Object] = []

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    @inline(__always)
    private static func home(_ id: Int64, mask: Int) -> Int {
        LinearProbing.home(UInt64(bitPattern: id), mask: mask)
    }

    /// The slot holding `id`, or the empty slot where it would go (id 0 is never found).
    private func find(_ id: Int64) -> (slot: Int, found: Bool) {
        guard id != 0 else { return (0, false) }
        return LinearProbing.find(UInt64(bitPattern: id), in: slotPointer)
    }

    public subscript(id: Int64) -> Object? {
        let (slot, found) = find(id)
        return found ? slotPointer[slot].object!.takeUnretainedValue() : nil
    }

    public mutating func insert(_ object: Object) {
        precondition(object.id != 0, "id 0 marks an empty slot")
        var (slot, found) = find(object.id)
        precondition(!found, "id \(object.id) is already in the table")
        if (values.count + 1) * 2 > slots.count {
            LinearProbing.double(&slots)
            slot = find(object.id).slot
        }
        values.append(object)
        slots[slot] = Slot(id: object.id, object: .passUnretained(object))
    }

    /// Makes room for `count` objects in all, so that adding them does not grow the table
    /// step by step (a snapshot's restore knows how many users it holds).
    public mutating func reserveCapacity(_ count: Int) {
        values.reserveCapacity(count)
        while count * 2 > slots.count { LinearProbing.double(&slots) }
    }

    /// Removes and returns the object with `id`. Linear in the count (the object's place in
    /// `values` is searched for): only a user's erasure removes.
    @discardableResult
    public mutating func remove(_ id: Int64) -> Object? {
        var (hole, found) = find(id)
        guard found else { return nil }
        let object = slots[hole].object!.takeUnretainedValue()
        let mask = slots.count - 1
        slots.withUnsafeMutableBufferPointer { s in
            // Move later entries of the probe run back into the hole, so no search stops early.
            var i = hole
            while true {
                i = (i + 1) & mask
                if s[i].id == 0 { break }
                let home = Self.home(s[i].id, mask: mask)
                // Entry i may fill the hole when its home is not cyclically in (hole, i].
                let fits = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i)
                if fits {
                    s[hole] = s[i]
                    hole = i
                }
            }
            s[hole] = .empty
        }
        let index = values.firstIndex { $0 === object }!
        values.swapAt(index, values.count - 1)
        values.removeLast()
        return object
    }

    /// Visits every object in id order, asking for each one's memory a few objects ahead
    /// (`layout`'s object lines, then its buffers). The ids come from the slots, so sorting
    /// touches no object: a snapshot of a million users otherwise paid a cold miss, and a
    /// retain, per comparison.
    public func forEachInIDOrder(prefetching layout: PrefetchLayout, _ body: (Object) throws -> Void) rethrows {
        var order: [(id: Int64, object: Unmanaged<Object>)] = []
        order.reserveCapacity(values.count)
        for slot in slots where !slot.isEmpty { order.append((slot.id, slot.object!)) }
        order.sort { $0.id < $1.id }
        let d = PrefetchLayout.distance
        for i in 0..<(order.count + 2 * d) {
            if i < order.count { layout.prefetchLines(of: UnsafeRawPointer(order[i].object.toOpaque())) }
            if case let j = i - d, j >= 0 && j < order.count { layout.prefetchBuffers(of: UnsafeRawPointer(order[j].object.toOpaque())) }
            if case let j = i - 2 * d, j >= 0 { try body(order[j].object.takeUnretainedValue()) }
        }
    }

    // MARK: Lookups in stages

    /// Stage 1 of a lookup that only prefetches: asks for the home slot of `id`.
    @inline(__always)
    public func prefetchSlot(_ id: Int64) {
        LinearProbing.prefetchHome(UInt64(bitPattern: id), in: slotPointer)
    }

    /// Stage 2, once the slot has had time to arrive: the object with `id`, unretained (nil
    /// when absent), with the cache lines of `layout` that belong to the object asked for.
    /// The pointer is good while the object stays in the table.
    @inline(__always)
    public func prefetchObject(_ id: Int64, _ layout: PrefetchLayout) -> UnsafeRawPointer? {
        let (slot, found) = find(id)
        guard found else { return nil }
        let object = UnsafeRawPointer(slotPointer[slot].object!.toOpaque())
        layout.prefetchLines(of: object)
        return object
    }
}

/// Which cache lines of a final class's instances a batch lookup asks for: the object's own
/// (`lines` of them) and the first of each of the array buffers referenced at `buffers` (byte
/// offsets into the object).
///
/// The offsets are found once by scanning a probe instance's words for its arrays' buffers
/// (Swift lays out a final class's stored properties the same in every instance). The probe's
/// arrays must be distinct, non-empty ones. When any buffer is not found, `buffers` is empty:
/// a layout this does not understand turns buffer prefetching off rather than reading the
/// wrong words.
public struct PrefetchLayout: Sendable {
    public let lines: Int
    public let buffers: [Int]

    /// How many objects (or events) apart the stages of a prefetched walk run.
    public static let distance = 8

    /// Asks for the object's own cache lines.
    @inline(__always)
    public func prefetchLines(of object: UnsafeRawPointer) {
        for line in 0..<lines { persona_prefetch(object + 64 * line) }
    }

    /// The array whose buffer is the `index`th of `buffers`, read from the object's memory
    /// (no retain). The object's lines must be in cache.
    @inline(__always)
    public func array(_ index: Int, of object: UnsafeRawPointer) -> RawArray {
        RawArray(storage: object.load(fromByteOffset: buffers[index], as: UnsafeRawPointer.self))
    }

    /// Stage 3, once the object's own lines have arrived: asks for the first line of each of
    /// its array buffers (their header and first elements).
    @inline(__always)
    public func prefetchBuffers(of object: UnsafeRawPointer) {
        for index in buffers.indices { persona_prefetch(array(index, of: object).storage) }
    }

    public init(_ probe: AnyObject, buffers addresses: [UnsafeRawPointer]) {
        let base = UnsafeRawPointer(Unmanaged.passUnretained(probe).toOpaque())
        #if os(Linux)
        let size = malloc_usable_size(UnsafeMutableRawPointer(mutating: base))
        #else
        // Without glibc's allocation size, nothing is prefetched.
        let size = 0
        #endif
        // The object may start mid-line.
        lines = size == 0 ? 0 : min(16, size / 64 + 2)
        var offsets: [Int] = []
        for address in addresses {
            // The first two words are the object's header.
            guard
                let offset = stride(from: 16, to: size - 7, by: 8).first(where: {
                    base.load(fromByteOffset: $0, as: UnsafeRawPointer.self) == address
                })
            else {
                offsets = []
                break
            }
            offsets.append(offset)
        }
        buffers = offsets
    }
}

/// A native Swift array's buffer seen through a raw pointer, for the prefetch stages: reading
/// an array stored in a class retains its buffer, an atomic write per array per event.
/// On 64-bit platforms the buffer is an object: a 16-byte header, the count, the capacity
/// word, then the elements (checked by a test, for each element type read this way).
public struct RawArray {
    public let storage: UnsafeRawPointer

    public init(storage: UnsafeRawPointer) { self.storage = storage }

    @inline(__always)
    public var count: Int { storage.load(fromByteOffset: 16, as: Int.self) }

    @inline(__always)
    public var elements: UnsafeRawPointer { storage + 32 }

    /// The elements, as the `T`s they are.
    @inline(__always)
    public func typed<T>(_: T.Type) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(start: elements.assumingMemoryBound(to: T.self), count: count)
    }

    /// Asks for every cache line of the first `count` elements of `stride` bytes each from
    /// element `first`.
    @inline(__always)
    public func prefetch(from first: Int, count: Int, stride: Int) {
        prefetchLines(of: UnsafeRawBufferPointer(start: elements + first * stride, count: count * stride))
    }
}

/// Asks for every cache line that `bytes` overlaps, from the line holding its first byte.
@inline(__always)
public func prefetchLines(of bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
    var line = UInt(bitPattern: base) & ~63
    let end = UInt(bitPattern: base + bytes.count)
    while line < end {
        persona_prefetch(UnsafeRawPointer(bitPattern: line))
        line += 64
    }
}

/// The address of an array's buffer (what an array value stores).
public func bufferAddress<T>(_ array: [T]) -> UnsafeRawPointer {
    withUnsafeBytes(of: array) { $0.load(as: UnsafeRawPointer.self) }
}
