import XCTest
import ZPubCore

/// The length-prefixed layout of a whole message: round trip, and refusal of anything cut short.
final class FrameCodecTests: XCTestCase {
    func testFramesRoundTripAndTruncatedBlobsAreRefused() {
        let frames: [[UInt8]] = [[1, 2, 3], [], [4]]
        XCTAssertEqual(FrameCodec.encode(frames), [0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 4])
        XCTAssertEqual(FrameCodec.decode(FrameCodec.encode(frames)), frames)
        XCTAssertNil(FrameCodec.decode(Array(FrameCodec.encode(frames).dropLast())))
        XCTAssertNil(FrameCodec.decode([0, 0, 0]))
        XCTAssertEqual(FrameCodec.decode([]), [])
    }
}
