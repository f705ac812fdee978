import NIOCore

/// The last thing a client is sent before the gateway hangs up on it (a WebSocket close frame, a
/// last SSE `error` event), and the hang-up itself.
///
/// Such a write completes only once the kernel takes it, and a client that stopped reading
/// (its buffers full) never lets it: closing "when the goodbye is written" then held the
/// connection, its max_clients slot and an expired token's stream for as long as the client
/// stayed silent. So the connection is closed when the goodbye is written or after `grace`,
/// whichever comes first.
enum Goodbye {
    /// Long enough for a client that reads, even behind a full write buffer (64 KiB) on a slow
    /// link, to get the goodbye; short enough that a client that does not read gives its slot
    /// back at once. (`ClientOutbox.closeTooSlow` waits 200 ms, for clients known to be slow.)
    static let grace = TimeAmount.seconds(1)

    /// Closes `channel` once `written` (the goodbye's write) completes, or after `grace`.
    static func close(_ channel: Channel, once written: EventLoopFuture<Void>, grace: TimeAmount = grace) {
        let fallback = channel.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
        written.whenComplete { _ in
            fallback.cancel()
            channel.close(promise: nil)
        }
    }

    /// Closes `channel` after `grace`, for a goodbye written by a handler that waits for its
    /// write alone (NIO's `WebSocketProtocolErrorHandler`).
    static func closeAfterGrace(_ channel: Channel) {
        channel.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
    }
}
