/// How a topic or prefix (raw bytes) is shown to people and in JSON: as text when it is valid
/// UTF-8, with a hex spelling alongside when it is not.
public enum TopicText {
    /// The bytes as text; invalid UTF-8 sequences become U+FFFD.
    public static func display(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// Lower-case hex of the bytes, or nil when they are valid UTF-8 (then `display` is exact).
    public static func hexIfNotUTF8(_ bytes: [UInt8]) -> String? {
        if String(validating: bytes, as: UTF8.self) != nil { return nil }
        return Hex.encode(bytes)
    }

}
