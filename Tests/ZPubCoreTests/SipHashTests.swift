import XCTest

@testable import ZPubCore

final class SipHashTests: XCTestCase {
    /// Key 00 01 ... 0f, message 00 01 ... (length - 1), for lengths that cover every tail
    /// length (0 to 7 bytes after the whole blocks) and several blocks: (length, SipHash-1-3,
    /// SipHash-2-4). The 2-4 column is the reference implementation's published
    /// `vectors_sip64`; both columns were computed with OpenSSL 3's SIPHASH MAC (`openssl mac
    /// -macopt hexkey:000102030405060708090a0b0c0d0e0f -macopt size:8 [-macopt c-rounds:1
    /// -macopt d-rounds:3] SIPHASH`, its output read least significant byte first), an
    /// implementation independent of this one.
    static let vectors: [(length: Int, sip13: UInt64, sip24: UInt64)] = [
        (0, 0xabac_0158_050f_c4dc, 0x726f_db47_dd0e_0e31),
        (1, 0xc9f4_9bf3_7d57_ca93, 0x74f8_39c5_93dc_67fd),
        (2, 0x82cb_9b02_4dc7_d44d, 0x0d6c_8009_d9a9_4f5a),
        (3, 0x8bf8_0ab8_e7dd_f7fb, 0x8567_6696_d7fb_7e2d),
        (4, 0xcf75_5760_88d3_8328, 0xcf27_94e0_2771_87b7),
        (5, 0xdef9_d52f_4953_3b67, 0x1876_5564_cd99_a68d),
        (6, 0xc50d_2b50_c59f_22a7, 0xcbc9_466e_58fe_e3ce),
        (7, 0xd392_7d98_9bb1_1140, 0xab02_00f5_8b01_d137),
        (8, 0x3690_9511_8d29_9a8e, 0x93f5_f579_9a93_2462),
        (9, 0x25a4_8eb3_6c06_3de4, 0x9e00_82df_0ba9_e4b0),
        (15, 0xd320_d86d_2a51_9956, 0xa129_ca61_49be_45e5),
        (16, 0xcc4f_dd1a_7d90_8b66, 0x3f2a_cc7f_57c2_9bdb),
        (17, 0x9cf2_6890_63db_d80c, 0x699a_e9f5_2cbe_4794),
        (23, 0x525a_0e7f_dae6_c123, 0xa80c_038c_cd5c_cec8),
        (24, 0xf464_aeb2_6734_9c8c, 0xb8ad_50c6_f649_af94),
        (31, 0x2370_dd1f_8c21_d1bc, 0x32d8_92fa_d841_c342),
        (32, 0x8115_7b6c_16a7_b60d, 0x7127_512f_72f2_7cce),
        (33, 0x4d54_b9e5_7a8f_f9bf, 0xa7f3_2346_f959_78e3),
        (63, 0x9d19_9062_b7bb_b3a8, 0x958a_324c_eb06_4572),
    ]

    func testMatchesPublishedAndIndependentVectors() {
        let key = SipHash.Key(k0: 0x0706_0504_0302_0100, k1: 0x0f0e_0d0c_0b0a_0908)
        for vector in Self.vectors {
            let message = (0..<vector.length).map { UInt8($0) }
            message.withUnsafeBytes { bytes in
                XCTAssertEqual(SipHash.hash13(bytes, key: key), vector.sip13, "SipHash-1-3 of \(vector.length) bytes")
                XCTAssertEqual(
                    SipHash.hash(bytes, key: key, compressionRounds: 2, finalizationRounds: 4), vector.sip24,
                    "SipHash-2-4 of \(vector.length) bytes")
            }
        }
    }

    /// The hash reads the bytes where they lie: an unaligned start, and bytes around the
    /// message, change nothing.
    func testReadsOnlyTheMessageWhereverItLies() {
        let key = SipHash.Key(k0: 1, k1: 2)
        // 22 bytes: two whole blocks and a tail of 6, read in two overlapping 4-byte loads.
        let message: [UInt8] = Array("orders.eu.1234567.abcd".utf8)
        let expected = message.withUnsafeBytes { SipHash.hash13($0, key: key) }
        for offset in 0..<8 {
            let padded = [UInt8](repeating: 0xAA, count: offset) + message + [0x55, 0x55, 0x55, 0x55]
            padded.withUnsafeBytes {
                let inside = UnsafeRawBufferPointer(rebasing: $0[offset..<offset + message.count])
                XCTAssertEqual(SipHash.hash13(inside, key: key), expected, "at offset \(offset)")
            }
        }
        XCTAssertNotEqual(
            message.withUnsafeBytes { SipHash.hash13($0, key: SipHash.Key(k0: 1, k1: 3)) }, expected,
            "another key, another hash")
    }
}
