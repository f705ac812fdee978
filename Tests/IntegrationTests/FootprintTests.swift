import Foundation
import XCTest

/// What zpubd keeps resident. Not a measurement of megabytes (that is the benchmark's job,
/// docs/performance.md): a check that the big libraries it deliberately avoids stay out.
/// Foundation with its ICU data costs about 6 MiB of every zpubd's memory, for nothing that
/// FoundationEssentials and POSIX do not do; one stray `import Foundation` in a module zpubd
/// links would bring it all back.
final class FootprintTests: XCTestCase {
    func testZpubdDoesNotLoadFoundationOrICU() throws {
        // With the gateway on, so that its code paths (JSON, threads) are in use too.
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: "[http]\nenabled = true\nlisten = \"127.0.0.1:\(port)\"")
        XCTAssertEqual(try daemon.request("HEALTH").map { String(decoding: $0, as: UTF8.self) }?.contains("ok"), true)
        // Read to the end: /proc files report size 0, and a sized read stops after a page.
        let handle = try FileHandle(
            forReadingFrom: URL(fileURLWithPath: "/proc/\(daemon.process.processIdentifier)/maps"))
        let maps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        let libraries = Set(maps.split(separator: "\n").compactMap { $0.split(separator: " ").last }.map(String.init))
            .filter { $0.hasSuffix(".so") || $0.contains(".so.") }
        for unwanted in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            XCTAssertFalse(
                libraries.contains { $0.hasSuffix("/" + unwanted) },
                "zpubd maps \(unwanted): a module it links imports Foundation instead of FoundationEssentials")
        }
        XCTAssertTrue(
            libraries.contains { $0.contains("libzmq.so") }, "the check reads the right process: \(libraries)")
    }
}
