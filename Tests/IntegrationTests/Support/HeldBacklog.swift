import Foundation
import XCTest

/// The setting of the catch-up tests: subscribers' queues of 100 messages, producers' queues
/// without a limit, and by default pacing that only the stall (a second) ends; the stop's
/// drain as configured (`drainMilliseconds`) or by default.
func catchUpConfiguration(milliseconds: Int = 600_000, sendHWM: Int = 100, drainMilliseconds: Int? = nil) -> String {
    let drain = drainMilliseconds.map { "shutdown_drain_ms = \($0)\n" } ?? ""
    return "[daemon]\nresume_catch_up_ms = \(milliseconds)\n\(drain)[sockets]\nsend_hwm = \(sendHWM)\nreceive_hwm = 0\n"
}

extension Daemon {
    /// Pauses forwarding, has `zpub pub` send `count` numbered lines (`bytes` long each, with
    /// padding) under `topic` and exit, which it does once zpubd's queue holds them all, then
    /// resumes unless `resume` is false. Returns when it sent RESUME (or would have).
    @discardableResult
    func holdBacklog(
        count: Int, topic: String, bytes: Int = 0, resume: Bool = true, file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> ContinuousClock.Instant {
        XCTAssertEqual(try json("PAUSE")["forwarding"] as? String, "paused", file: file, line: line)
        let padding = bytes > 0 ? " " + String(repeating: "x", count: bytes) : ""
        let lines = (0..<count).map { "\($0)\(padding)\n" }.joined()
        let run = try Run.program(Binaries.zpub, ["pub", "--endpoint", pull, topic], stdin: lines)
        XCTAssertEqual(run.status, 0, run.stderr, file: file, line: line)
        let resumed = ContinuousClock.now
        guard resume else { return resumed }
        XCTAssertEqual(try json("RESUME")["forwarding"] as? String, "running", file: file, line: line)
        return resumed
    }
}
