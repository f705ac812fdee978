/// A message (topic frame, then payload frames) as JSON. One shape wherever zpub shows a
/// message as JSON: to WebSocket and SSE clients, in `zpub sub --json` and `zpub history --json`,
/// and as the entries of SNAPSHOT, HISTORY and REPLAY replies (docs/http.md, "Messages"):
///
///     {"type":"message","topic":"news.1","encoding":"json","payload":{"a":1},"seq":42}
///
/// - `topic`: the topic as text; `topic_base64`: its exact bytes, only when it is not UTF-8.
/// - `encoding` says what `payload` holds: `json`, one payload frame that is one JSON value,
///   embedded as the publisher wrote it; `text`, one payload frame of other UTF-8 text, as a
///   string; `frames`, no or several UTF-8 payload frames, as an array of strings; `base64`,
///   the payload frames in base64, whatever their bytes.
/// - `seq`: the history sequence of a kept message (a snapshot entry: its last-value sequence);
///   `stored_ms`: when the broker stored it (Unix milliseconds), in control replies.
///
/// Two writers produce this one shape, and tests hold them to the same values: `write(_:)` and
/// `readableText(_:)` write bytes directly, for every message a browser or `zpub sub` receives,
/// keep a JSON payload byte for byte, and build nothing on the way; `Codable` serves the control
/// replies, which use `.exact` so that a client gets the frames back exactly (`messageFrames`).
public struct MessageJSON: Codable, Equatable, Sendable {
    public enum Encoding: String, Codable, Sendable {
        case json, text, frames, base64
    }

    public enum Payload: Equatable, Sendable {
        /// `text`: one string.
        case string(String)
        /// `frames` and `base64`: one string per payload frame.
        case strings([String])
        /// `json`: the value itself.
        case value(JSONTree)
    }

    /// How payload frames are shown.
    public enum Style: Sendable {
        /// As `json`, `text` or `frames` when the topic and every payload frame are UTF-8, else
        /// `base64`: what browsers and people read.
        case readable
        /// Always `base64`: exact bytes, for programs (control replies).
        case exact
    }

    public var type = "message"
    public var topic: String
    public var topicBase64: String?
    public var encoding: Encoding
    public var payload: Payload
    public var seq: UInt64?
    public var storedMilliseconds: UInt64?

    /// The message `frames` (topic first) in the given style.
    public init(frames: [[UInt8]], style: Style, seq: UInt64? = nil, storedMilliseconds: UInt64? = nil) {
        let topicBytes = frames.first ?? []
        let payloadFrames = frames.dropFirst()
        topic = TopicText.display(topicBytes)
        self.seq = seq
        self.storedMilliseconds = storedMilliseconds
        let readable = style == .readable && Self.isUTF8(topicBytes) && payloadFrames.allSatisfy(Self.isUTF8)
        guard readable else {
            topicBase64 = Self.isUTF8(topicBytes) ? nil : Base64.encode(topicBytes)
            encoding = .base64
            payload = .strings(payloadFrames.map(Base64.encode))
            return
        }
        if payloadFrames.count == 1, let only = payloadFrames.first {
            if Self.isEmbeddableJSON(only), let value = JSONValue.parse(only) {
                encoding = .json
                payload = .value(JSONTree(value, in: only))
            } else {
                encoding = .text
                payload = .string(String(decoding: only, as: UTF8.self))
            }
        } else {
            encoding = .frames
            payload = .strings(payloadFrames.map { String(decoding: $0, as: UTF8.self) })
        }
    }

    /// `seq`, or 0 when absent (control replies always carry it).
    public var sequence: UInt64 { seq ?? 0 }

    /// The message's frames, topic first, when the JSON carries them exactly (`base64`, `text`,
    /// `frames`); nil for `json` (its text may have been re-encoded) or invalid base64.
    public var messageFrames: [[UInt8]]? {
        var topicBytes = Array(topic.utf8)
        if let topicBase64 {
            guard let decoded = Base64.decode(topicBase64) else { return nil }
            topicBytes = decoded
        }
        switch (encoding, payload) {
        case (.base64, .strings(let frames)):
            var result = [topicBytes]
            for frame in frames {
                guard let bytes = Base64.decode(frame) else { return nil }
                result.append(bytes)
            }
            return result
        case (.text, .string(let text)): return [topicBytes, Array(text.utf8)]
        case (.frames, .strings(let frames)): return [topicBytes] + frames.map { Array($0.utf8) }
        default: return nil
        }
    }

    enum CodingKeys: String, CodingKey {
        case type, topic, encoding, payload, seq
        case topicBase64 = "topic_base64"
        case storedMilliseconds = "stored_ms"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        type = try container.decode(String.self, forKey: .type)
        topic = try container.decode(String.self, forKey: .topic)
        topicBase64 = try container.decodeIfPresent(String.self, forKey: .topicBase64)
        encoding = try container.decode(Encoding.self, forKey: .encoding)
        switch encoding {
        case .json: payload = .value(try container.decode(JSONTree.self, forKey: .payload))
        case .text: payload = .string(try container.decode(String.self, forKey: .payload))
        case .frames, .base64: payload = .strings(try container.decode([String].self, forKey: .payload))
        }
        seq = try container.decodeIfPresent(UInt64.self, forKey: .seq)
        storedMilliseconds = try container.decodeIfPresent(UInt64.self, forKey: .storedMilliseconds)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try container.encode(topic, forKey: .topic)
        try container.encodeIfPresent(topicBase64, forKey: .topicBase64)
        try container.encode(encoding, forKey: .encoding)
        switch payload {
        case .string(let text): try container.encode(text, forKey: .payload)
        case .strings(let frames): try container.encode(frames, forKey: .payload)
        case .value(let value): try container.encode(value, forKey: .payload)
        }
        try container.encodeIfPresent(seq, forKey: .seq)
        try container.encodeIfPresent(storedMilliseconds, forKey: .storedMilliseconds)
    }
}

// MARK: - The direct writer

extension MessageJSON {
    /// The message in the `.readable` style, written directly: one line of JSON.
    public static func write(_ frames: [[UInt8]], seq: UInt64? = nil) -> [UInt8] {
        if let text = readableText(frames, seq: seq) { return text }
        let topic = frames.first ?? []
        var out = Array(#"{"type":"message","topic":"#.utf8)
        appendString(Array(TopicText.display(topic).utf8), to: &out)
        if !isUTF8(topic) {
            out += Array(#","topic_base64":"#.utf8)
            appendString(Array(Base64.encode(topic).utf8), to: &out)
        }
        out += Array(#","encoding":"base64","payload":["#.utf8)
        for (index, frame) in frames.dropFirst().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(Array(Base64.encode(frame).utf8), to: &out)
        }
        out.append(UInt8(ascii: "]"))
        appendSequence(seq, to: &out)
        return out
    }

    /// The message as `json`, `text` or `frames`, or nil when the topic or a payload frame is not
    /// UTF-8 (a WebSocket then sends the message as a binary frame instead).
    public static func readableText(_ frames: [[UInt8]], seq: UInt64? = nil) -> [UInt8]? {
        guard let topic = frames.first, isUTF8(topic) else { return nil }
        let payload = frames.dropFirst()
        guard payload.allSatisfy(isUTF8) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(frames.reduce(64) { $0 + $1.count + 8 })
        out += Array(#"{"type":"message","topic":"#.utf8)
        appendString(topic, to: &out)
        if payload.count == 1, let only = payload.first {
            if isEmbeddableJSON(only) && JSONValue.isValid(only) {
                out += Array(#","encoding":"json","payload":"#.utf8)
                out += only
            } else {
                out += Array(#","encoding":"text","payload":"#.utf8)
                appendString(only, to: &out)
            }
        } else {
            out += Array(#","encoding":"frames","payload":["#.utf8)
            for (index, frame) in payload.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendString(frame, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        appendSequence(seq, to: &out)
        return out
    }

    private static func appendSequence(_ seq: UInt64?, to out: inout [UInt8]) {
        if let seq { out += Array(",\"seq\":\(seq)".utf8) }
        out.append(UInt8(ascii: "}"))
    }

    public static func isUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    /// Whether a frame may be embedded as a JSON payload: a cheap look at its first byte, and
    /// no line break inside (an SSE data line must stay one line; re-encoding is not worth it).
    /// The caller still validates it.
    static func isEmbeddableJSON(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else {
            return false
        }
        guard Array("{[\"-0123456789tfn".utf8).contains(first) else { return false }
        return !bytes.contains(0x0A) && !bytes.contains(0x0D)
    }

    /// Appends `bytes` (UTF-8) as a JSON string literal.
    public static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `text` as a JSON string literal.
    public static func jsonString(_ text: String) -> String {
        var out: [UInt8] = []
        appendString(Array(text.utf8), to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Any JSON value, decoded: what a `json` payload holds once read back through `Codable`.
/// Numbers are Doubles and object members unordered, so compare values, not text.
public indirect enum JSONTree: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONTree])
    case object([String: JSONTree])

    /// The tree of a parsed value; `bytes` are the text it was parsed from (for its numbers).
    public init(_ value: JSONValue, in bytes: [UInt8]) {
        switch value.kind {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .number: self = .number(Double(String(decoding: bytes[value.range], as: UTF8.self)) ?? .nan)
        case .string(let text): self = .string(text)
        case .array(let items): self = .array(items.map { JSONTree($0, in: bytes) })
        case .object(let members):
            self = .object(Dictionary(members.map { ($0.key, JSONTree($0.value, in: bytes)) }) { $1 })
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSONTree].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode([String: JSONTree].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let items): try container.encode(items)
        case .object(let members): try container.encode(members)
        }
    }
}

extension MessageJSON {
    /// A cached last value, exactly, with its cache sequence and when it was stored.
    public init(_ entry: LastValueCache.Entry) {
        self.init(
            frames: entry.frames, style: .exact, seq: entry.sequence, storedMilliseconds: entry.storedMilliseconds)
    }
}
