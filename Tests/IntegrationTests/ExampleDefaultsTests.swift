import Foundation
import XCTest
import ZPubCore

/// The examples run against `make run` with no arguments: each endpoint they default to (for
/// when ZPUB_CONTROL, ZPUB_XPUB, ZPUB_PULL or ZPUB_XSUB is not set) must be zpubd's default for
/// that socket. The tests that run them set every variable, so nothing else would notice: the
/// resuming subscribers asked a control port nobody listens on (5559) until 2026-12-05.
final class ExampleDefaultsTests: XCTestCase {
    func testEveryExampleDefaultsToZpubdsOwnEndpoints() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples")
        let defaults: [String: [String]] = [
            "CONTROL": BrokerConfiguration.Defaults.controlEndpoints,
            "XPUB": BrokerConfiguration.Defaults.xpubEndpoints,
            "PULL": BrokerConfiguration.Defaults.pullEndpoints,
            "XSUB": BrokerConfiguration.Defaults.xsubEndpoints,
        ]
        // os.environ.get("ZPUB_XPUB", "tcp://..."), getenv("ZPUB_PULL") ?: "tcp://...",
        // ${ZPUB_CONTROL:-tcp://...}: a default, not the other values comments show.
        let pattern = try NSRegularExpression(
            pattern: #"ZPUB_(CONTROL|XPUB|PULL|XSUB)(?:", "|"\) \?: "|:-)((?:tcp|ipc)://[^"'\s}]+)"#)
        var checked = 0
        let files = try XCTUnwrap(FileManager.default.enumerator(at: examples, includingPropertiesForKeys: nil))
        for case let file as URL in files where ["py", "php", "sh"].contains(file.pathExtension) {
            let text = try String(contentsOf: file, encoding: .utf8)
            let whole = NSRange(text.startIndex..., in: text)
            for match in pattern.matches(in: text, range: whole) {
                let socket = String(text[Range(match.range(at: 1), in: text)!])
                let endpoint = String(text[Range(match.range(at: 2), in: text)!])
                XCTAssertTrue(
                    defaults[socket, default: []].contains(endpoint),
                    "\(file.lastPathComponent): ZPUB_\(socket) defaults to \(endpoint), zpubd's is \(defaults[socket, default: []])"
                )
                checked += 1
            }
        }
        // The producers, subscribers, resuming subscribers and shell example, at least.
        XCTAssertGreaterThanOrEqual(checked, 8, "the pattern no longer finds the examples' defaults")
    }
}
