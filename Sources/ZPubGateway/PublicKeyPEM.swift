import ZPubCore

/// The public key in a PEM file, as `openssl pkey -pubout` writes it: just enough DER (X.690)
/// to take an Ed25519 key or an RSA modulus and exponent out of a SubjectPublicKeyInfo
/// (RFC 5280; "BEGIN PUBLIC KEY"), or out of a PKCS #1 RSAPublicKey ("BEGIN RSA PUBLIC KEY").
///
/// Parsed here because libgcrypt, which checks the signatures, reads no key files; the
/// structures are fixed and small, and anything else in the file is refused, not guessed at.
enum PublicKeyPEM {
    enum Key: Equatable {
        case ed25519([UInt8])
        case rsa(modulus: [UInt8], exponent: [UInt8])
    }

    /// Why a file holds no key zpubd can use; `description` completes "the file ...".
    struct Problem: Error, Equatable, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The first public key in `text`.
    static func parse(_ text: String) throws(Problem) -> Key {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") && $0.hasSuffix("-----") }) else {
            throw Problem("has no PEM block (-----BEGIN PUBLIC KEY-----)")
        }
        let label = lines[begin].dropFirst("-----BEGIN ".count).dropLast("-----".count)
        guard let end = lines[begin...].firstIndex(of: "-----END \(label)-----") else {
            throw Problem("has no -----END \(label)----- line")
        }
        guard label == "PUBLIC KEY" || label == "RSA PUBLIC KEY" else {
            if label.contains("PRIVATE KEY") {
                throw Problem("holds a private key; give zpubd the public key only")
            }
            throw Problem("holds a \(label), not a PUBLIC KEY")
        }
        guard let der = Base64.decode(lines[(begin + 1)..<end].joined()) else {
            throw Problem("has a PEM block that is not base64")
        }
        var reader = DERReader(der)
        return label == "PUBLIC KEY" ? try subjectPublicKeyInfo(&reader) : try rsaPublicKey(der)
    }

    /// id-Ed25519 (RFC 8410) and rsaEncryption (RFC 8017), as DER object identifier contents.
    private static let ed25519Algorithm: [UInt8] = [0x2B, 0x65, 0x70]
    private static let rsaAlgorithm: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]

    /// SEQUENCE { SEQUENCE { OID, parameters }, BIT STRING }
    private static func subjectPublicKeyInfo(_ reader: inout DERReader) throws(Problem) -> Key {
        var info = try reader.element(.sequence)
        try reader.expectEnd()
        var algorithm = try info.element(.sequence)
        let identifier = try algorithm.element(.objectIdentifier).bytes
        guard identifier == ed25519Algorithm || identifier == rsaAlgorithm else {
            throw Problem("holds a public key of a kind zpubd does not check (neither Ed25519 nor RSA)")
        }
        // Parameters: none for Ed25519 (RFC 8410 3), NULL for RSA (RFC 8017 A.1).
        if identifier == rsaAlgorithm, try !algorithm.element(.null).bytes.isEmpty {
            throw Problem("has a malformed public key (DER)")
        }
        try algorithm.expectEnd()
        let bits = try info.element(.bitString).bytes
        try info.expectEnd()
        // A BIT STRING's first byte counts the unused bits of its last byte: none, for a key.
        guard bits.first == 0 else { throw Problem("has a malformed public key (DER bit string)") }
        let key = Array(bits.dropFirst())
        switch identifier {
        case ed25519Algorithm:
            guard key.count == 32 else { throw Problem("has an Ed25519 key of \(key.count) bytes, not 32") }
            return .ed25519(key)
        case rsaAlgorithm:
            return try rsaPublicKey(key)
        default:
            throw Problem("holds a public key of a kind zpubd does not check (neither Ed25519 nor RSA)")
        }
    }

    /// SEQUENCE { INTEGER modulus, INTEGER publicExponent }
    private static func rsaPublicKey(_ der: [UInt8]) throws(Problem) -> Key {
        var reader = DERReader(der)
        var sequence = try reader.element(.sequence)
        try reader.expectEnd()
        let modulus = try sequence.element(.integer).bytes.drop { $0 == 0 }
        let exponent = try sequence.element(.integer).bytes.drop { $0 == 0 }
        try sequence.expectEnd()
        let bits = modulus.first.map { modulus.count * 8 - $0.leadingZeroBitCount } ?? 0
        guard bits >= 2048 else { throw Problem("has an RSA key of \(bits) bits; JWTs need 2048 or more") }
        // Larger keys only slow every check down (16,384 bits is the most anyone issues).
        guard bits <= 16_384 else { throw Problem("has an RSA key of \(bits) bits; zpubd checks up to 16,384") }
        // An even modulus or an exponent below 3 (e = 1 makes every signature its own message)
        // is no RSA key anyone made on purpose.
        guard modulus.last.map({ $0 & 1 == 1 }) == true,
            exponent.last.map({ $0 & 1 == 1 }) == true, exponent.count > 1 || exponent[exponent.startIndex] >= 3
        else { throw Problem("has a malformed RSA key (an even modulus, or an exponent below 3 or even)") }
        return .rsa(modulus: Array(modulus), exponent: Array(exponent))
    }
}

/// Reads DER elements (tag, definite length, contents) one after another.
struct DERReader {
    enum Tag: UInt8 {
        case integer = 0x02, bitString = 0x03, null = 0x05, objectIdentifier = 0x06, sequence = 0x30
    }

    private(set) var bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next element, which must carry `tag`; a reader over its contents.
    mutating func element(_ tag: Tag) throws(PublicKeyPEM.Problem) -> DERReader {
        let malformed = PublicKeyPEM.Problem("has a malformed public key (DER)")
        guard position + 2 <= bytes.count, bytes[position] == tag.rawValue else { throw malformed }
        var length = Int(bytes[position + 1])
        position += 2
        if length >= 0x80 {
            // Long form: the low bits count the length's own bytes. Keys are far below 2^32.
            let count = length & 0x7F
            guard count >= 1, count <= 4, position + count <= bytes.count else { throw malformed }
            length = bytes[position..<(position + count)].reduce(0) { $0 << 8 | Int($1) }
            position += count
        }
        guard length <= bytes.count - position else { throw malformed }
        defer { position += length }
        return DERReader(Array(bytes[position..<(position + length)]))
    }

    /// Nothing may follow what was read.
    func expectEnd() throws(PublicKeyPEM.Problem) {
        guard position == bytes.count else { throw PublicKeyPEM.Problem("has a malformed public key (DER)") }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        String(
            drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }
                .reversed())
    }
}
