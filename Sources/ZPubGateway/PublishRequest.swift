import ZPubCore

/// The body of `POST /publish` (docs/http.md, "Publishing over HTTP"): one message, or a batch.
///
///     {"topic": "news.1", "payload": "text"}          a string is sent as its UTF-8 bytes
///     {"topic": "news.1", "payload": {"any": "json"}} any other JSON value as its JSON text
///     {"topic": "news.1", "frames": ["a", "b"]}       several payload frames
///     {"messages": [{...}, {...}]}                     up to `maxMessages` of the above
///
/// Each message becomes a ZeroMQ message (topic frame first), as if a producer had PUSHed it.
enum PublishRequest {
    static let maxMessages = 1_000

    /// Why a body is refused: the HTTP error's code and message.
    struct Problem: Error, Equatable {
        var message: String
    }

    static func parse(_ bytes: [UInt8]) -> Result<[[[UInt8]]], Problem> {
        guard let body = JSONValue.parse(bytes) else {
            let problem = JSONValue.problem(in: bytes) ?? "invalid"
            return .failure(
                Problem(message: #"the body is not JSON ("# + problem + #"); send {"topic": "...", "payload": ...}"#))
        }
        guard case .object = body.kind else {
            return .failure(
                Problem(message: #"the body is not a JSON object; send {"topic": "...", "payload": ...}"#))
        }
        guard let batch = body["messages"] else { return message(body, in: bytes).map { [$0] } }
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
        guard case .object = value.kind else { return .failure(Problem(message: "a message must be a JSON object")) }
        guard let topic = value["topic"]?.string, !topic.isEmpty else {
            return .failure(Problem(message: #"a message needs "topic" (a non-empty string)"#))
        }
        // By bytes: String's hasPrefix compares characters, and "$zpub/" followed by a
        // combining mark is another character.
        if topic.utf8.starts(with: BrokerState.internalPrefix) {
            return .failure(Problem(message: "topics under $zpub/ are zpubd's own"))
        }
        switch (value["payload"], value["frames"]) {
        case (let payload?, nil):
            // A string is sent as its text; any other value as the JSON the client wrote.
            return .success([Array(topic.utf8), payload.string.map { Array($0.utf8) } ?? Array(bytes[payload.range])])
        case (nil, let frames?):
            guard let strings = frames.strings else {
                return .failure(Problem(message: #""frames" must be an array of strings"#))
            }
            return .success([Array(topic.utf8)] + strings.map { Array($0.utf8) })
        case (nil, nil):
            return .failure(Problem(message: #"a message needs "payload" (any JSON value) or "frames" (strings)"#))
        case (.some, .some):
            return .failure(Problem(message: #"give "payload" or "frames", not both"#))
        }
    }
}
