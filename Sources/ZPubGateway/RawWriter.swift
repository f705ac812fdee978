import NIOCore

/// Sits below NIO's HTTP encoder (nearest the socket) and lets an event stream write bytes
/// that are already HTTP chunks (`WireFormat.chunk`) straight to the connection: an SSE event
/// is framed once per message and shared by every client, instead of being framed again by the
/// encoder for each one (three buffers and a chunk header allocated per client per event).
/// Everything else passes through it untouched.
final class RawWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let name = "zpub-raw"
}

extension ChannelPipeline.SynchronousOperations {
    /// The context to write pre-framed chunks from (below the HTTP encoder), if the pipeline
    /// has a `RawWriter`.
    func rawWriterContext() -> ChannelHandlerContext? {
        try? context(name: RawWriter.name)
    }
}
