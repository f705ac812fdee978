import ZPubCore

/// How a broker message (topic frame, then payload frames) looks to a browser. Pure functions,
/// shared by WebSocket and SSE; see docs/http.md ("Messages").
enum WireFormat {
    /// A message as a WebSocket frame: a text frame of JSON when the topic and every payload
    /// frame are UTF-8, a binary frame otherwise.
    enum WebSocketPayload: Equatable {
        case text([UInt8])
        case binary([UInt8])
    }

    /// `sequence`: the message's history sequence, when it is kept (docs/history.md); a text
    /// message then carries it as `"seq"`.
    static func webSocket(_ frames: [[UInt8]], sequence: UInt64? = nil) -> WebSocketPayload {
        guard var text = json(frames) else { return .binary(binary(frames)) }
        if let sequence {
            text.removeLast()  // the closing brace
            text += Array(",\"seq\":\(sequence)}".utf8)
        }
        return .text(text)
    }

    /// `{"type":"message","topic":...,"encoding":...,"payload":...}`, or nil when a frame is
    /// not UTF-8. `encoding` is `json` (one payload frame that is a JSON value, embedded as is),
    /// `text` (one payload frame of other text, as a string) or `frames` (none or several
    /// payload frames, as an array of strings).
    static func json(_ frames: [[UInt8]]) -> [UInt8]? {
        guard let topic = frames.first, isUTF8(topic) else { return nil }
        let payload = frames.dropFirst()
        guard payload.allSatisfy(isUTF8) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(frames.reduce(48) { $0 + $1.count + 8 })
        out += Array(#"{"type":"message","topic":"#.utf8)
        appendString(topic, to: &out)
        if payload.count == 1, let only = payload.first {
            if isJSONValue(only) {
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
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Any message as JSON text (for SSE, which carries text only): as `json(_:)`, or with
    /// `"encoding":"base64"`, the payload frames in base64, and `topic_base64` when the topic
    /// itself is not UTF-8.
    static func jsonOrBase64(_ frames: [[UInt8]]) -> [UInt8] {
        if let text = json(frames) { return text }
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
        out += Array("]}".utf8)
        return out
    }

    /// Every frame, topic first, as a 4-byte big-endian length and then its bytes (`FrameCodec`).
    static func binary(_ frames: [[UInt8]]) -> [UInt8] { FrameCodec.encode(frames) }

    /// One Server-Sent Event. `data` must not contain a newline (JSON from this file never does).
    static func serverSentEvent(id: String?, event: String?, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 40)
        if let id { out += Array("id: \(id)\n".utf8) }
        if let event { out += Array("event: \(event)\n".utf8) }
        out += Array("data: ".utf8)
        out += data
        out += Array("\n\n".utf8)
        return out
    }

    /// An SSE event id: the last-value cache sequence the gateway had seen when the message
    /// passed, then the gateway's own message number ("<sequence>-<number>"). A reconnecting
    /// client's Last-Event-ID gives back the sequence.
    static func eventID(sequence: UInt64, number: UInt64) -> String { "\(sequence)-\(number)" }

    /// The SSE event id of a message history keeps: "h" and its history sequence. A reconnecting
    /// client's Last-Event-ID then resumes exactly after it (docs/history.md).
    static func historyEventID(_ sequence: UInt64) -> String { "h\(sequence)" }

    /// The history sequence in a Last-Event-ID of the form "h<digits>", or nil.
    static func historySequence(fromEventID id: String) -> UInt64? {
        guard id.first == "h" else { return nil }
        return UInt64(id.dropFirst())
    }

    /// The cache sequence in a Last-Event-ID (the digits before "-"), or nil.
    static func sequence(fromEventID id: String) -> UInt64? {
        let digits = id.prefix { $0 != "-" }
        return digits.isEmpty ? nil : UInt64(digits)
    }

    // MARK: JSON helpers

    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    /// Whether the bytes are one JSON value, on one line.
    static func isJSONValue(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else {
            return false
        }
        // Cheap pre-check: a JSON value starts with one of these.
        guard Array("{[\"-0123456789tfn".utf8).contains(first) else { return false }
        // Newlines inside would break an SSE data line; re-encoding is not worth it.
        guard !bytes.contains(0x0A), !bytes.contains(0x0D) else { return false }
        return JSONValue.isValid(bytes)
    }

    /// Appends `bytes` (UTF-8) as a JSON string literal.
    static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
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

    static func jsonString(_ text: String) -> String {
        var out: [UInt8] = []
        appendString(Array(text.utf8), to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
