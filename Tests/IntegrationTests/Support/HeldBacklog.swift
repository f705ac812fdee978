import Foundation
import XCTest
import ZeroMQ

/// The setting of the catch-up tests: subscribers' queues of 100 messages, producers' queues
/// without a limit (or of `receiveHWM`), and by default pacing with no time limit that matters
/// (600 s); the stop's drain and `catch_up_stall_ms` as given, or by default.
func catchUpConfiguration(
    milliseconds: Int = 600_000, sendHWM: Int = 100, receiveHWM: Int = 0, drainMilliseconds: Int? = nil,
    stallMilliseconds: Int? = nil
) -> String {
    let drain = drainMilliseconds.map { "shutdown_drain_ms = \($0)\n" } ?? ""
    let stall = stallMilliseconds.map { "catch_up_stall_ms = \($0)\n" } ?? ""
    return
        "[daemon]\nresume_catch_up_ms = \(milliseconds)\n\(drain)\(stall)[sockets]\nsend_hwm = \(sendHWM)\nreceive_hwm = \(receiveHWM)\n"
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

    /// Waits until the catch-up holds a message for a subscriber's room.
    func waitForAMessageHeldInTheCatchUp(file: StaticString = #filePath, line: UInt = #line) throws {
        try Wait.until("a message waits for a subscriber", file: file, line: line) {
            try stats().catchUp?.waitingMilliseconds != nil
        }
    }
}

/// The number a `holdBacklog` message starts with, -1 if none.
func heldNumber(_ frames: [[UInt8]]) -> Int {
    Int(String(decoding: frames[1], as: UTF8.self).prefix { $0 != " " }) ?? -1
}

extension Socket {
    /// Reads `holdBacklog`'s numbered messages until none comes for 3 s (the producer sent all
    /// of them at once). `slowly`: 500 at a time with 20 ms between (alive, slower than zpubd).
    /// `once2000` runs when 2,000 have come, nothing read meanwhile: the queues towards this
    /// subscriber fill, and a catch-up holds a message for it.
    func receiveNumbered(slowly: Bool, once2000: (() throws -> Void)? = nil) throws -> [Int] {
        var numbers: [Int] = []
        while let frames = try receiveFrames(timeoutMilliseconds: 3_000) {
            numbers.append(heldNumber(frames))
            if slowly && numbers.count % 500 == 0 { usleep(20_000) }
            if numbers.count == 2_000 { try once2000?() }
        }
        return numbers
    }
}
