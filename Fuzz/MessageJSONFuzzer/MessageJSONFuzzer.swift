import FoundationEssentials
import ZPubCore

/// libFuzzer entry point: any bytes as JSON, and as a message's frames (split at 0xFF bytes),
/// through what turns messages into JSON for browsers and reads JSON from them. Foundation's
/// JSONDecoder is the reference parser here (zpubd itself does not load Foundation; linking all
/// of Foundation into a fuzzer left it without coverage feedback).
@_cdecl("LLVMFuzzerTestOneInput")
public func messageJSONFuzzer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checkParser(bytes)
    let frames = bytes.split(separator: 0xFF, omittingEmptySubsequences: false).map(Array.init)
    checkMessageLines(frames)
    checkFrameCodec(bytes, frames)
    checkBase64(bytes)
    return 0
}

/// The value as the reference parses it (into zpub's tree type; the parsing is JSONDecoder's).
private func reference(_ bytes: [UInt8]) -> JSONTree? {
    try? JSONDecoder().decode(JSONTree.self, from: Data(bytes))
}

private func isObject(_ tree: JSONTree?) -> Bool {
    if case .object = tree { return true }
    return false
}

/// `bytes` with each number in `value` that JSONDecoder cannot read written as 0, so that the
/// reference judges the rest of the document. Two kinds, both valid JSON that zpub passes on as
/// written:
/// - beyond a Double's range: 1e400, or 0.5e-99999 (not zero, yet below the smallest Double).
///   RFC 8259 leaves the range to implementations; browsers' JSON.parse reads Infinity or 0.
/// - a zero with an unsigned exponent: 0e1, 0E5. JSONDecoder (swift-foundation, Swift 6)
///   refuses these while it accepts 0e+1, -0e1 and 0.0e1 (measured; JSONSerialization and
///   browsers accept all of them): a bug of the reference, which a fresh fuzzing run found.
/// Only text that RFC 8259's grammar (`numberDigits`) calls a number is replaced.
private func withinDouble(_ value: JSONValue, in bytes: [UInt8]) -> [UInt8] {
    var beyond: [Range<Int>] = []
    func collect(_ value: JSONValue) {
        switch value.kind {
        case .number:
            let text = Array(bytes[value.range])
            guard let mantissa = numberDigits(text), let number = Double(String(decoding: text, as: UTF8.self))
            else { return }
            let zeroWithUnsignedExponent =
                text.count > 2 && text[0] == UInt8(ascii: "0") && (text[1] | 0x20) == UInt8(ascii: "e")
                && text[2] != UInt8(ascii: "+") && text[2] != UInt8(ascii: "-")
            if number.isInfinite || (number == 0 && mantissa.contains(where: { $0 != UInt8(ascii: "0") }))
                || zeroWithUnsignedExponent
            {
                beyond.append(value.range)
            }
        case .array(let values): values.forEach(collect)
        case .object(let members): members.forEach { collect($0.value) }
        default: break
        }
    }
    collect(value)
    var result = bytes
    for range in beyond.reversed() { result.replaceSubrange(range, with: [UInt8(ascii: "0")]) }
    return result
}

/// RFC 8259's number grammar, written out again as a second opinion on the parser's: the
/// digits of the integer part and the fraction, or nil when `text` is not a number. (Not a Swift
/// Regex: linking the regex engine, like linking all of Foundation, left libFuzzer without
/// coverage.)
private func numberDigits(_ text: [UInt8]) -> [UInt8]? {
    var index = 0
    func digits() -> [UInt8] {
        let start = index
        while index < text.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[index]) { index += 1 }
        return Array(text[start..<index])
    }
    func skip(_ bytes: String) -> Bool {
        guard index < text.count, bytes.utf8.contains(text[index]) else { return false }
        index += 1
        return true
    }
    _ = skip("-")
    var mantissa = digits()
    guard mantissa.count == 1 || mantissa.first.map({ $0 != UInt8(ascii: "0") }) == true else { return nil }
    if skip(".") {
        let fraction = digits()
        guard !fraction.isEmpty else { return nil }
        mantissa += fraction
    }
    if skip("eE") {
        _ = skip("+-")
        guard !digits().isEmpty else { return nil }
    }
    return index == text.count ? mantissa : nil
}

private func show(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self).debugDescription }

/// zpub's JSON parser: the validating scan and the parse agree; what it accepts, the reference
/// accepts too (a payload it takes for JSON is embedded in browsers' messages as it is, and
/// one invalid byte there would break every client's parse); each value's range is that
/// value's own text.
private func checkParser(_ bytes: [UInt8]) {
    let value = JSONValue.parse(bytes)
    precondition(JSONValue.isValid(bytes) == (value != nil), "isValid and parse disagree on \(show(bytes))")
    guard let value else { return }
    precondition(
        reference(withinDouble(value, in: bytes)) != nil, "JSONValue accepts what JSONDecoder refuses: \(show(bytes))")
    checkRanges(value, in: bytes)
}

private func checkRanges(_ value: JSONValue, in bytes: [UInt8]) {
    let text = Array(bytes[value.range])
    guard let again = JSONValue.parse(text) else {
        preconditionFailure("a value's range does not parse: \(show(text))")
    }
    precondition(JSONTree(again, in: text) == JSONTree(value, in: bytes), "a value's range is another value")
    switch value.kind {
    case .object(let members): for member in members { checkRanges(member.value, in: bytes) }
    case .array(let values): for element in values { checkRanges(element, in: bytes) }
    default: break
    }
}

/// Any frames, written as browsers get them (`write`, the forwarding path's writer): one line
/// (an SSE data line must be), a JSON object the reference reads, the same message as the
/// Codable form, and the exact frames back wherever the encoding carries them. The exact
/// style, which control replies use, always gives the frames back.
private func checkMessageLines(_ frames: [[UInt8]]) {
    for seq in [nil, UInt64(42)] {
        let line = MessageJSON.write(frames, seq: seq)
        precondition(!line.contains(0x0A) && !line.contains(0x0D), "a message line holds a line break: \(show(line))")
        guard let parsed = JSONValue.parse(line) else {
            preconditionFailure("a message line is not JSON: \(show(line))")
        }
        let comparable = withinDouble(parsed, in: line)
        precondition(isObject(reference(comparable)), "a message line is not a JSON object: \(show(line))")
        // A payload with a number beyond a Double cannot be decoded by the reference: the rest
        // of the line was checked above.
        guard comparable == line else { continue }
        let expected = MessageJSON(frames: frames, style: .readable, seq: seq)
        let read: MessageJSON
        do {
            read = try JSONDecoder().decode(MessageJSON.self, from: Data(line))
        } catch {
            preconditionFailure("a message line does not decode (\(error)): \(show(line))")
        }
        precondition(read == expected, "the direct writer and the Codable form differ: \(show(line))")
        if let exact = read.messageFrames {
            precondition(exact == frames, "a message line gives other frames back: \(show(line))")
        } else {
            precondition(read.encoding == .json, "a message line lost its frames: \(show(line))")
        }
    }
    do {
        let encoded = try JSONEncoder().encode(MessageJSON(frames: frames, style: .exact))
        let read = try JSONDecoder().decode(MessageJSON.self, from: encoded)
        precondition(read.messageFrames == frames, "the exact style gives other frames back")
    } catch {
        preconditionFailure("the exact style does not round-trip: \(error)")
    }
}

/// The frame layout of history rows and binary WebSocket messages: decoding never traps, and
/// what decodes encodes back to the same bytes.
private func checkFrameCodec(_ bytes: [UInt8], _ frames: [[UInt8]]) {
    if let decoded = FrameCodec.decode(bytes) {
        precondition(FrameCodec.encode(decoded) == bytes, "FrameCodec decoded to other frames")
    }
    precondition(FrameCodec.decode(FrameCodec.encode(frames)) == frames, "FrameCodec lost frames")
}

/// Base64 as payloads and tokens use it: encoding round-trips, and a strict decode accepts
/// exactly one spelling of each byte string (a signed token cannot be respelled).
private func checkBase64(_ bytes: [UInt8]) {
    let encoded = Base64.encode(bytes)
    precondition(Base64.decode(encoded) == bytes, "base64 does not round-trip")
    let text = String(decoding: bytes, as: UTF8.self)
    if let decoded = Base64.decode(text) {
        precondition(Data(base64Encoded: text).map { Array($0) } == decoded, "base64 differs from Foundation's")
    }
    if let decoded = Base64.decodeURL(bytes) {
        let url = Base64.encode(decoded).replacing("+", with: "-")
            .replacing("/", with: "_").replacing("=", with: "")
        precondition(Array(url.utf8) == bytes, "base64url accepted a second spelling: \(show(bytes))")
    }
}
