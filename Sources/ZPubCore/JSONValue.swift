/// A JSON value (RFC 8259) parsed just as far as the gateway needs: the kind of each value,
/// its members and strings, and where its text lies in the input, so that a value can be passed
/// on exactly as the client wrote it.
///
/// Written here rather than taken from Foundation's JSONSerialization, which would load all of
/// Foundation into zpubd (docs/performance.md, "Memory"); it also runs for every message a
/// WebSocket or SSE client receives (`MessageJSON`), where a validating scan that
/// builds nothing is what is wanted. Nesting is limited (`maxDepth`), so hostile input cannot
/// exhaust the stack.
public struct JSONValue: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case object([Member])
        case array([JSONValue])
        case string(String)
        case number
        case bool(Bool)
        case null
    }

    public struct Member: Equatable, Sendable {
        public var key: String
        public var value: JSONValue
    }

    public var kind: Kind
    /// The value's text in the parsed bytes (without surrounding whitespace).
    public var range: Range<Int>

    public static let maxDepth = 64

    /// The one JSON value in `bytes` (whitespace around it allowed), or nil if the bytes are not
    /// exactly one valid JSON value in UTF-8.
    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        var parser = JSONParser(bytes: bytes, building: true)
        return parser.document()
    }

    /// Whether `bytes` are exactly one valid JSON value in UTF-8; builds nothing.
    public static func isValid(_ bytes: [UInt8]) -> Bool {
        guard String(validating: bytes, as: UTF8.self) != nil else { return false }
        var parser = JSONParser(bytes: bytes, building: false)
        return parser.document() != nil
    }

    /// Why `bytes` are not exactly one JSON value, in words for the client that sent them (nil
    /// when they are one): "not UTF-8", "nested deeper than 64 levels", "a lone surrogate
    /// escape at byte 12", "invalid at byte 7", "more after the value at byte 9". Parses
    /// again: for the refusal only, never in the forwarding of a valid value.
    public static func problem(in bytes: [UInt8]) -> String? {
        guard String(validating: bytes, as: UTF8.self) != nil else { return "not UTF-8" }
        var parser = JSONParser(bytes: bytes, building: false)
        guard parser.document() == nil else { return nil }
        return parser.problem ?? "invalid at byte \(parser.index)"
    }

    /// The member called `key` of an object (the last one, if the key repeats), else nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = kind else { return nil }
        return members.last { $0.key == key }?.value
    }

    public var string: String? {
        if case .string(let text) = kind { return text }
        return nil
    }

    public var strings: [String]? {
        guard case .array(let values) = kind else { return nil }
        var result: [String] = []
        for value in values {
            guard let text = value.string else { return nil }
            result.append(text)
        }
        return result
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    /// False: only validate (no strings decoded, no containers collected).
    let building: Bool
    var index = 0
    var depth = 0
    /// What failed, where a byte position alone would not say it (`JSONValue.problem(in:)`).
    var problem: String?

    init(bytes: [UInt8], building: Bool) {
        self.bytes = bytes
        self.building = building
    }

    mutating func document() -> JSONValue? {
        skipWhitespace()
        guard let value = value() else { return nil }
        skipWhitespace()
        guard index == bytes.count else {
            problem = "more after the value at byte \(index)"
            return nil
        }
        return value
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    private mutating func expect(_ byte: UInt8) -> Bool {
        guard current == byte else { return false }
        index += 1
        return true
    }

    private mutating func value() -> JSONValue? {
        let start = index
        let kind: JSONValue.Kind
        guard let first = current else { return nil }
        switch first {
        case UInt8(ascii: "{"):
            guard let object = object() else { return nil }
            kind = object
        case UInt8(ascii: "["):
            guard let array = array() else { return nil }
            kind = array
        case UInt8(ascii: "\""):
            guard let text = string() else { return nil }
            kind = .string(text)
        case UInt8(ascii: "t"):
            guard literal("true") else { return nil }
            kind = .bool(true)
        case UInt8(ascii: "f"):
            guard literal("false") else { return nil }
            kind = .bool(false)
        case UInt8(ascii: "n"):
            guard literal("null") else { return nil }
            kind = .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard number() else { return nil }
            kind = .number
        default:
            return nil
        }
        return JSONValue(kind: kind, range: start..<index)
    }

    private mutating func object() -> JSONValue.Kind? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JSONValue.maxDepth else { return tooDeep() }
        guard expect(UInt8(ascii: "{")) else { return nil }
        var members: [JSONValue.Member] = []
        skipWhitespace()
        if expect(UInt8(ascii: "}")) { return .object(members) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\""), let key = string() else { return nil }
            skipWhitespace()
            guard expect(UInt8(ascii: ":")) else { return nil }
            skipWhitespace()
            guard let value = value() else { return nil }
            if building { members.append(.init(key: key, value: value)) }
            skipWhitespace()
            if expect(UInt8(ascii: "}")) { return .object(members) }
            guard expect(UInt8(ascii: ",")) else { return nil }
        }
    }

    private mutating func array() -> JSONValue.Kind? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JSONValue.maxDepth else { return tooDeep() }
        guard expect(UInt8(ascii: "[")) else { return nil }
        var values: [JSONValue] = []
        skipWhitespace()
        if expect(UInt8(ascii: "]")) { return .array(values) }
        while true {
            skipWhitespace()
            guard let value = value() else { return nil }
            if building { values.append(value) }
            skipWhitespace()
            if expect(UInt8(ascii: "]")) { return .array(values) }
            guard expect(UInt8(ascii: ",")) else { return nil }
        }
    }

    private mutating func tooDeep() -> JSONValue.Kind? {
        problem = "nested deeper than \(JSONValue.maxDepth) levels"
        return nil
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
        index += count
        return true
    }

    private mutating func digits() -> Bool {
        let start = index
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
        return index > start
    }

    /// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    private mutating func number() -> Bool {
        _ = expect(UInt8(ascii: "-"))
        if expect(UInt8(ascii: "0")) {
            // No leading zeros: "01" is not a number.
        } else if !digits() {
            return false
        }
        if expect(UInt8(ascii: ".")) && !digits() { return false }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            if !digits() { return false }
        }
        return true
    }

    /// A string literal; its decoded text when building (else ""), nil if it is not valid.
    private mutating func string() -> String? {
        guard expect(UInt8(ascii: "\"")) else { return nil }
        var decoded: [UInt8] = []
        var runStart = index
        while let byte = current {
            switch byte {
            case UInt8(ascii: "\""):
                if building { decoded += bytes[runStart..<index] }
                index += 1
                return building ? String(decoding: decoded, as: UTF8.self) : ""
            case UInt8(ascii: "\\"):
                if building { decoded += bytes[runStart..<index] }
                index += 1
                guard let escaped = escape() else { return nil }
                if building { decoded += escaped }
                runStart = index
            case 0..<0x20:
                return nil  // control characters must be escaped
            default:
                index += 1
            }
        }
        return nil  // unterminated
    }

    /// The bytes one escape (after its backslash) stands for, in UTF-8.
    private mutating func escape() -> [UInt8]? {
        guard let byte = current else { return nil }
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return [byte]
        case UInt8(ascii: "b"): return [0x08]
        case UInt8(ascii: "f"): return [0x0C]
        case UInt8(ascii: "n"): return [0x0A]
        case UInt8(ascii: "r"): return [0x0D]
        case UInt8(ascii: "t"): return [0x09]
        case UInt8(ascii: "u"):
            let escapeStart = index - 2
            guard var scalar = hex4() else { return nil }
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low one.
                guard expect(UInt8(ascii: "\\")), expect(UInt8(ascii: "u")), let low = hex4(),
                    (0xDC00..<0xE000).contains(low)
                else {
                    problem = "a lone surrogate escape at byte \(escapeStart)"
                    return nil
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                problem = "a lone surrogate escape at byte \(escapeStart)"
                return nil
            }
            guard let unicode = Unicode.Scalar(scalar) else { return nil }
            return Array(String(Character(unicode)).utf8)
        default:
            return nil
        }
    }

    private mutating func hex4() -> UInt32? {
        guard bytes.count - index >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }
}
