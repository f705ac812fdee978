import ZPubCore

/// Who may connect, subscribe and publish: allowed origins, bearer tokens per prefix, publish
/// prefixes. Immutable and pure, so it is shared by every event loop and unit-tested alone.
struct AccessPolicy: Sendable {
    enum Denial: Error, Equatable {
        case originNotAllowed(String)
        case tokenRequired(prefix: String)
        case publishNotAllowed(topic: String)

        var message: String {
            switch self {
            case .originNotAllowed(let origin):
                "origin \(origin) is not allowed; add it to allowed_origins in [http]"
            case .tokenRequired(let prefix):
                "prefix \"\(prefix)\" needs a bearer token (Authorization: Bearer, ?access_token= or \"token\")"
            case .publishNotAllowed(let topic):
                "publishing to \"\(topic)\" is not allowed; publish_prefixes in [http] lists what is"
            }
        }
    }

    let allowsAnyOrigin: Bool
    let origins: Set<String>
    let publishPrefixes: [[UInt8]]
    let tokens: [(prefix: [UInt8], token: String)]

    init(_ settings: HTTPSettings) {
        allowsAnyOrigin = settings.allowedOrigins.contains("*")
        origins = Set(settings.allowedOrigins.map(Self.normalize))
        publishPrefixes = settings.publishPrefixes.map { Array($0.utf8) }
        tokens = settings.tokenRules.map { (Array($0.prefix.utf8), $0.token) }
    }

    /// A request without Origin (not a browser) is allowed; so is a page served by zpubd itself
    /// (its Origin names the Host it was loaded from), and any origin listed.
    func checkOrigin(_ origin: String?, host: String?) -> Denial? {
        guard let origin, !allowsAnyOrigin else { return nil }
        let normalized = Self.normalize(origin)
        if origins.contains(normalized) { return nil }
        if let host, let authority = Self.authority(of: normalized), authority == host.lowercased() {
            return nil
        }
        return .originNotAllowed(origin)
    }

    /// The CORS origin to echo for an allowed cross-origin request.
    func corsOrigin(for origin: String?) -> String? {
        guard let origin else { return nil }
        if allowsAnyOrigin { return "*" }
        return origins.contains(Self.normalize(origin)) ? origin : nil
    }

    /// A subscription to `prefix` receives every topic under a protected prefix P when P starts
    /// with `prefix` ("" covers everything), and topics under P when `prefix` starts with P:
    /// either way it needs P's token.
    func checkSubscribe(_ prefix: [UInt8], presented: Set<String>) -> Denial? {
        for rule in tokens where rule.prefix.starts(with: prefix) || prefix.starts(with: rule.prefix) {
            if !presented.contains(rule.token) {
                return .tokenRequired(prefix: String(decoding: rule.prefix, as: UTF8.self))
            }
        }
        return nil
    }

    func checkPublish(_ topic: [UInt8], presented: Set<String>) -> Denial? {
        guard publishPrefixes.contains(where: { topic.starts(with: $0) }) else {
            return .publishNotAllowed(topic: String(decoding: topic, as: UTF8.self))
        }
        for rule in tokens where topic.starts(with: rule.prefix) && !presented.contains(rule.token) {
            return .tokenRequired(prefix: String(decoding: rule.prefix, as: UTF8.self))
        }
        return nil
    }

    /// "host:port" of "scheme://host:port", or nil without "://".
    private static func authority(of origin: String) -> Substring? {
        origin.firstRange(of: "://").map { origin[$0.upperBound...] }
    }

    private static func normalize(_ origin: String) -> String {
        var text = origin.lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }
}
