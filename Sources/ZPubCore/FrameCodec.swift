/// Frames in one blob: for each, a 4-byte big-endian length and its bytes. The one layout for
/// a whole multipart message as bytes: the history store's rows, the history queue's records
/// and the HTTP gateway's binary WebSocket messages.
public enum FrameCodec {
    public static func encode(_ frames: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frames.reduce(0) { $0 + $1.count + 4 })
        for frame in frames {
            let count = UInt32(frame.count)
            out.append(UInt8(count >> 24))
            out.append(UInt8(count >> 16 & 0xFF))
            out.append(UInt8(count >> 8 & 0xFF))
            out.append(UInt8(count & 0xFF))
            out += frame
        }
        return out
    }

    /// Nil when the bytes are not a sequence of length-prefixed frames.
    public static func decode(_ blob: ArraySlice<UInt8>) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        guard forEachFrame(in: blob, { frames.append(Array(blob[$0])) }) else { return nil }
        return frames
    }

    /// Calls `body` with where each frame's bytes lie (in `blob`'s indices), in order, without
    /// copying them; false, after the frames before it, when a length runs past the end.
    @inlinable
    public static func forEachFrame(in blob: ArraySlice<UInt8>, _ body: (Range<Int>) -> Void) -> Bool {
        var index = blob.startIndex
        while index < blob.endIndex {
            // Subtractions, not additions: a length near Int's limit must not overflow.
            guard blob.endIndex - index >= 4 else { return false }
            let count =
                Int(blob[index]) << 24 | Int(blob[index + 1]) << 16 | Int(blob[index + 2]) << 8 | Int(blob[index + 3])
            index += 4
            guard blob.endIndex - index >= count else { return false }
            body(index..<(index + count))
            index += count
        }
        return true
    }

    public static func decode(_ blob: [UInt8]) -> [[UInt8]]? { decode(blob[...]) }
}
