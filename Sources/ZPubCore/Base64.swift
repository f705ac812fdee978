/// Base64 (RFC 4648): the standard alphabet with padding, so JSON replies can carry binary
/// frames; and base64url without padding (section 5), as JWTs carry their parts.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Each byte's value in an alphabet, 0xFF if it is not in it: decoding looks each byte up
    /// once instead of searching the alphabet (a published frame or a JWT can be KiBs long).
    private static func values(of alphabet: [UInt8]) -> [UInt8] {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }
    private static let standardValues = values(of: alphabet)
    private static let urlValues = values(of: Array(alphabet.dropLast(2)) + Array("-_".utf8))

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard base64 with its padding; nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        var padding = 0
        for byte in text.utf8.reversed() {
            guard byte == UInt8(ascii: "=") else { break }
            padding += 1
        }
        let utf8 = text.utf8
        guard padding <= 2, (utf8.count - padding) % 4 != 1, utf8.count % 4 == 0 else { return nil }
        return decode(utf8.dropLast(padding), values: standardValues, canonical: false)
    }

    /// base64url without padding, strictly: the bits after the last whole byte must be zero, so
    /// that each byte string has exactly one spelling (a signed token cannot be respelled into
    /// another accepted string; RFC 4648 3.5 lets decoders refuse them).
    public static func decodeURL(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        return decode(text, values: urlValues, canonical: true)
    }

    /// Characters without padding; a count that is 1 modulo 4 has been refused by the caller.
    private static func decode(_ text: some Collection<UInt8>, values: [UInt8], canonical: Bool) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var bits: UInt32 = 0
        var bitCount = 0
        for byte in text {
            let value = values[Int(byte)]
            guard value != 0xFF else { return nil }
            bits = bits << 6 | UInt32(value)
            bitCount += 6
            if bitCount >= 8 {
                bitCount -= 8
                out.append(UInt8(truncatingIfNeeded: bits >> UInt32(bitCount)))
            }
        }
        // What is left are the spare low bits of the last character (2 or 4 of them).
        if canonical && bits & ((1 << UInt32(bitCount)) - 1) != 0 { return nil }
        return out
    }
}
