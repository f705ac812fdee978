import NIOCore
import NIOWebSocket

/// Holds each frame a client sends to the rules of RFC 6455 that NIO's decoder leaves to the
/// server, before the aggregator merges fragments (and with them what each one carried): a
/// client frame must be masked (5.1), its RSV bits clear with no extension negotiated (5.2; zpub
/// negotiates none), and its opcode one of the six defined (5.2). NIO's decoder passes such
/// frames on as they are; the session took the unmasked and RSV ones as valid requests, and
/// dropped reserved opcodes while counting them as signs of life. The first frame that breaks
/// a rule becomes a `Violation` for `WebSocketSession`, which closes with 1002 (7.4.1); nothing
/// the client sends after it is read. (Event-loop only.)
final class WebSocketFrameCheck: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    /// A frame that breaks the protocol: why, for the close frame's reason.
    struct Violation: Error {
        let reason: String
    }

    private var violated = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !violated else { return }
        if let reason = Self.violation(in: unwrapInboundIn(data)) {
            violated = true
            context.fireErrorCaught(Violation(reason: reason))
            return
        }
        context.fireChannelRead(data)
    }

    /// Why `frame` may not come from a client, or nil.
    static func violation(in frame: WebSocketFrame) -> String? {
        if frame.maskKey == nil { return "client frames must be masked (RFC 6455 5.1)" }
        if frame.rsv1 || frame.rsv2 || frame.rsv3 {
            return "RSV bits set, and no extension was negotiated (RFC 6455 5.2)"
        }
        switch frame.opcode {
        case .continuation, .text, .binary, .connectionClose, .ping, .pong:
            return nil
        default:
            return "reserved opcode \(UInt8(webSocketOpcode: frame.opcode)) (RFC 6455 5.2)"
        }
    }
}
