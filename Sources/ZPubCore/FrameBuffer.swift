/// One message's frames in `FrameCodec`'s layout (each a 4-byte big-endian length, then its
/// bytes), built frame by frame into memory that is kept and refilled: how the forwarding loop
/// copies a message for the last-value cache without allocating. (An `Array`'s generic
/// `append(contentsOf:)` cost some 80 instructions a call, more than the copy it made.)
// Unchecked: used by the forwarding thread alone. So are the runtime's exclusivity checks on
// its fields, which cost more than the copying itself (callgrind: ~500 instructions per cached
// message with them).
public final class FrameBuffer: @unchecked Sendable {
    @exclusivity(unchecked) private var storage: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var capacity: Int
    /// Bytes in use.
    @exclusivity(unchecked) public private(set) var count = 0
    /// Frames appended since the last `removeAll`.
    @exclusivity(unchecked) public private(set) var frameCount = 0

    public init() {
        capacity = Self.initialCapacity
        storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    }

    deinit { storage.deallocate() }

    /// The frames, valid until the next change.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    /// Empties the buffer. Memory grown past `keptCapacity` for a large message is given
    /// back: it would otherwise stay resident for good.
    public func removeAll() {
        count = 0
        frameCount = 0
        if capacity > Self.keptCapacity {
            storage.deallocate()
            capacity = Self.initialCapacity
            storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        }
    }

    static let initialCapacity = 256
    static let keptCapacity = 1 << 20

    /// Appends `frame`, its length first.
    public func append(frame: UnsafeRawBufferPointer) {
        let end = count + 4 + frame.count
        if end > capacity { grow(to: end) }
        (storage + count).storeBytes(of: UInt32(truncatingIfNeeded: frame.count).bigEndian, as: UInt32.self)
        RawBytes.copy(storage + count + 4, from: frame)
        count = end
        frameCount += 1
    }

    /// Keeps only the first frame.
    public func keepFirstFrame() {
        guard frameCount > 1 else { return }
        count = 4 + Int(UInt32(bigEndian: storage.loadUnaligned(as: UInt32.self)))
        frameCount = 1
    }

    private func grow(to needed: Int) {
        var size = capacity * 2
        while size < needed { size *= 2 }
        let larger = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        larger.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = larger
        capacity = size
    }
}
