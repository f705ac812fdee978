import ZPubCore

/// A request's path and query parameters, percent-decoded ("+" is a space in the query).
struct RequestTarget: Equatable {
    var path: String
    var query: [(name: String, value: String)]

    static func == (lhs: RequestTarget, rhs: RequestTarget) -> Bool {
        lhs.path == rhs.path && lhs.query.map(\.name) == rhs.query.map(\.name)
            && lhs.query.map(\.value) == rhs.query.map(\.value)
    }

    init(path: String, query: [(name: String, value: String)] = []) {
        self.path = path
        self.query = query
    }

    /// Nil when the URI is not an origin-form path or its escapes are not UTF-8.
    init?(uri: String) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let rawPath = parts.first, rawPath.hasPrefix("/"),
            let path = Self.decode(rawPath, plusIsSpace: false)
        else { return nil }
        self.path = path
        query = []
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") where !pair.isEmpty {
                let nameValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = Self.decode(nameValue[0], plusIsSpace: true),
                    let value = Self.decode(nameValue.count > 1 ? nameValue[1] : "", plusIsSpace: true)
                else { return nil }
                query.append((name, value))
            }
        }
    }

    func values(_ name: String) -> [String] {
        query.filter { $0.name == name }.map(\.value)
    }

    func value(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    static func decode(_ text: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(Hex.value(of:)),
                    let low = iterator.next().flatMap(Hex.value(of:))
                else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else if byte == UInt8(ascii: "+") && plusIsSpace {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
