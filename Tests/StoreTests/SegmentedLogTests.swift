import Foundation
import Testing

@testable import Store

func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("persona-store-\(UUID().uuidString)").path
}

func record(_ i: Int) -> [UInt8] { Array("record-\(i)-".utf8) + [UInt8](repeating: UInt8(i % 251), count: i % 40) }

func config(_ dir: String, segmentBytes: Int = 128 << 20) -> SegmentedLog.Config {
    var c = SegmentedLog.Config.defaults(directory: dir)
    c.segmentBytes = segmentBytes
    c.indexInterval = 256
    return c
}

func readAll(_ log: SegmentedLog, from: UInt64 = 0) throws -> [(offset: UInt64, bytes: [UInt8])] {
    var out: [(offset: UInt64, bytes: [UInt8])] = []
    var next = from
    while true {
        let r = try log.read(from: next, maxRecords: 37, maxBytes: 1 << 20)
        if r.records.isEmpty { return out }
        out += r.records
        next = r.nextOffset
    }
}

@Suite("Segmented log")
struct SegmentedLogTests {
    @Test func crc32cKnownAnswer() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        Array("123456789".utf8).withUnsafeBytes { #expect(CRC32C.software($0) == 0xE306_9283) }
    }

    @Test("the CRC-32C instruction and the table agree: every length, offset and continuation")
    func crc32cInstructionAgreesWithTable() {
        #if arch(x86_64)
        #expect(CRC32C.hardware, "an x86-64 machine without SSE4.2 would checksum with the table")
        #endif
        var rng = SystemRandomNumberGenerator()
        let data = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        data.withUnsafeBytes { all in
            for _ in 0..<2_000 {
                let start = Int.random(in: 0..<all.count, using: &rng)
                let end = Int.random(in: start...min(all.count, start + 300), using: &rng)
                let seed = UInt32.random(in: 0...UInt32.max, using: &rng)
                let part = UnsafeRawBufferPointer(rebasing: all[start..<end])
                #expect(CRC32C.checksum(part, continuing: seed) == CRC32C.software(part, continuing: seed))
                // In two pieces, continued: the same as in one.
                let cut = Int.random(in: start...end, using: &rng)
                let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[start..<cut]))
                #expect(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[cut..<end]), continuing: first) == CRC32C.software(part))
            }
        }
    }

    @Test("a read stops at the first record past its byte budget; the next read starts there")
    func byteBudgetNeverSkipsARecord() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (log, _) = try SegmentedLog.open(config(dir))
        // One batch of small and large records mixed, then a second batch.
        let sizes = [10, 100, 10, 10, 300, 5, 5, 5]
        let records = sizes.enumerated().map { i, n in [UInt8](repeating: UInt8(i), count: n) }
        _ = try await log.append(records)
        _ = try await log.append([[9, 9]])
        var seen: [UInt64] = []
        var next: UInt64 = 0
        var reads = 0
        while reads < 20 {
            let r = try log.read(from: next, maxRecords: 4, maxBytes: 50)
            if r.records.isEmpty { break }
            // At most the budget, unless a single record is larger on its own.
            #expect(r.records.count == 1 || r.records.reduce(0) { $0 + $1.bytes.count } <= 50)
            #expect(r.records.count <= 4)
            for (o, bytes) in r.records {
                #expect(bytes == (o < 8 ? records[Int(o)] : [9, 9]))
                seen.append(o)
            }
            #expect(r.nextOffset == r.records.last!.offset + 1)
            next = r.nextOffset
            reads += 1
        }
        #expect(seen == Array(0...8))
        // The visitor gives the same records without an array each.
        var visited: [UInt64] = []
        let after = try log.forEachRecord(from: 2, maxRecords: 100, maxBytes: 1 << 20) { o, bytes in
            #expect(Array(bytes) == (o < 8 ? records[Int(o)] : [9, 9]))
            visited.append(o)
        }
        #expect(visited == Array(2...8) && after == 9)
        await log.close()
    }

    @Test func appendReadAndReopenAcrossSegments() async throws {
        let dir = temporaryDirectory()
        var (log, report) = try SegmentedLog.open(config(dir, segmentBytes: 2048))
        #expect(report.batches == 0)
        var first: [UInt64] = []
        for b in 0..<50 {
            first.append(try await log.append((0..<10).map { record(b * 10 + $0) }))
        }
        #expect(first == (0..<50).map { UInt64($0 * 10) })
        #expect(log.endOffset == 500)
        #expect(log.stats.segments > 3)
        let all = try readAll(log)
        #expect(all.map(\.offset) == (0..<500).map(UInt64.init))
        #expect(all.allSatisfy { $0.bytes == record(Int($0.offset)) })
        // Reading from the middle lands on the right record (sparse index + scan).
        #expect(try log.read(from: 333, maxRecords: 1, maxBytes: 1 << 20).records.first?.bytes == record(333))
        await log.close()

        (log, report) = try SegmentedLog.open(config(dir, segmentBytes: 2048))
        #expect(report.records == 500 && report.truncatedBytes == 0 && report.corruptBatches.isEmpty)
        #expect(log.endOffset == 500)
        #expect(try await log.append([record(500)]) == 500)
        #expect(try readAll(log, from: 490).map(\.offset) == (490...500).map(UInt64.init))
        await log.close()
    }

    @Test("concurrent appends share fsyncs and get distinct, contiguous offsets")
    func concurrentAppends() async throws {
        let (log, _) = try SegmentedLog.open(config(temporaryDirectory()))
        let offsets = try await withThrowingTaskGroup(of: (Int, UInt64).self) { group in
            for p in 0..<64 {
                group.addTask { (p, try await log.append((0..<5).map { record(p * 5 + $0) })) }
            }
            return try await group.reduce(into: [(Int, UInt64)]()) { $0.append($1) }
        }
        #expect(Set(offsets.map(\.1)).count == 64)
        #expect(offsets.map(\.1).sorted() == (0..<64).map { UInt64($0 * 5) })
        let all = try readAll(log)
        for (p, base) in offsets {
            for i in 0..<5 { #expect(all[Int(base) + i].bytes == record(p * 5 + i)) }
        }
        await log.close()
    }

    @Test("a log cut mid-batch is truncated to the last whole batch on open")
    func tornTail() async throws {
        let dir = temporaryDirectory()
        let (log, _) = try SegmentedLog.open(config(dir))
        for b in 0..<5 { _ = try await log.append((0..<4).map { record(b * 4 + $0) }) }
        await log.close()
        let file = dir + "/00000000000000000000.log"
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        try handle.truncate(atOffset: UInt64(size - 7))
        try handle.close()

        let (reopened, report) = try SegmentedLog.open(config(dir))
        #expect(report.truncatedBytes > 0)
        #expect(report.batches == 4)
        #expect(reopened.endOffset == 16)
        #expect(try readAll(reopened).map(\.offset) == (0..<16).map(UInt64.init))
        #expect(try await reopened.append([record(99)]) == 16)
        await reopened.close()
    }

    @Test("a flipped bit is found on open, reported, and the batch is never served")
    func bitFlip() async throws {
        let dir = temporaryDirectory()
        var c = config(dir)
        c.compress = false
        let (log, _) = try SegmentedLog.open(c)
        for b in 0..<5 { _ = try await log.append((0..<4).map { record(b * 4 + $0) }) }
        await log.close()
        let file = dir + "/00000000000000000000.log"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        // Flip one bit inside the third batch's records.
        let third = bytes.indices.filter { bytes[$0] == 0x50 && bytes[$0 + 1] == 0x53 && bytes[$0 + 2] == 0x42 && bytes[$0 + 3] == 0x31 }[2]
        bytes[third + 40] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: file))

        let (reopened, report) = try SegmentedLog.open(c)
        #expect(report.corruptBatches.count == 1)
        #expect(report.description.contains("CORRUPT"))
        let served = try readAll(reopened)
        #expect(served.map(\.offset) == [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19])
        #expect(served.allSatisfy { $0.bytes == record(Int($0.offset)) })
        #expect(reopened.endOffset == 20)
        await reopened.close()
    }

    @Test func corruptionAfterOpenIsAnErrorNotData() async throws {
        let dir = temporaryDirectory()
        var c = config(dir)
        c.compress = false
        let (log, _) = try SegmentedLog.open(c)
        _ = try await log.append([record(1), record(2)])
        let file = dir + "/00000000000000000000.log"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
        try handle.seek(toOffset: 40)
        try handle.write(contentsOf: Data([0xFF]))
        try handle.close()
        #expect { try log.read(from: 0, maxRecords: 10, maxBytes: 1 << 20) } throws: { ($0 as? StoreError)?.code == .corrupt }
        await log.close()
    }

    @Test func retentionDeletesOldestSegments() async throws {
        var c = config(temporaryDirectory(), segmentBytes: 1024)
        c.retentionBytes = 4096
        let (log, _) = try SegmentedLog.open(c)
        for b in 0..<100 { _ = try await log.append((0..<5).map { record(b * 5 + $0) }) }
        let before = log.stats
        let deleted = try log.enforceRetention()
        #expect(deleted > 0)
        #expect(log.stats.bytes <= 4096 + 1024 + 1024)
        #expect(log.stats.segments == before.segments - deleted)
        #expect(log.startOffset > 0)
        let rest = try readAll(log)
        #expect(rest.first?.offset == log.startOffset)
        #expect(rest.last?.offset == 499)
        await log.close()
    }

    @Test("scrub empties the selected records of sealed segments, keeps every offset, and survives a reopen")
    func scrubErasesRecords() async throws {
        for compress in [false, true] {
            var c = config(temporaryDirectory(), segmentBytes: 2048)
            c.compress = compress
            let (log, _) = try SegmentedLog.open(c)
            func user(_ i: Int) -> Int { i % 7 == 3 ? 2 : 1 }
            func body(_ i: Int) -> [UInt8] { Array("user-\(user(i))-event-\(i)-".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 40) }
            for b in 0..<60 { _ = try await log.append((0..<5).map { body(b * 5 + $0) }) }
            #expect(log.stats.segments > 2)
            // Nothing below the active segment is rewritten until it is rolled.
            try await log.roll()
            let segments = log.stats.segments
            let marker = Array("user-2-".utf8)
            let report = try log.scrub(below: log.endOffset) { _, bytes in Array(bytes).starts(with: marker) }
            #expect(report.records == (0..<300).filter { user($0) == 2 }.count)
            #expect(report.segments == segments - 1)
            let expected = (0..<300).filter { user($0) == 1 }
            for reopened in [false, true] {
                var current = log
                if reopened {
                    await log.close()
                    let (again, recovery) = try SegmentedLog.open(c)
                    #expect(recovery.corruptBatches.isEmpty && recovery.truncatedBytes == 0)
                    current = again
                }
                let all = try readAll(current)
                #expect(all.map(\.offset) == expected.map { UInt64($0) })
                #expect(all.map(\.bytes) == expected.map(body))
                #expect(current.endOffset == 300)
                // Reads that start at an emptied offset pass over it.
                #expect(try current.read(from: 3, maxRecords: 1, maxBytes: 1 << 20).records.first?.offset == 4)
                if reopened {
                    _ = try await current.append([body(1)])
                    #expect(try readAll(current, from: 300).map(\.offset) == [300])
                    await current.close()
                }
            }
            if !compress {
                for name in try FileManager.default.contentsOfDirectory(atPath: c.directory) {
                    let data = try Data(contentsOf: URL(fileURLWithPath: c.directory + "/" + name))
                    #expect(data.range(of: Data(marker)) == nil, "\(name) still holds an erased record")
                }
            }
        }
    }

    @Test func longPollWakesOnAppend() async throws {
        let (log, _) = try SegmentedLog.open(config(temporaryDirectory()))
        let start = ContinuousClock.now
        async let waited: Void = log.waitForRecords(from: 0, timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(50))
        _ = try await log.append([record(0)])
        await waited
        // Woken by the append, not by the (long) timeout.
        #expect(start.duration(to: .now) < .seconds(50))
        let idle = ContinuousClock.now
        await log.waitForRecords(from: 1, timeout: .milliseconds(100))
        #expect(idle.duration(to: .now) >= .milliseconds(90))
        await log.close()
    }

    @Test("a long poll returns by its timeout, however short: the timer may fire before the waiter is registered")
    func longPollTimesOutEvenWhenTheTimerWinsTheRace() async throws {
        let (log, _) = try SegmentedLog.open(config(temporaryDirectory()))
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for _ in 0..<2_000 { await log.waitForRecords(from: 0, timeout: .nanoseconds(1)) }
                return true
            }
            group.addTask {
                // A stuck waiter is only freed by closing the log.
                try await Task.sleep(for: .seconds(20))
                await log.close()
                return false
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        #expect(finished, "a waiter registered after its timer fired never returned")
        await log.close()
    }

    @Test func atomicFileReplacesWholeFiles() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/snapshot"
        #expect(try AtomicFile.read(path) == nil)
        try AtomicFile.write([1, 2, 3], to: path)
        try AtomicFile.write([4, 5], to: path)
        #expect(try AtomicFile.read(path) == [4, 5])
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }
}
