/// Who may connect to one of zpubd's sockets (its ZAP domain): allow lists of CURVE client keys
/// and of addresses.
public struct ZAPPolicy: Sendable, Equatable {
    /// CURVE client keys allowed (32 raw bytes each); nil: any key (the client still needs the
    /// server's key).
    public var allowedKeys: Set<[UInt8]>?
    /// Empty: any address.
    public var allowedAddresses: [CIDR]

    public init(allowedKeys: Set<[UInt8]>?, allowedAddresses: [CIDR]) {
        self.allowedKeys = allowedKeys
        self.allowedAddresses = allowedAddresses
    }

    /// No limit: any address, any key.
    public static let open = ZAPPolicy(allowedKeys: nil, allowedAddresses: [])

    /// Whether this policy lets in every client `old` let in, as far as the lists tell (keys
    /// only count under CURVE, `curve`). When it does not, the clients `old` let in are
    /// checked again (their socket's endpoints are bound again): ZAP checks a connection once,
    /// at its handshake, and a reload that took a key or an address out of the lists left the
    /// clients connected with it in for as long as they stayed connected (a walkthrough).
    public func admitsEveryClientOf(_ old: ZAPPolicy, curve: Bool) -> Bool {
        if curve, let keys = allowedKeys {
            guard let oldKeys = old.allowedKeys, oldKeys.isSubset(of: keys) else { return false }
        }
        guard !allowedAddresses.isEmpty else { return true }
        return !old.allowedAddresses.isEmpty
            && old.allowedAddresses.allSatisfy { block in allowedAddresses.contains { $0.covers(block) } }
    }

    /// Nil when allowed; otherwise why not. An empty address (ipc, inproc) passes the address
    /// list: it is not a network peer.
    public func denial(address: String, mechanism: String, credentials: [UInt8]?) -> String? {
        if !allowedAddresses.isEmpty && !address.isEmpty && !allowedAddresses.contains(where: { $0.contains(address) })
        {
            return "address not allowed"
        }
        if let allowedKeys, mechanism == "CURVE" {
            guard let key = credentials, allowedKeys.contains(key) else { return "public key not allowed" }
        }
        return nil
    }
}

/// One ZAP request (RFC 27): version "1.0", request id, domain, address, routing id,
/// mechanism, then the mechanism's credentials.
public struct ZAPRequest: Equatable, Sendable {
    public var requestID: [UInt8]
    public var domain: String
    public var address: String
    public var mechanism: String
    public var credentials: [UInt8]?

    /// Nil when the frames are not a version 1.0 request.
    public init?(frames: [[UInt8]]) {
        guard frames.count >= 6, frames[0] == Array("1.0".utf8) else { return nil }
        requestID = frames[1]
        domain = String(decoding: frames[2], as: UTF8.self)
        address = String(decoding: frames[3], as: UTF8.self)
        mechanism = String(decoding: frames[5], as: UTF8.self)
        credentials = frames.count > 6 ? frames[6] : nil
    }
}

/// The ZAP handler's decision, with no sockets: fail closed (an unknown domain is denied).
public enum ZAPDecision {
    public enum Verdict: Equatable, Sendable {
        /// Let the peer in; `curveKey` is its public key (the reply's user id) under CURVE.
        case allowed(curveKey: [UInt8]?)
        case denied(reason: String)
    }

    public static func decide(_ request: ZAPRequest, policies: [String: ZAPPolicy]) -> Verdict {
        guard let policy = policies[request.domain] else { return .denied(reason: "unknown ZAP domain") }
        if let reason = policy.denial(
            address: request.address, mechanism: request.mechanism, credentials: request.credentials)
        {
            return .denied(reason: reason)
        }
        return .allowed(curveKey: request.mechanism == "CURVE" ? request.credentials : nil)
    }

    /// The reply frames: version, request id, status code, status text, user id, metadata.
    public static func reply(requestID: [UInt8], code: String, text: String, user: String = "") -> [[UInt8]] {
        [Array("1.0".utf8), requestID, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
    }

    /// The reply to frames that are not a ZAP request at all.
    public static func malformedReply(to frames: [[UInt8]]) -> [[UInt8]] {
        reply(requestID: frames.count > 1 ? frames[1] : [], code: "400", text: "malformed ZAP request")
    }
}
