import CGcrypt

/// A key that checks one JWS algorithm's signatures, through libgcrypt (see CGcrypt's shim.h
/// for why that library). Immutable and Sendable: every event loop checks tokens with the same
/// key, and each check builds and frees its own libgcrypt objects.
struct SignatureKey: Sendable, Equatable {
    enum Algorithm: String, Sendable {
        case hs256 = "HS256", rs256 = "RS256", edDSA = "EdDSA"
    }

    private enum Material: Equatable {
        case hmacSecret([UInt8])
        case rsa(modulus: [UInt8], exponent: [UInt8])
        case ed25519([UInt8])
    }

    private let material: Material

    var algorithm: Algorithm {
        switch material {
        case .hmacSecret: .hs256
        case .rsa: .rs256
        case .ed25519: .edDSA
        }
    }

    static func hmacSHA256(secret: [UInt8]) -> SignatureKey { SignatureKey(material: .hmacSecret(secret)) }

    /// An RSA public key checks RS256, an Ed25519 one EdDSA.
    init(publicKey: PublicKeyPEM.Key) {
        switch publicKey {
        case .ed25519(let key): material = .ed25519(key)
        case .rsa(let modulus, let exponent): material = .rsa(modulus: modulus, exponent: exponent)
        }
    }

    private init(material: Material) { self.material = material }

    /// Whether `signature` is this key's signature of `message`.
    func verifies(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard Self.libraryReady else { return false }
        switch material {
        case .hmacSecret(let secret):
            guard let mac = Self.hmac(secret: secret, message: message) else { return false }
            return Self.constantTimeEqual(mac, signature)
        case .rsa(let modulus, let exponent):
            // RFC 8017 8.2.2: a signature is exactly as long as the modulus and smaller than it.
            // libgcrypt compares numbers only, so a leading zero byte or s + n would pass.
            guard signature.count == modulus.count, signature.lexicographicallyPrecedes(modulus) else {
                return false
            }
            var digest = [UInt8](repeating: 0, count: 32)
            gcry_md_hash_buffer(Int32(GCRY_MD_SHA256.rawValue), &digest, message, message.count)
            return zpub_gcrypt_verify_rsa_sha256(
                modulus, modulus.count, exponent, exponent.count, digest, digest.count, signature, signature.count) == 0
        case .ed25519(let key):
            // RFC 8032 5.1.7: S must be below the group order L; libgcrypt 1.10 does not check,
            // and S + L would verify as well (one token, several accepted spellings).
            guard signature.count == 64, Self.isBelowGroupOrder(signature[32...]) else { return false }
            return zpub_gcrypt_verify_ed25519(key, key.count, message, message.count, signature, signature.count) == 0
        }
    }

    /// HMAC-SHA-256 of `message` (RFC 2104): 32 bytes, or nil if libgcrypt failed.
    static func hmac(secret: [UInt8], message: [UInt8]) -> [UInt8]? {
        guard libraryReady else { return nil }
        var handle: gcry_mac_hd_t?
        guard gcry_mac_open(&handle, Int32(GCRY_MAC_HMAC_SHA256.rawValue), 0, nil) == 0 else { return nil }
        defer { gcry_mac_close(handle) }
        var mac = [UInt8](repeating: 0, count: 32)
        var length = mac.count
        guard gcry_mac_setkey(handle, secret, secret.count) == 0, gcry_mac_write(handle, message, message.count) == 0,
            gcry_mac_read(handle, &mac, &length) == 0, length == 32
        else { return nil }
        return mac
    }

    /// Compares every byte whatever the first difference, so that the time a refusal takes
    /// tells an attacker nothing about how much of a forged MAC was right.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Ed25519's group order L (RFC 8032), little-endian as S is stored.
    private static let groupOrder: [UInt8] = [
        0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE, 0x14,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    ]

    /// Whether the 32 little-endian bytes of `s` are a number below L.
    static func isBelowGroupOrder(_ s: ArraySlice<UInt8>) -> Bool {
        for (byte, order) in zip(s.reversed(), groupOrder.reversed()) where byte != order {
            return byte < order
        }
        return false
    }

    /// libgcrypt initialised, once per process; false only if the installed library is older
    /// than the headers zpubd was built with. `TokenVerifier.load` checks it at start (libgcrypt
    /// wants to be set up before threads use it), so a token never meets an unready library.
    static let libraryReady: Bool = zpub_gcrypt_initialize() != 0
}
