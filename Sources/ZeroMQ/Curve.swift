import CZeroMQ

/// CURVE keys: 32 bytes, usually written as 40 characters of Z85 (ZeroMQ's base85).
public struct CurveKey: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// Parses the 40-character Z85 form; nil if it is not one.
    public init?(z85 text: some StringProtocol) {
        let trimmed = String(text).trimmingWhitespace
        guard trimmed.utf8.count == 40 else { return nil }
        var decoded = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&decoded, trimmed) != nil else { return nil }
        self.bytes = decoded
    }

    /// The Z85 form, 40 characters.
    public var z85: String {
        var text = [CChar](repeating: 0, count: 41)
        _ = bytes.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, 32) }
        return String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Never the secret itself: keys end up in logs and errors.
    public var description: String { "CurveKey(\(z85.prefix(8))...)" }
}

/// A CURVE key pair.
public struct CurveKeyPair: Sendable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A new random key pair (`zmq_curve_keypair`; libzmq must be built with CURVE).
    public static func generate() throws -> CurveKeyPair {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        func key(_ text: [CChar]) -> CurveKey {
            CurveKey(z85: String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self))!
        }
        return CurveKeyPair(publicKey: key(publicText), secretKey: key(secretText))
    }

    /// The pair of a secret key (its public key is derived with `zmq_curve_public`).
    public init(secretKey: CurveKey) throws {
        var secretText = Array(secretKey.z85.utf8CString)
        var publicText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicText, &secretText) == 0 else { throw ZMQError.last("zmq_curve_public") }
        self.secretKey = secretKey
        self.publicKey = CurveKey(
            z85: String(decoding: publicText.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self))!
    }

    private init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

extension Socket {
    /// Makes this socket a CURVE server with `secretKey`: every peer must be a CURVE client
    /// that knows the matching public key.
    public func makeCurveServer(secretKey: CurveKey) throws {
        try setOption(.curveServer, 1)
        try setOption(.curveSecretKey, bytes: secretKey.bytes)
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`.
    public func makeCurveClient(serverKey: CurveKey, keyPair: CurveKeyPair) throws {
        try setOption(.curveServerKey, bytes: serverKey.bytes)
        try setOption(.curvePublicKey, bytes: keyPair.publicKey.bytes)
        try setOption(.curveSecretKey, bytes: keyPair.secretKey.bytes)
    }
}

extension SocketOption {
    public static let curveServer = SocketOption(rawValue: ZMQ_CURVE_SERVER)
    public static let curvePublicKey = SocketOption(rawValue: ZMQ_CURVE_PUBLICKEY)
    public static let curveSecretKey = SocketOption(rawValue: ZMQ_CURVE_SECRETKEY)
    public static let curveServerKey = SocketOption(rawValue: ZMQ_CURVE_SERVERKEY)
    public static let mechanism = SocketOption(rawValue: ZMQ_MECHANISM)
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
