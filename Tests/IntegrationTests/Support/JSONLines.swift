import Foundation

/// The JSON objects in `text`, one per line (what the Python test clients print); lines that
/// are not a JSON object are skipped.
func jsonLines(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// What `zpub sub --json` printed of messages whose payload is a number: each one's payload and
/// its history `seq`, if it has one.
func printedNumbers(_ text: String) -> [(payload: Int, seq: UInt64?)] {
    jsonLines(text).compactMap { line in
        guard let payload = line["payload"] as? Int else { return nil }
        return (payload, (line["seq"] as? NSNumber)?.uint64Value)
    }
}
