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
        var index = blob.startIndex
        while index < blob.endIndex {
            guard index + 4 <= blob.endIndex else { return nil }
            let count =
                Int(blob[index]) << 24 | Int(blob[index + 1]) << 16 | Int(blob[index + 2]) << 8 | Int(blob[index + 3])
            index += 4
            guard index + count <= blob.endIndex else { return nil }
            frames.append(Array(blob[index..<index + count]))
            index += count
        }
        return frames
    }

    public static func decode(_ blob: [UInt8]) -> [[UInt8]]? { decode(blob[...]) }
}
