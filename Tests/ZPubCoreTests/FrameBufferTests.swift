import XCTest

@testable import ZPubCore

final class FrameBufferTests: XCTestCase {
    private func append(_ frame: [UInt8], to buffer: FrameBuffer) {
        frame.withUnsafeBytes { buffer.append(frame: $0) }
    }

    /// What it builds is what `FrameCodec` reads, for frames of every small size (the copy
    /// takes a different path below 4, 8, 16 and 32 bytes) and for ones that make it grow.
    func testFramesComeOutAsFrameCodecLaysThemOut() {
        let buffer = FrameBuffer()
        for size in [0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 255, 256, 5_000, 2 << 20] {
            buffer.removeAll()
            let frames = [Array("topic.\(size)".utf8), (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }, [7]]
            for frame in frames { append(frame, to: buffer) }
            XCTAssertEqual(buffer.frameCount, 3)
            XCTAssertEqual(Array(buffer.bytes), FrameCodec.encode(frames), "payload of \(size) bytes")
        }
        // After a buffer grown past the kept capacity was given back.
        buffer.removeAll()
        append([1, 2, 3], to: buffer)
        XCTAssertEqual(Array(buffer.bytes), FrameCodec.encode([[1, 2, 3]]))
    }

    func testKeepFirstFrameLeavesTheTopicAlone() {
        let buffer = FrameBuffer()
        append(Array("t.a".utf8), to: buffer)
        buffer.keepFirstFrame()
        XCTAssertEqual(Array(buffer.bytes), FrameCodec.encode([Array("t.a".utf8)]))
        append(Array("payload".utf8), to: buffer)
        append(Array("more".utf8), to: buffer)
        buffer.keepFirstFrame()
        XCTAssertEqual(buffer.frameCount, 1)
        XCTAssertEqual(Array(buffer.bytes), FrameCodec.encode([Array("t.a".utf8)]))
    }
}
