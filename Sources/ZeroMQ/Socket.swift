import CZeroMQ

/// A ZeroMQ socket.
///
/// Sockets are not thread safe: each belongs to exactly one thread at a time. So the type is not
/// `Sendable`: the compiler lets a socket (or an object holding it) move to another thread only
/// as a `sending` value the old thread no longer touches, the way `JoinableThread` takes the
/// body of its thread. Starting a thread is a full memory barrier, which is all libzmq asks for.
public final class Socket {
    @usableFromInline let handle: UnsafeMutableRawPointer
    public let type: SocketType
    public private(set) var isClosed = false

    public init(_ context: Context, type: SocketType) throws {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("create \(type) socket")
        }
        self.handle = handle
        self.type = type
    }

    deinit { close() }

    /// Closes the socket; pending outgoing messages linger per `ZMQ_LINGER`. Idempotent.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        zmq_close(handle)
    }

    // MARK: Endpoints

    public func bind(_ endpoint: String) throws {
        _ = try zmqCall("bind \(type) \(endpoint)") { zmq_bind(handle, endpoint) }
    }

    public func unbind(_ endpoint: String) throws {
        _ = try zmqCall("unbind \(type) \(endpoint)") { zmq_unbind(handle, endpoint) }
    }

    public func connect(_ endpoint: String) throws {
        _ = try zmqCall("connect \(type) \(endpoint)") { zmq_connect(handle, endpoint) }
    }

    public func disconnect(_ endpoint: String) throws {
        _ = try zmqCall("disconnect \(type) \(endpoint)") { zmq_disconnect(handle, endpoint) }
    }

    /// The endpoint most recently bound or connected, with wildcards resolved
    /// (e.g. `tcp://127.0.0.1:41234` for `tcp://127.0.0.1:*`).
    public var lastEndpoint: String {
        (try? stringOption(.lastEndpoint)) ?? ""
    }

    // MARK: Options

    public func setOption(_ option: SocketOption, _ value: Int32) throws {
        var value = value
        _ = try zmqCall("set option \(option.rawValue) on \(type)") {
            zmq_setsockopt(handle, option.rawValue, &value, MemoryLayout<Int32>.size)
        }
    }

    public func setOption(_ option: SocketOption, int64 value: Int64) throws {
        var value = value
        _ = try zmqCall("set option \(option.rawValue) on \(type)") {
            zmq_setsockopt(handle, option.rawValue, &value, MemoryLayout<Int64>.size)
        }
    }

    public func setOption(_ option: SocketOption, bytes: UnsafeRawBufferPointer) throws {
        // A SUB's: on an XPUB (the broker's, in XPUB_MANUAL mode) these apply a subscriber's
        // frame, once per frame of a flood, where the extra system call is not wanted.
        if type == .sub && (option == .subscribe || option == .unsubscribe) {
            // libzmq takes a reconnection in (its "hiccup": the new connection's pipe, to which
            // the socket sends every subscription again) only when the socket processes its
            // commands, which zmq_setsockopt does not; a receive does, but with messages queued
            // only at every 100th frame. Asked first, a change goes out on the connection that
            // is up. (A probe: `zpub sub --since`, behind a flood when zpubd restarted, read one
            // message per attempt to resume, and its subscriptions reached the new zpubd only
            // minutes later.)
            _ = hasInput
        }
        _ = try zmqCall("set option \(option.rawValue) on \(type)") {
            zmq_setsockopt(handle, option.rawValue, bytes.baseAddress, bytes.count)
        }
    }

    public func setOption(_ option: SocketOption, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try setOption(option, bytes: $0) }
    }

    public func setOption(_ option: SocketOption, string: String) throws {
        try setOption(option, bytes: Array(string.utf8))
    }

    public func intOption(_ option: SocketOption) throws -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        _ = try zmqCall("get option \(option.rawValue) on \(type)") {
            zmq_getsockopt(handle, option.rawValue, &value, &size)
        }
        return value
    }

    /// Whether a message can be read now (`ZMQ_EVENTS`). Asking makes libzmq take in what its
    /// pipes hold first, so false means nothing is waiting, as a read's EAGAIN would.
    public var hasInput: Bool {
        ((try? intOption(.events)) ?? 0) & Int32(ZMQ_POLLIN) != 0
    }

    /// Has libzmq take in the notes its I/O thread left for this socket: how many messages a
    /// peer's side has read of those sent to it, input waiting again, connections come and gone.
    /// libzmq takes them in when the socket is polled or a read finds nothing, and on a send at
    /// most once a millisecond; a socket that goes from read to send to read without a read
    /// ever finding nothing counts what its peers have read as it was, and its send high-water
    /// mark fills with messages long delivered. Asking for `ZMQ_EVENTS` takes them in at once.
    public func takeInPendingNotes() {
        _ = try? intOption(.events)
    }

    public func stringOption(_ option: SocketOption) throws -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        _ = try zmqCall("get option \(option.rawValue) on \(type)") {
            zmq_getsockopt(handle, option.rawValue, &buffer, &size)
        }
        let text = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: text, as: UTF8.self)
    }

    // MARK: Frames

    // The three frame calls are inlinable, with only the success test inline and the failure
    // handling (EINTR, EAGAIN, errors) out of line: a forwarding loop makes two or more of them
    // per message, and as calls across modules each cost some 30 instructions of its own
    // (callgrind, scripts/callgrind-forwarders.sh), more than the check that remains.

    /// Sends one frame; `message` is empty afterwards. Returns false if the send would block
    /// (only possible with `dontWait`, or when a send timeout expires).
    @inlinable @inline(__always)
    @discardableResult
    public func send(_ message: Message, more: Bool = false, dontWait: Bool = false) throws -> Bool {
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        if zmq_msg_send(message.pointer, handle, flags) >= 0 { return true }
        return try sendFailed(message, flags: flags)
    }

    /// Receives one frame into `message`, replacing its content. Returns false if nothing is
    /// waiting (only possible with `dontWait`, or when a receive timeout expires).
    @inlinable @inline(__always)
    public func receive(into message: Message, dontWait: Bool = false) throws -> Bool {
        try receiveSize(into: message, dontWait: dontWait) != nil
    }

    /// Receives one frame into `message` and returns its size (what `zmq_msg_recv` returns, so
    /// a forwarding loop need not ask again), or nil if nothing is waiting.
    @inlinable @inline(__always)
    public func receiveSize(into message: Message, dontWait: Bool = false) throws -> Int? {
        let flags = dontWait ? ZMQ_DONTWAIT : 0
        let size = zmq_msg_recv(message.pointer, handle, flags)
        if size >= 0 { return Int(size) }
        return try receiveFailed(into: message, flags: flags)
    }

    /// A send that returned -1: retried after EINTR, false for EAGAIN, thrown otherwise.
    @usableFromInline @inline(never)
    func sendFailed(_ message: Message, flags: Int32) throws -> Bool {
        try zmqCall("send on \(type)", retryingFirst: true) { zmq_msg_send(message.pointer, handle, flags) }
    }

    /// A receive that returned -1: retried after EINTR, nil for EAGAIN, thrown otherwise.
    @usableFromInline @inline(never)
    func receiveFailed(into message: Message, flags: Int32) throws -> Int? {
        var size: Int32 = 0
        let received = try zmqCall("receive on \(type)", retryingFirst: true) {
            size = zmq_msg_recv(message.pointer, handle, flags)
            return size
        }
        return received ? Int(size) : nil
    }

    // MARK: Whole messages (convenience for clients and tests; allocates)

    /// Sends a multipart message, one frame per element. Returns false if it would block.
    @discardableResult
    public func send(frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
        let message = Message()
        for (index, frame) in frames.enumerated() {
            message.replace(with: frame)
            let more = index < frames.count - 1
            // Only the first frame can fail with EAGAIN: libzmq queues the rest atomically.
            guard try send(message, more: more, dontWait: dontWait) else { return false }
        }
        return true
    }

    /// Sends a single-frame message holding the UTF-8 bytes of `text`.
    @discardableResult
    public func send(text: String, dontWait: Bool = false) throws -> Bool {
        try send(frames: [Array(text.utf8)], dontWait: dontWait)
    }

    /// Receives all frames of one message, or nil if none is waiting (with `dontWait` or a
    /// receive timeout).
    public func receiveFrames(dontWait: Bool = false) throws -> [[UInt8]]? {
        let message = Message()
        guard try receive(into: message, dontWait: dontWait) else { return nil }
        var frames = [message.bytes]
        while message.hasMore {
            _ = try receive(into: message)
            frames.append(message.bytes)
        }
        return frames
    }

    /// Waits up to `timeoutMilliseconds` for a message; nil on timeout.
    public func receiveFrames(timeoutMilliseconds: Int) throws -> [[UInt8]]? {
        guard try Poller.waitReadable(self, timeoutMilliseconds: timeoutMilliseconds) else { return nil }
        return try receiveFrames(dontWait: true)
    }
}
