import NIOCore
import NIOWebSocket
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

    /// A message as a WebSocket frame: a text frame of JSON (`MessageJSON`, with `"seq"` when
    /// history keeps it) when the topic and every payload frame are UTF-8, a binary frame
    /// otherwise.
    static func webSocket(_ frames: [[UInt8]], sequence: UInt64? = nil) -> WebSocketPayload {
        guard let text = MessageJSON.readableText(frames, seq: sequence) else { return .binary(binary(frames)) }
        return .text(text)
    }

    /// A message as the data of an SSE event (which carries text only): `MessageJSON`, in base64
    /// when a frame is not UTF-8.
    static func sseData(_ frames: [[UInt8]], sequence: UInt64? = nil) -> [UInt8] {
        MessageJSON.write(frames, seq: sequence)
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
    /// passed, then the gateway's own message number ("<sequence>-<number>"), and, when
    /// `history` is not 0, the last history sequence it had passed ("-h<history>"). A
    /// reconnecting client's Last-Event-ID gives back both positions: a client whose prefixes
    /// mix kept and unkept topics, and whose last event was an unkept one, resumes its kept
    /// topics exactly from there.
    static func eventID(sequence: UInt64, number: UInt64, history: UInt64 = 0) -> String {
        history == 0 ? "\(sequence)-\(number)" : "\(sequence)-\(number)-h\(history)"
    }

    /// The SSE event id of a message history keeps: "h" and its history sequence. A reconnecting
    /// client's Last-Event-ID then resumes exactly after it (docs/history.md).
    static func historyEventID(_ sequence: UInt64) -> String { "h\(sequence)" }

    /// The history sequence in a Last-Event-ID of the form "h<digits>", or nil.
    static func historySequence(fromEventID id: String) -> UInt64? {
        guard id.first == "h" else { return nil }
        return UInt64(id.dropFirst())
    }

    /// The history sequence a cache id carries (the digits after "-h"), or nil.
    static func historySequence(inCacheEventID id: String) -> UInt64? {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].first == "h" else { return nil }
        return UInt64(parts[2].dropFirst())
    }

    /// The cache sequence in a Last-Event-ID (the digits before "-"), or nil.
    static func sequence(fromEventID id: String) -> UInt64? {
        let digits = id.prefix { $0 != "-" }
        return digits.isEmpty ? nil : UInt64(digits)
    }

    static func jsonString(_ text: String) -> String { MessageJSON.jsonString(text) }

    /// A WebSocket client's `{"type":"subscribed","prefix":...}` (with `"since"` when a replay
    /// comes with it): the reply to a `subscribe`, and the notice of a URL's prefix.
    static func subscribedJSON(prefix: String, since: UInt64? = nil) -> String {
        "{\"type\":\"subscribed\",\"prefix\":\(jsonString(prefix))\(since.map { ",\"since\":\($0)" } ?? "")}"
    }

    /// What a client is told of a refusal or a failure, over WebSocket as a text frame and over
    /// SSE as an `error` event: `{"type":"error","code":...,"message":...}`, with the prefix
    /// or topic it concerns.
    static func errorJSON(code: String, _ message: String, prefix: String? = nil, topic: String? = nil) -> String {
        var text = "{\"type\":\"error\",\"code\":\(jsonString(code)),\"message\":\(jsonString(message))"
        if let prefix { text += ",\"prefix\":\(jsonString(prefix))" }
        if let topic { text += ",\"topic\":\(jsonString(topic))" }
        return text + "}"
    }

    /// An HTTP/1.1 chunk (RFC 9112, 7.1) holding `bytes`: an SSE event framed once per message
    /// and written as is to every client's stream (`RawWriter`), instead of NIO's encoder
    /// framing it again for each client.
    static func chunk(_ bytes: [UInt8]) -> ByteBuffer {
        let size = Array(String(bytes.count, radix: 16).utf8)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(size.count + bytes.count + 4)
        buffer.writeBytes(size)
        buffer.writeStaticString("\r\n")
        buffer.writeBytes(bytes)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// An SSE stream's last event, `error` with `data`, as its chunk and the chunk that ends a
    /// chunked body (RFC 9112, 7.1: size 0, no trailers): a stream the gateway ends is ended as
    /// HTTP says, not cut (curl exited 18, "transfer closed with outstanding read data").
    static func lastServerSentEvent(error data: [UInt8]) -> ByteBuffer {
        var buffer = chunk(serverSentEvent(id: nil, event: "error", data: data))
        buffer.writeStaticString("0\r\n\r\n")
        return buffer
    }

    /// A whole WebSocket frame from the server (RFC 6455 5.2: FIN, the opcode, the length, no
    /// mask) holding `bytes`: framed once per message and written as is to every client
    /// (`RawWriter`), instead of NIO's frame encoder framing it again for each one.
    static func webSocketFrame(opcode: WebSocketOpcode, _ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(bytes.count + 10)
        buffer.writeInteger(UInt8(0x80) | UInt8(webSocketOpcode: opcode))
        switch bytes.count {
        case ..<126:
            buffer.writeInteger(UInt8(bytes.count))
        case ...0xFFFF:
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(bytes.count))
        default:
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(bytes.count))
        }
        buffer.writeBytes(bytes)
        return buffer
    }

    /// From now until `epochSeconds` (a JWT's exp), at least zero.
    static func timeUntil(_ epochSeconds: Double) -> TimeAmount {
        // Clamped: a token may carry any exp, and a Double beyond Int64 would trap.
        let seconds = min(max(0, epochSeconds - SystemClock.wallSeconds()), 100 * 365 * 86_400)
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}
