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
///
/// A message begun in fragments must also end within `unfinishedMessageSeconds`: the
/// aggregator holds its fragments (up to `max_frame`) until it ends, and a client that began
/// one and answered pings kept some 140 KiB of zpubd's memory for as long as it liked (1,000
/// such clients: 140 MiB). It is closed with 1008. The time stops while the session has
/// stopped reading (`ReadingPause`): a client whose last fragments wait unread behind its
/// subscribe's confirmation (up to 10 s) sent them in time. (Reading also stops while the
/// client leaves what it is sent unread, `BackPressureHandler`; that time counts: the client
/// is the one that holds things up.)
final class WebSocketFrameCheck: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    /// The session stops reading from the connection (`WebSocketSession.stopReading`), or starts
    /// again: sent down the pipeline as a user outbound event, taken here.
    enum ReadingPause: Sendable {
        case began, ended
    }

    /// A frame that breaks the protocol (1002), or a message not finished in time (1008): why,
    /// for the close frame's reason.
    struct Violation: Error {
        let reason: String
        var code: UInt16 = 1002
    }

    static let unfinishedMessageSeconds: Int64 = 10

    private var violated = false
    private var readingPaused = false
    /// A message begun in fragments: the reading time it has left to end in, and while the
    /// gateway reads, the close that comes when that is over.
    private var unfinished: (left: TimeAmount, since: NIODeadline, close: Scheduled<Void>?)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !violated else { return }
        let frame = unwrapInboundIn(data)
        if let reason = Self.violation(in: frame) {
            violate(context, Violation(reason: reason))
            return
        }
        if frame.opcode == .text || frame.opcode == .binary || frame.opcode == .continuation {
            if frame.fin {
                forgetUnfinished()
            } else if unfinished == nil {
                unfinished = (.seconds(Self.unfinishedMessageSeconds), .now(), nil)
                if !readingPaused { startClock(context) }
            }
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let pause = event as? ReadingPause else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        switch pause {
        case .began:
            readingPaused = true
            stopClock()
        case .ended:
            readingPaused = false
            startClock(context)
        }
        promise?.succeed(())
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forgetUnfinished()
    }

    /// The unfinished message's time runs again (reading began, or went on).
    private func startClock(_ context: ChannelHandlerContext) {
        guard let left = unfinished?.left, unfinished?.close == nil else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let scheduled = context.eventLoop.scheduleTask(in: left) {
            let (check, context) = loopBound.value
            check.unfinished = nil
            check.violate(
                context,
                Violation(
                    reason:
                        "a message begun in fragments is not finished after \(Self.unfinishedMessageSeconds) s; send its fragments together",
                    code: 1008))
        }
        unfinished = (left, .now(), scheduled)
    }

    /// The unfinished message's time stops while the gateway reads nothing from the client.
    private func stopClock() {
        guard let (left, since, close) = unfinished, let close else { return }
        close.cancel()
        unfinished = (max(left - (.now() - since), .zero), .now(), nil)
    }

    private func forgetUnfinished() {
        unfinished?.close?.cancel()
        unfinished = nil
    }

    private func violate(_ context: ChannelHandlerContext, _ violation: Violation) {
        guard !violated else { return }
        violated = true
        forgetUnfinished()
        context.fireErrorCaught(violation)
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
