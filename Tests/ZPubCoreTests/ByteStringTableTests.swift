import XCTest

@testable import ZPubCore

final class ByteStringTableTests: XCTestCase {
    func testInsertLookupAndRemove() {
        var table = ByteStringTable<Int>()
        table.insert(Array("a".utf8), value: 1)
        table.insert(Array("ab".utf8), value: 2)
        table.insert([], value: 3)
        XCTAssertEqual(table[Array("a".utf8)], 1)
        XCTAssertEqual(table[Array("ab".utf8)], 2)
        XCTAssertEqual(table[[]], 3)
        XCTAssertNil(table[Array("abc".utf8)])
        table.remove(at: table.index(of: Array("a".utf8))!)
        XCTAssertNil(table[Array("a".utf8)])
        XCTAssertEqual(table[Array("ab".utf8)], 2)
        XCTAssertEqual(table.count, 2)
    }

    /// Random inserts and removals, checked against a Dictionary after every step; exercises
    /// growth and backward-shift deletion in long probe runs.
    func testAgreesWithDictionaryUnderChurn() {
        var table = ByteStringTable<Int>()
        var reference: [[UInt8]: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let key = Array("k\(Int.random(in: 0..<700, using: &generator))".utf8)
            if let index = table.index(of: key) {
                if Bool.random(using: &generator) {
                    table.remove(at: index)
                    reference[key] = nil
                } else {
                    table[valueAt: index] = step
                    reference[key] = step
                }
            } else {
                table.insert(key, value: step)
                reference[key] = step
            }
            XCTAssertEqual(table.count, reference.count)
        }
        for (key, value) in reference { XCTAssertEqual(table[key], value) }
        for index in table.indices { XCTAssertEqual(reference[table.key(at: index)], table[valueAt: index]) }
    }

    /// Keys are compared in word loads from both ends (1-3, 4-7, 8-16 bytes) and with memcmp
    /// beyond: a key of every length up to 40 is equal to its copy, and unequal to each copy
    /// with one byte changed, wherever the byte is.
    func testKeyComparisonSeesEveryByteOfEveryLength() {
        var table = ByteStringTable<Int>()
        let keys = (0...40).map { length in (0..<length).map { UInt8(truncatingIfNeeded: 97 + $0 * 7 + length) } }
        let indexes = keys.map { table.insert($0, value: $0.count) }
        for (key, index) in zip(keys, indexes) {
            key.withUnsafeBytes { XCTAssertTrue(table.key(at: index, equals: $0), "length \(key.count)") }
            XCTAssertEqual(table[key], key.count)
            for position in key.indices {
                var changed = key
                changed[position] ^= 0x20
                changed.withUnsafeBytes {
                    XCTAssertFalse(table.key(at: index, equals: $0), "length \(key.count), byte \(position)")
                }
                XCTAssertNil(table[changed], "length \(key.count), byte \(position)")
            }
            // One byte longer or shorter is another key.
            (key + [0]).withUnsafeBytes { XCTAssertFalse(table.key(at: index, equals: $0)) }
        }
    }

    func testRemoveAllEmptiesTheTable() {
        var table = ByteStringTable<Int>()
        for i in 0..<100 { table.insert(Array("t\(i)".utf8), value: i) }
        table.removeAll()
        XCTAssertTrue(table.isEmpty)
        XCTAssertNil(table[Array("t5".utf8)])
        table.insert(Array("t5".utf8), value: 5)
        XCTAssertEqual(table[Array("t5".utf8)], 5)
    }

    /// Keys share one byte array; removals leave holes that compaction closes. Every key must
    /// still be found, and read back, after it.
    func testKeysSurviveCompactionAndPrefixListing() {
        var table = ByteStringTable<Int>()
        func key(_ i: Int) -> [UInt8] {
            Array("\(i % 2 == 0 ? "even" : "odd").\(i).".utf8) + Array(repeating: 120, count: 90)
        }
        for i in 0..<1_000 { table.insert(key(i), value: i) }
        for i in stride(from: 0, to: 1_000, by: 3) { table.remove(at: table.index(of: key(i))!) }
        for i in 0..<1_000 { XCTAssertEqual(table[key(i)], i % 3 == 0 ? nil : i) }
        for index in table.indices { XCTAssertEqual(table.key(at: index), key(table[valueAt: index])) }
        let odd = table.entries(withKeyPrefix: Array("odd.".utf8))
        XCTAssertEqual(Set(odd.map(\.value)), Set((0..<1_000).filter { $0 % 2 == 1 && $0 % 3 != 0 }))
        XCTAssertTrue(odd.allSatisfy { $0.key == key($0.value) })
        XCTAssertEqual(table.entries(withKeyPrefix: []).count, table.count)
    }

    /// A key's prefix test against the naive one, at every length around the key's (the short
    /// runs and memcmp's), with an empty key among them; and the values under a prefix.
    func testPrefixesOfKeysAndTheValuesUnderThem() {
        var table = ByteStringTable<Int>()
        func key(length: Int) -> [UInt8] { (0..<length).map { UInt8(97 + ($0 * 7 + length) % 26) } }
        let keys: [[UInt8]] = (0...40).map(key(length:))
        for (value, key) in keys.enumerated() { table.insert(key, value: value) }
        for index in table.indices {
            let key = table.key(at: index)
            for other in keys {
                for length in 0...min(other.count, key.count + 2) {
                    let prefix = Array(other.prefix(length))
                    XCTAssertEqual(
                        table.key(at: index, startsWith: prefix), key.starts(with: prefix), "\(key) \(prefix)")
                }
            }
        }
        let under = Array(keys[20].prefix(5))
        let expected = keys.indices.filter { keys[$0].starts(with: under) }
        XCTAssertEqual(table.values(withKeyPrefix: under).sorted(), expected)
        XCTAssertEqual(table.values(withKeyPrefix: under) { $0 % 2 == 0 }.sorted(), expected.filter { $0 % 2 == 0 })
        XCTAssertEqual(table.values(withKeyPrefix: []).sorted(), Array(keys.indices))
    }

    func testAFullKeyStoreRefusesInsteadOfTrapping() {
        var table = ByteStringTable<Int>(maxKeyBytes: 100)
        let keys = (0..<10).map { Array("key-\($0)-".utf8) + Array(repeating: 120, count: 5) }  // 11 bytes each
        var inserted = 0
        for key in keys where table.hasRoom(forKeyOf: key.count) {
            table.insert(key, value: inserted)
            inserted += 1
        }
        XCTAssertEqual(inserted, 9, "9 keys of 11 bytes fit in 100, the tenth does not")
        XCTAssertFalse(table.hasRoom(forKeyOf: keys[9].count))
        // Removed keys' bytes count as room: the insert compacts them away first.
        table.remove(at: table.index(of: keys[0])!)
        XCTAssertTrue(table.hasRoom(forKeyOf: keys[9].count))
        table.insert(keys[9], value: 9)
        for key in keys.dropFirst() { XCTAssertNotNil(table[key], String(decoding: key, as: UTF8.self)) }
    }

    func testASubscriptionTableWithoutRoomForAKeyRefusesAsFull() {
        var subscriptions = SubscriptionTable(maxPrefixes: 1_000, maxPrefixLength: 100)
        subscriptions.table = ByteStringTable(maxKeyBytes: 20)
        XCTAssertEqual(subscriptions.subscribe(Array(repeating: 97, count: 15)), .accepted(isNewPrefix: true))
        XCTAssertEqual(subscriptions.subscribe(Array(repeating: 98, count: 15)), .refusedTableFull)
        XCTAssertEqual(subscriptions.subscribe(Array(repeating: 97, count: 15)), .accepted(isNewPrefix: false))
        XCTAssertEqual(subscriptions.refusedTableFull, 1)
    }
}
