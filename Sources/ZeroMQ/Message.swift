import CZeroMQ

/// One frame of a ZeroMQ message, owning a `zmq_msg_t` at a fixed heap address.
///
/// A `zmq_msg_t` must never be copied by value (short frames live inline and appear to survive a
/// copy; long ones are reference counted and double-free). This class allocates the `zmq_msg_t`
/// once and is meant to be *reused*: receiving into it replaces its content, sending it leaves it
/// empty. A forwarding loop therefore needs one `Message` and allocates nothing per message.
public final class Message {
    @usableFromInline let pointer: UnsafeMutablePointer<zmq_msg_t>

    /// An empty frame.
    public init() {
        pointer = .allocate(capacity: 1)
        zmq_msg_init(pointer)
    }

    /// A frame holding a copy of `bytes`.
    public convenience init(bytes: some Collection<UInt8>) {
        self.init()
        replace(with: bytes)
    }

    /// A frame sharing `other`'s content and its connection's metadata (`zmq_msg_copy`): while
    /// it lives, so does that metadata, whose address then names no other connection.
    public convenience init(copyOf other: Message) {
        self.init()
        zmq_msg_copy(pointer, other.pointer)
    }

    /// Makes this frame share `other`'s content (`zmq_msg_copy`: a long frame's bytes are
    /// referenced, not copied; nothing is allocated), releasing what it held.
    public func share(_ other: Message) {
        zmq_msg_copy(pointer, other.pointer)
    }

    /// Takes `other`'s content (`zmq_msg_move`), leaving `other` empty.
    public func take(from other: Message) {
        zmq_msg_move(pointer, other.pointer)
    }

    deinit {
        zmq_msg_close(pointer)
        pointer.deallocate()
    }

    /// Replaces the content with a copy of `bytes`.
    public func replace(with bytes: some Collection<UInt8>) {
        zmq_msg_close(pointer)
        zmq_msg_init_size(pointer, bytes.count)
        let destination = UnsafeMutableRawBufferPointer(start: zmq_msg_data(pointer), count: bytes.count)
        destination.copyBytes(from: bytes)
    }

    /// The frame's size in bytes.
    /// (The accessors are inlinable: a forwarding loop calls them for every frame, and as
    /// generic calls across modules they cost more than the libzmq calls inside them.)
    @inlinable public var count: Int { zmq_msg_size(pointer) }

    /// True when more frames of the same message follow this one (valid after a receive).
    @inlinable public var hasMore: Bool { zmq_msg_more(pointer) != 0 }

    /// Calls `body` with the frame's bytes; the buffer is valid only inside `body`.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(pointer), count: zmq_msg_size(pointer)))
    }

    /// As `withUnsafeBytes`, for a caller that knows the frame's size already (what the
    /// receive returned): one call into libzmq fewer, for every message of a forwarding loop.
    @inlinable
    public func withUnsafeBytes<R>(count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(pointer), count: count))
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The first byte, if any (subscription frames start with 1 or 0).
    public var firstByte: UInt8? {
        count > 0 ? zmq_msg_data(pointer).load(as: UInt8.self) : nil
    }

    /// Whether the frame carries its connection's metadata at all: every ZMTP 3 peer's has its
    /// `Socket-Type`; frames over inproc, and those libzmq makes itself, have none.
    public var hasMetadata: Bool { zmq_msg_gets(pointer, "Socket-Type") != nil }

    /// A metadata property of the connection the frame arrived on, e.g. "Peer-Address".
    public func property(_ name: String) -> String? {
        guard let value = zmq_msg_gets(pointer, name) else { return nil }
        return String(cString: value)
    }

    /// The descriptor of the tcp or ipc connection the frame arrived on (libzmq's private
    /// `__fd` property, what `ZMQ_SRCFD` reads), and the address of that value: it lies in the
    /// connection's own metadata, so frames of one connection share it, and no other live
    /// connection's frames have it. Nil for frames without metadata (inproc, or made by libzmq).
    public var sourceConnection: (descriptor: Int32, metadataAddress: UInt)? {
        guard let value = zmq_msg_gets(pointer, "__fd") else { return nil }
        var descriptor: Int32 = 0
        var digits = value
        while case let digit = digits.pointee, digit != 0 {
            guard digit >= 0x30 && digit <= 0x39, descriptor < Int32.max / 10 else { return nil }
            descriptor = descriptor * 10 + Int32(digit - 0x30)
            digits += 1
        }
        return digits == value ? nil : (descriptor, UInt(bitPattern: value))
    }
}
