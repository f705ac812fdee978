#if canImport(Glibc)
    import Glibc
#endif

/// Who may connect to one of the broker's sockets.
public struct SocketSecurity: Codable, Equatable, Sendable {
    /// CURVE encryption and authentication; the server key is `server_secret_key_file`.
    public var curve = false
    /// A file of client public keys (Z85, one per line) or a directory of such files; with
    /// CURVE, only these clients get in. Nil: any client that knows the server key.
    public var allowedKeys: String?
    /// Client addresses allowed (CIDR, e.g. 10.0.0.0/8); empty: any. ipc and inproc peers have
    /// no address and are governed by file permissions instead.
    public var allowedAddresses: [String] = []

    public init() {}

    enum CodingKeys: String, CodingKey {
        case curve
        case allowedKeys = "allowed_keys"
        case allowedAddresses = "allowed_addresses"
    }
}

/// An address block in CIDR notation, IPv4 or IPv6: `10.0.0.0/8`, `::1/128`, or one address.
public struct CIDR: Equatable, Sendable, CustomStringConvertible {
    public let address: [UInt8]
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = CIDR.parseAddress(String(parts[0])) else { return nil }
        let maximum = address.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...maximum).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
        self.address = address
    }

    public var description: String {
        "\(CIDR.format(address))/\(prefixLength)"
    }

    /// Whether `text` (an address as ZAP reports it) lies in this block. IPv4-mapped IPv6
    /// addresses (::ffff:a.b.c.d) count as their IPv4 address.
    public func contains(_ text: String) -> Bool {
        guard var candidate = CIDR.parseAddress(text) else { return false }
        if candidate.count == 16 && address.count == 4
            && candidate[0..<12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
        {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == address.count else { return false }
        var remaining = prefixLength
        for index in address.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if candidate[index] & mask != address[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// Whether every address of `other` lies in this block (the same family: a mapped IPv4
    /// block is not looked into).
    public func covers(_ other: CIDR) -> Bool {
        guard other.address.count == address.count, prefixLength <= other.prefixLength else { return false }
        var remaining = prefixLength
        for index in address.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if other.address[index] & mask != address[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// 4 bytes for IPv4, 16 for IPv6 (brackets and a %zone are accepted and ignored).
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(text), &v4) == 1 {
            return withUnsafeBytes(of: v4.s_addr) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(text), &v6) == 1 {
            return withUnsafeBytes(of: v6) { Array($0) }
        }
        return nil
    }

    static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

extension Endpoint {
    /// The address clients of a TCP endpoint bound to a loopback address connect from (Linux
    /// picks 127.0.0.1 for all of 127.0.0.0/8), or nil for any other endpoint.
    public static func loopbackClientAddress(_ endpoint: String) -> String? {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return nil }
        var host = String(endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon])
        if let semicolon = host.lastIndex(of: ";") { host = String(host[host.index(after: semicolon)...]) }
        guard let bytes = CIDR.parseAddress(host) else { return nil }
        if bytes.count == 4 { return bytes[0] == 127 ? "127.0.0.1" : nil }
        return bytes == [UInt8](repeating: 0, count: 15) + [1] ? "::1" : nil
    }

    /// Whether a tcp endpoint binds to loopback only (127.0.0.0/8, ::1, localhost, lo). Other
    /// transports are local by nature and count as loopback; pgm/epgm are network.
    public static func isLoopbackOnly(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        let address = endpoint.dropFirst("tcp://".count)
        guard let colon = address.lastIndex(of: ":") else { return false }
        var host = String(address[..<colon])
        // "tcp://interface;host:port" binds a source interface: judge the host after it.
        if let semicolon = host.lastIndex(of: ";") { host = String(host[host.index(after: semicolon)...]) }
        if host == "localhost" || host == "lo" { return true }
        guard let bytes = CIDR.parseAddress(host) else { return false }
        if bytes.count == 4 { return bytes[0] == 127 }
        return bytes == [UInt8](repeating: 0, count: 15) + [1]
    }
}

/// Client public keys allowed on a socket, read from a file or a directory of files: one Z85
/// key (40 characters) per line; a line starting with `#` is a comment (only at the start: `#`
/// is a Z85 digit); blank lines are ignored. Pure parsing; the broker reads the files.
public enum KeyList {
    /// The keys in `text`, or the first problem with its line; `kind`: what the file holds,
    /// for the message.
    public static func parse(_ text: String, kind: Kind = .public) -> Result<[String], ConfigurationProblem> {
        var keys: [String] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let key = rawLine.filter { !$0.isWhitespace }
            if key.isEmpty || key.hasPrefix("#") { continue }
            guard key.utf8.count == 40, key.utf8.allSatisfy(isZ85) else {
                return .failure(
                    ConfigurationProblem(
                        line: index + 1,
                        message: "not a CURVE \(kind.rawValue) key (40 characters of Z85, as `zpub keygen` writes)"))
            }
            keys.append(key)
        }
        return .success(keys)
    }

    /// The two files of a key pair from `zpub keygen`, which names the kind on the first line
    /// ("# CURVE public key, written by zpub keygen"): both look alike (40 characters of Z85),
    /// so one given for the other would otherwise be taken without a word.
    public enum Kind: String, Sendable {
        case `public`, secret
    }

    /// The kind a key file's header names; nil for a file without zpub keygen's header, which
    /// is taken as it is.
    public static func declaredKind(_ text: String) -> Kind? {
        let header = text.prefix { $0 != "\n" && $0 != "\r\n" }
        guard header.hasSuffix(", written by zpub keygen") else { return nil }
        for kind in [Kind.public, .secret] where header.hasPrefix("# CURVE \(kind.rawValue) key") { return kind }
        return nil
    }

    /// Nil when the key file at `path` (`text`) may be the `wanted` kind; otherwise what it holds
    /// and which file to use instead (the other of its pair when the name says which).
    public static func wrongKind(_ text: String, path: String, wanted: Kind) -> String? {
        guard let kind = declaredKind(text), kind != wanted else { return nil }
        let suffix = ".\(kind.rawValue)"
        let instead =
            path.hasSuffix(suffix)
            ? "\(path.dropLast(suffix.count)).\(wanted.rawValue)"
            : "the \(wanted.rawValue) key file of that pair (NAME.\(wanted.rawValue))"
        return
            "\(path) holds a CURVE \(kind.rawValue) key (its first line says so), not a \(wanted.rawValue) one: use \(instead)"
    }

    private static func isZ85(_ byte: UInt8) -> Bool {
        let alphabet = Array(
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        return alphabet.contains(byte)
    }
}
