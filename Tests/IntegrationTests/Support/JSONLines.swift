import Foundation

/// The JSON objects in `text`, one per line (what the Python test clients print); lines that
/// are not a JSON object are skipped.
func jsonLines(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}
