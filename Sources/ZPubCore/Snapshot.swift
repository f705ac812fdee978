/// The reply to `SNAPSHOT <token> [prefix]`: every cached last value under the prefix, for a
/// client that wants the whole current state and then the live stream without gap or
/// duplicate (the ZeroMQ Guide's "Clone" pattern).
///
/// How a client tells where the snapshot ends in its live stream: before asking, it subscribes
/// (on the same SUB socket, after its data prefix) to the marker topic `$zpub/snapshot/<token>`.
/// The broker waits until that subscription has reached it, takes the snapshot, and publishes
/// one marker message on that topic, all between two forwarded messages. So every message the
/// client receives before the marker is already reflected in the snapshot, and every message
/// after it is newer. See docs/last-value.md.
public struct SnapshotReply: Codable, Equatable, Sendable {
    public static let markerPrefix = "$zpub/snapshot/"

    public var token: String
    /// The topic of the marker message that ends the snapshot in the live stream.
    public var marker: String
    /// The cache's last sequence number when the snapshot was taken.
    public var sequence: UInt64
    /// The cached prefixes: live messages before the marker on topics under them are in the
    /// snapshot already.
    public var prefixes: [String]
    /// Each cached message in the `.exact` style, with its cache sequence as `seq`.
    public var entries: [MessageJSON]

    public init(token: String, sequence: UInt64, prefixes: [String], entries: [MessageJSON]) {
        self.token = token
        self.marker = Self.markerPrefix + token
        self.sequence = sequence
        self.prefixes = prefixes
        self.entries = entries
    }

    /// Whether a token is acceptable: 1 to 64 of A-Z a-z 0-9 - _.
    public static func isValidToken(_ token: some StringProtocol) -> Bool {
        !token.isEmpty && token.utf8.count <= 64
            && token.utf8.allSatisfy { byte in
                (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 45
                    || byte == 95
            }
    }
}

/// Standard base64 (RFC 4648, with padding), so JSON replies can carry binary frames.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    /// Each byte's value in `alphabet`, 0xFF if it is not in it: decoding looks each byte up
    /// once instead of searching the alphabet (a published frame or a JWT can be KiBs long).
    private static let valueOf: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            let value = valueOf[Int(byte)]
            guard padding == 0, value != 0xFF else { return nil }
            values.append(value)
        }
        guard (values.count + padding) % 4 == 0, padding <= 2 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index + 1 < values.count {
            out.append(values[index] << 2 | values[index + 1] >> 4)
            if index + 2 < values.count { out.append(values[index + 1] << 4 | values[index + 2] >> 2) }
            if index + 3 < values.count { out.append(values[index + 2] << 6 | values[index + 3]) }
            index += 4
        }
        return out
    }
}
