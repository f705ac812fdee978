import ZPubCore

/// The body of `POST /publish` (docs/http.md, "Publishing over HTTP"): one message, or a batch.
///
///     {"topic": "news.1", "payload": "text"}          a string is sent as its UTF-8 bytes
///     {"topic": "news.1", "payload": {"any": "json"}} any other JSON value as its JSON text
///     {"topic": "news.1", "frames": ["a", "b"]}       several payload frames
///     {"messages": [{...}, {...}]}                     up to `maxMessages` of the above
///
/// and the shape zpub prints a message in (`MessageJSON`: `"encoding"` json, text, frames or
/// base64, `topic_base64`), so that what a client received can be published again byte for
/// byte. A field it does not know is refused: ignored, `"encoding": "base64"` published the
/// base64 text itself, and a `"topic"` beside `"messages"` was dropped (a walkthrough).
///
/// Each message becomes a ZeroMQ message (topic frame first), as if a producer had PUSHed it.
enum PublishRequest {
    static let maxMessages = 1_000

    /// Why a body is refused: the HTTP error's code and message.
    struct Problem: Error, Equatable {
        var message: String
    }

    /// A message's fields: its own, and those of the printed shape that say nothing to publish
    /// (`type` "message"; `seq` and `stored_ms`, which the broker gives anew).
    private static let messageFields: Set<String> = [
        "topic", "topic_base64", "payload", "frames", "encoding", "type", "seq", "stored_ms",
    ]

    static func parse(_ bytes: [UInt8]) -> Result<[[[UInt8]]], Problem> {
        guard let body = JSONValue.parse(bytes) else {
            let problem = JSONValue.problem(in: bytes) ?? "invalid"
            return .failure(
                Problem(message: #"the body is not JSON ("# + problem + #"); send {"topic": "...", "payload": ...}"#))
        }
        guard case .object(let members) = body.kind else {
            return .failure(
                Problem(message: #"the body is not a JSON object; send {"topic": "...", "payload": ...}"#))
        }
        guard let batch = body["messages"] else { return message(body, in: bytes).map { [$0] } }
        if let other = members.first(where: { $0.key != "messages" }) {
            return .failure(
                Problem(
                    message:
                        #"a body with "messages" has no other field ("\#(other.key)" given): put each message's fields inside "messages""#
                ))
        }
        guard case .array(let items) = batch.kind, !items.isEmpty else {
            return .failure(Problem(message: #""messages" must be a non-empty array of messages"#))
        }
        guard items.count <= maxMessages else {
            return .failure(Problem(message: "at most \(maxMessages) messages per request; this has \(items.count)"))
        }
        var messages: [[[UInt8]]] = []
        for (index, item) in items.enumerated() {
            switch message(item, in: bytes) {
            case .success(let frames): messages.append(frames)
            case .failure(let problem): return .failure(Problem(message: "messages[\(index)]: \(problem.message)"))
            }
        }
        return .success(messages)
    }

    private static func message(_ value: JSONValue, in bytes: [UInt8]) -> Result<[[UInt8]], Problem> {
        guard case .object(let members) = value.kind else {
            return .failure(Problem(message: "a message must be a JSON object"))
        }
        if let unknown = members.first(where: { !messageFields.contains($0.key) }) {
            return .failure(
                Problem(
                    message:
                        #"unknown field "\#(unknown.key)": a message has "topic", "payload" or "frames", and "encoding" (json, text, frames or base64)"#
                ))
        }
        if let type = value["type"], type.string != "message" {
            return .failure(Problem(message: #""type", when given, is "message""#))
        }
        let topic: [UInt8]
        if let encoded = value["topic_base64"] {
            guard let text = encoded.string, let decoded = Base64.decode(text) else {
                return .failure(Problem(message: #""topic_base64" must be the topic's bytes in base64"#))
            }
            guard !decoded.isEmpty else {
                return .failure(Problem(message: "a message needs a non-empty topic"))
            }
            topic = decoded
        } else {
            guard let text = value["topic"]?.string, !text.isEmpty else {
                return .failure(Problem(message: #"a message needs "topic" (a non-empty string)"#))
            }
            topic = Array(text.utf8)
        }
        // By bytes: String's hasPrefix compares characters, and "$zpub/" followed by a
        // combining mark is another character.
        if topic.starts(with: BrokerState.internalPrefix) {
            return .failure(Problem(message: "topics under $zpub/ are zpubd's own"))
        }
        // `"frames": [...]` is `"encoding": "frames"` with its payload.
        let payload: Result<[[UInt8]], Problem>
        switch (value["payload"], value["frames"]) {
        case (let given?, nil):
            payload = payloadFrames(given, encoding: value["encoding"].map { $0.string ?? "" }, in: bytes)
        case (nil, let frames?):
            if let encoding = value["encoding"], encoding.string != "frames" {
                return .failure(Problem(message: #""frames" goes with no "encoding", or "encoding": "frames""#))
            }
            payload = payloadFrames(frames, encoding: "frames", in: bytes)
        case (nil, nil):
            return .failure(Problem(message: #"a message needs "payload" (any JSON value) or "frames" (strings)"#))
        case (.some, .some):
            return .failure(Problem(message: #"give "payload" or "frames", not both"#))
        }
        return payload.map { [topic] + $0 }
    }

    /// The payload frames of `payload` as `encoding` says (none: a string as its text, any
    /// other value as its JSON text; "" for an encoding that is not a string).
    private static func payloadFrames(_ payload: JSONValue, encoding: String?, in bytes: [UInt8])
        -> Result<[[UInt8]], Problem>
    {
        switch encoding {
        case nil:
            return .success([payload.string.map { Array($0.utf8) } ?? Array(bytes[payload.range])])
        case "json":
            return .success([Array(bytes[payload.range])])
        case "text":
            guard let text = payload.string else {
                return .failure(Problem(message: #"with "encoding": "text", "payload" is a string"#))
            }
            return .success([Array(text.utf8)])
        case "frames":
            guard let strings = payload.strings else {
                return .failure(
                    Problem(
                        message:
                            #"the frames ("frames", or "payload" with "encoding": "frames") must be an array of strings"#
                    ))
            }
            return .success(strings.map { Array($0.utf8) })
        case "base64":
            // One frame as a string, or several as an array (the shape zpub prints).
            guard let texts = payload.string.map({ [$0] }) ?? payload.strings else {
                return .failure(
                    Problem(message: #"with "encoding": "base64", "payload" is a base64 string or an array of them"#))
            }
            var frames: [[UInt8]] = []
            for (index, text) in texts.enumerated() {
                guard let frame = Base64.decode(text) else {
                    return .failure(Problem(message: "payload frame \(index) is not base64"))
                }
                frames.append(frame)
            }
            return .success(frames)
        default:
            return .failure(Problem(message: #""encoding" is json, text, frames or base64"#))
        }
    }
}
