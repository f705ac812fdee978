/// A file's permission bits, shown as the configuration file writes them: an octal string
/// ("0660"), in CONFIG's JSON too, where the number 432 was nothing anyone had written.
public struct FileMode: Codable, Equatable, Sendable {
    public var bits: Int

    public init(_ bits: Int) { self.bits = bits }

    /// As the configuration file writes it ("0660"); nil for text that is no octal number.
    public init?(octal text: String) {
        guard let bits = Int(text, radix: 8) else { return nil }
        self.bits = bits
    }

    /// At least four digits, as chmod's users write them: "0660", "0600", "0000".
    public var octal: String {
        let digits = String(bits, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let mode = FileMode(octal: text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "\(text) is not an octal file mode such as \"0660\"")
            }
            self = mode
        } else {
            bits = try container.decode(Int.self)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(octal)
    }
}
