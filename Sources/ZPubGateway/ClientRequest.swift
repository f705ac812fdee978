import ZPubCore

/// What a WebSocket client may send: one JSON object per text frame (docs/http.md).
///
///     {"op": "subscribe", "prefix": "weather."}          or "prefixes": ["a.", "b."]
///     {"op": "subscribe", "prefix": "orders.", "since": 4711}   kept messages after 4711 first
///     {"op": "unsubscribe", "prefix": "weather."}
///     {"op": "publish", "topic": "chat.room1", "payload": "hello"}   (or any JSON value)
///     {"op": "refresh", "token": "<JWT>"}      a fresh JWT before the one in force expires
///     {"op": "ping"}
///
/// Any request may carry `"token"` (a bearer token for protected prefixes).
enum ClientRequest: Equatable {
    /// With `since`: every kept message under the prefixes after that history sequence first,
    /// then live, with no gap and no duplicate (docs/history.md).
    case subscribe([String], token: String?, since: UInt64? = nil)
    case unsubscribe([String])
    case publish(topic: String, payload: [UInt8], token: String?)
    case refresh(token: String)
    case ping

    /// How many prefixes a subscribe or unsubscribe names (nil for the others).
    var prefixCount: Int? {
        switch self {
        case .subscribe(let list, _, _), .unsubscribe(let list): list.count
        default: nil
        }
    }

    /// A request that breaks the protocol: the connection is closed with this code and reason.
    struct Violation: Error, Equatable {
        /// RFC 6455 close code: 1007 (not JSON), 1008 (not a known request).
        var code: UInt16
        var reason: String
    }

    static func parse(_ bytes: [UInt8]) -> Result<ClientRequest, Violation> {
        guard let object = JSONValue.parse(bytes) else {
            let problem = JSONValue.problem(in: bytes) ?? "invalid"
            return .failure(
                Violation(code: 1007, reason: "not JSON (\(problem)); send {\"op\":\"subscribe\",\"prefix\":\"...\"}"))
        }
        guard case .object = object.kind else {
            return .failure(
                Violation(code: 1007, reason: "not a JSON object; send {\"op\":\"subscribe\",\"prefix\":\"...\"}"))
        }
        let token = object["token"]?.string
        guard let op = object["op"]?.string else {
            return .failure(
                Violation(code: 1008, reason: "missing \"op\" (subscribe, unsubscribe, publish, refresh or ping)"))
        }
        if let violation = unknownField(in: object, op: op) { return .failure(violation) }
        switch op {
        case "subscribe", "unsubscribe":
            let prefixes: [String]
            // Both: the list was ignored in silence (a walkthrough), as publish's "payload" and
            // "frames" are not.
            if object["prefix"] != nil && object["prefixes"] != nil {
                return .failure(Violation(code: 1008, reason: "\(op): give \"prefix\" or \"prefixes\", not both"))
            }
            if let single = object["prefix"]?.string {
                prefixes = [single]
            } else if let list = object["prefixes"]?.strings, !list.isEmpty {
                prefixes = list
            } else {
                return .failure(
                    Violation(code: 1008, reason: "\(op) needs \"prefix\" (a string) or \"prefixes\" (strings)"))
            }
            guard op == "subscribe" else { return .success(.unsubscribe(prefixes)) }
            guard let since = object["since"] else { return .success(.subscribe(prefixes, token: token)) }
            guard case .number = since.kind, let sequence = UInt64(String(decoding: bytes[since.range], as: UTF8.self))
            else {
                return .failure(
                    Violation(code: 1008, reason: "\"since\" must be a history sequence: a whole number, 0 or more"))
            }
            return .success(.subscribe(prefixes, token: token, since: sequence))
        case "publish":
            guard let topic = object["topic"]?.string, !topic.isEmpty else {
                return .failure(Violation(code: 1008, reason: "publish needs \"topic\" (a non-empty string)"))
            }
            guard let payload = object["payload"] else {
                return .failure(Violation(code: 1008, reason: "publish needs \"payload\" (a string or any JSON value)"))
            }
            // A string is published as its text; any other value as the JSON the client wrote.
            let payloadBytes = payload.string.map { Array($0.utf8) } ?? Array(bytes[payload.range])
            return .success(.publish(topic: topic, payload: payloadBytes, token: token))
        case "refresh":
            guard let token, !token.isEmpty else {
                return .failure(Violation(code: 1008, reason: "refresh needs \"token\" (a fresh JWT from the app)"))
            }
            return .success(.refresh(token: token))
        case "ping":
            return .success(.ping)
        default:
            let shown = shortened(op)
            return .failure(
                Violation(
                    code: 1008, reason: "unknown op \"\(shown)\"; use subscribe, unsubscribe, publish, refresh or ping")
            )
        }
    }

    /// A client's name for a close reason, at most 32 bytes of it: a close frame's reason holds
    /// 123 bytes, and one cut inside a character is a protocol error to the browser.
    private static func shortened(_ name: String) -> String {
        name.utf8.count > 32 ? name.utf8Prefix(32) + "..." : name
    }

    /// The fields each op takes besides "op" and "token" (which any request may carry).
    private static let fields: [String: [String]] = [
        "subscribe": ["prefix", "prefixes", "since"], "unsubscribe": ["prefix", "prefixes"],
        "publish": ["topic", "payload"], "refresh": [], "ping": [],
    ]

    /// A field the op does not take: a typo such as "snce" subscribed live only, the history
    /// the client asked for skipped in silence. POST /publish's fields get their own advice.
    private static func unknownField(in object: JSONValue, op: String) -> Violation? {
        guard let taken = fields[op], case .object(let members) = object.kind else { return nil }
        if op == "publish",
            let other = ["encoding", "frames", "topic_base64", "messages"].first(where: { object[$0] != nil })
        {
            // What POST /publish takes and a WebSocket publish does not ("encoding": "base64"
            // published the base64 text; a review).
            return Violation(
                code: 1008,
                reason:
                    "publish takes \"topic\" and \"payload\", not \"\(other)\": for binary or frames, use POST /publish"
            )
        }
        guard let unknown = members.first(where: { $0.key != "op" && $0.key != "token" && !taken.contains($0.key) })
        else { return nil }
        let shown = shortened(unknown.key)
        let takes = (taken + ["token"]).joined(separator: ", ")
        return Violation(code: 1008, reason: "\(op): unknown field \"\(shown)\" (it takes \(takes))")
    }
}
