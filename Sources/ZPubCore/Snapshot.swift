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
