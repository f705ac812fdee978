import NIOCore

/// Sits before NIO's TLS handler on a TLS listener and looks at the first byte a client sends:
/// a TLS handshake starts with a handshake record (0x16); anything else is a client speaking
/// plain HTTP to the HTTPS port (http:// for https://, ws:// for wss://), which the TLS handler
/// closed without a word, and curl reported an empty reply. It now gets a 400 that says the
/// port speaks HTTPS, and the connection is closed. A handshake passes on untouched, and this
/// handler leaves the pipeline. (Event-loop only.)
final class PlainHTTPOnTLSPort: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The first byte of a TLS record that carries a handshake message (RFC 8446 5.1).
    static let handshakeRecord: UInt8 = 0x16

    static let response = RawHTTPResponse.error(
        status: "400 Bad Request", code: "https_required",
        "this port speaks HTTPS (TLS): use https:// (wss:// for WebSocket)")

    private let counters: GatewayCounters
    private var refused = false

    init(counters: GatewayCounters) {
        self.counters = counters
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let bytes = unwrapInboundIn(data)
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self), first != Self.handshakeRecord
        else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refused = true
        counters.rejectedBadRequest.add(1, ordering: .relaxed)
        Goodbye.close(context.channel, once: context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: Self.response))))
    }
}
