import XCTest

@testable import ZPubCore

final class ControlRequestTests: XCTestCase {
    private func parse(_ text: String, max: Int = 4096) -> Result<ControlRequest, ControlError> {
        ControlRequest.parse(Array(text.utf8), maxSize: max)
    }

    func testCommandsAreCaseInsensitiveAndTakeAnArgument() throws {
        XCTAssertEqual(try parse("stats").get(), ControlRequest(command: .stats))
        XCTAssertEqual(try parse("  PING\n").get(), ControlRequest(command: .ping))
        // CRLF (a Windows client, telnet): "\r\n" is one Swift Character.
        XCTAssertEqual(try parse("STATS\r\n").get(), ControlRequest(command: .stats))
        XCTAssertEqual(
            try parse("TOPICS orders.\r\n").get(), ControlRequest(command: .topics, argument: Array("orders.".utf8)))
        XCTAssertEqual(
            try parse("TOPICS weather.").get(), ControlRequest(command: .topics, argument: Array("weather.".utf8)))
        XCTAssertEqual(
            try parse("SUBSCRIPTIONS a b ").get(),
            ControlRequest(command: .subscriptions, argument: Array("a b ".utf8)),
            "the argument is everything after the separating space, inner and trailing spaces kept")
        // A prefix is kept byte for byte, leading spaces too: `zpub subscriptions " lead"`
        // answered for "lead".
        XCTAssertEqual(
            try parse("SUBSCRIPTIONS   lead").get(),
            ControlRequest(command: .subscriptions, argument: Array("  lead".utf8)))
        XCTAssertEqual(
            try parse("TOPICS\t lead").get(), ControlRequest(command: .topics, argument: Array(" lead".utf8)))
        // The other commands' arguments start after the run of spaces, as before.
        XCTAssertEqual(try parse("SNAPSHOT   tok a").get().snapshotArguments?.token, "tok")
        // The prefix after the token is everything past its one space, as TOPICS' is: with
        // every leading space dropped, " state." was answered as "state." (an audit).
        XCTAssertEqual(try parse("SNAPSHOT tok  state.").get().snapshotArguments?.prefix, Array(" state.".utf8))
        XCTAssertEqual(try parse("SNAPSHOT tok state.").get().snapshotArguments?.prefix, Array("state.".utf8))
        XCTAssertEqual(try parse("SNAPSHOT tok").get().snapshotArguments?.prefix, [])
        XCTAssertEqual(try parse("REPLAY tok 5  o.").get().replayArguments?.prefix, Array(" o.".utf8))
        XCTAssertEqual(try parse("REPLAY tok  5 o.").get().replayArguments?.since, 5, "spaces before the number")
        XCTAssertEqual(try parse("STATS   ").get(), ControlRequest(command: .stats))
        XCTAssertEqual(try parse("stAts").get(), ControlRequest(command: .stats), "case-insensitive, in ASCII")
        XCTAssertThrowsError(try parse("\u{17F}tats").get(), "not by Unicode's rules (ſ is no s)")
    }

    func testMalformedRequestsGetErrorCodes() {
        func code(_ result: Result<ControlRequest, ControlError>) -> ControlError.Code? {
            if case .failure(let error) = result { return error.code }
            return nil
        }
        XCTAssertEqual(code(parse("")), .emptyRequest)
        XCTAssertEqual(code(parse("   ")), .emptyRequest)
        XCTAssertEqual(code(parse("FROB")), .unknownCommand)
        XCTAssertEqual(code(parse("STATS now")), .badArgument)
        XCTAssertEqual(code(parse(String(repeating: "x", count: 100), max: 64)), .requestTooLarge)
        XCTAssertEqual(code(ControlRequest.parse([0xFF, 0xFE], maxSize: 64)), .invalidUTF8)
        XCTAssertEqual(code(ControlRequest.parse(frames: [Array("STATS".utf8), []], maxSize: 64)), .badRequest)
        XCTAssertEqual(code(ControlRequest.parse(frames: [], maxSize: 64)), .badRequest)
    }

    func testErrorReplyHasTheDocumentedShape() throws {
        let reply = ControlErrorReply(error: ControlError(.unknownCommand, "nope"))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(reply)) as? [String: Any]
        let error = json?["error"] as? [String: Any]
        XCTAssertEqual(error?["code"] as? String, "unknown_command")
        XCTAssertEqual(error?["message"] as? String, "nope")
    }
}
