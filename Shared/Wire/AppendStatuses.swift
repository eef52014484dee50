/// The per-event answers of one Append, kept as plain arrays and encoded straight into an
/// `AppendResponse` (see `Framing`): a batch of thousands of events is answered without an
/// `EventStatus` value, and its strings, per event. Every event starts out accepted; the
/// caller marks each one once.
public struct AppendStatuses: Sendable {
    private var codes: [AppendCode]
    private var partitions: [UInt32]
    private var offsets: [UInt64]
    /// Only rejected events have a reason and a detail.
    private var rejections: [Int: (reason: RejectReason, detail: String)] = [:]
    public private(set) var accepted: UInt32 = 0
    public private(set) var duplicates: UInt32 = 0
    public private(set) var rejected: UInt32 = 0

    public init(count: Int) {
        codes = Array(repeating: .accepted, count: count)
        partitions = Array(repeating: 0, count: count)
        offsets = Array(repeating: 0, count: count)
    }

    public mutating func reject(_ i: Int, _ reason: RejectReason, detail: String) {
        codes[i] = .rejected
        rejections[i] = (reason, detail)
        rejected += 1
    }

    public mutating func duplicate(_ i: Int) {
        codes[i] = .duplicate
        duplicates += 1
    }

    /// Event `indexes[n]` accepted at offset `first + n` of `partition`.
    public mutating func accept(_ indexes: [Int], partition: UInt32, firstOffset first: UInt64) {
        for (n, i) in indexes.enumerated() {
            codes[i] = .accepted
            partitions[i] = partition
            offsets[i] = first + UInt64(n)
        }
        accepted += UInt32(indexes.count)
    }

    /// Accepts the events at `indexes`, stored at `stored` (one offset each, in order).
    public mutating func accept(_ indexes: [Int], partition: UInt32, offsets stored: [UInt64]) {
        precondition(indexes.count == stored.count, "one offset per accepted event")
        for (n, i) in indexes.enumerated() {
            codes[i] = .accepted
            partitions[i] = partition
            offsets[i] = stored[n]
        }
        accepted += UInt32(indexes.count)
    }

    /// The statuses as an `AppendResponse` value (what `encoded()` encodes).
    public var response: AppendResponse {
        var r = AppendResponse()
        r.statuses = codes.indices.map { status($0) }
        r.accepted = accepted
        r.duplicates = duplicates
        r.rejected = rejected
        return r
    }

    private func status(_ i: Int) -> EventStatus {
        var s = EventStatus()
        s.code = codes[i]
        s.partition = partitions[i]
        s.offset = offsets[i]
        if let r = rejections[i] {
            s.reason = r.reason
            s.detail = r.detail
        }
        return s
    }

    /// The `AppendResponse` encoding, written field by field as libprotobuf-c writes it
    /// (fields in number order, zeros left out), straight into one buffer.
    public func encoded() -> Encoded<AppendResponse> {
        // EventStatus: code = 1, reason = 2, detail = 3, partition = 4, offset = 5.
        func statusLength(_ i: Int) -> Int {
            var n = VarintWriter.fieldSize(1, UInt64(bitPattern: Int64(codes[i].rawValue)))
            n += VarintWriter.fieldSize(4, UInt64(partitions[i])) + VarintWriter.fieldSize(5, offsets[i])
            if codes[i] == .rejected, let r = rejections[i] {
                n += VarintWriter.fieldSize(2, UInt64(bitPattern: Int64(r.reason.rawValue)))
                let detail = r.detail.utf8.count
                if detail > 0 { n += 1 + VarintWriter.size(UInt64(detail)) + detail }
            }
            return n
        }
        // At most 32 bytes a status (tag, length, code, partition, offset), plus a rejection's
        // reason and detail, plus the three counts.
        let capacity = codes.count * 32 + rejections.values.reduce(3 * 11) { $0 + 24 + $1.detail.utf8.count }
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            var out = VarintWriter(buffer.baseAddress!)
            for i in codes.indices {
                // AppendResponse: statuses = 1, accepted = 2, duplicates = 3, rejected = 4.
                out.lengthDelimitedHeader(1, length: statusLength(i))
                out.field(1, UInt64(bitPattern: Int64(codes[i].rawValue)))
                if codes[i] == .rejected, let r = rejections[i] {
                    out.field(2, UInt64(bitPattern: Int64(r.reason.rawValue)))
                    var detail = r.detail
                    detail.withUTF8 { out.bytes(3, UnsafeRawBufferPointer($0)) }
                }
                out.field(4, UInt64(partitions[i]))
                out.field(5, offsets[i])
            }
            out.field(2, UInt64(accepted))
            out.field(3, UInt64(duplicates))
            out.field(4, UInt64(rejected))
            count = out.position - buffer.baseAddress!
            precondition(count <= capacity)
        }
        return Encoded(bytes: bytes)
    }
}
