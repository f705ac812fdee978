import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// Listening sockets passed by systemd (socket activation: `LISTEN_FDS`, `LISTEN_FDNAMES`).
public struct ListeningSocket: Equatable, Sendable {
    /// The file descriptor, already listening.
    public let fileDescriptor: Int32
    /// The name from the socket unit's `FileDescriptorName=` (or systemd-socket-activate's
    /// `--fdname`), e.g. "pull".
    public let name: String
    /// A ZeroMQ endpoint for the socket's local address (tcp://host:port or ipc:///path), which
    /// libzmq needs alongside ZMQ_USE_FD; nil for a socket family ZeroMQ cannot use.
    public let endpoint: String?
}

public enum SocketActivation {
    /// The sockets systemd passed to this process, if any. Reads and then unsets the `LISTEN_*`
    /// variables so that children do not inherit them.
    public static func listeningSockets() -> [ListeningSocket] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        guard count > 0 else { return [] }
        defer {
            if let names {
                for index in 0..<Int(count) { free(names[index]) }
                free(names)
            }
        }
        return (0..<count).map { index in
            let fd = SD_LISTEN_FDS_START + index
            let name = names?[Int(index)].map { String(cString: $0) } ?? "unknown"
            return ListeningSocket(fileDescriptor: fd, name: name, endpoint: endpoint(of: fd))
        }
    }

    /// The ZeroMQ endpoint of a listening socket's local address.
    public static func endpoint(of fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                    var raw = address.pointee.sin_addr
                    inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
                    return "tcp://\(Self.string(text)):\(UInt16(bigEndian: address.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                    var raw = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
                    return "tcp://[\(Self.string(text))]:\(UInt16(bigEndian: address.pointee.sin6_port))"
                }
            }
        case AF_UNIX:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { address in
                    let path = withUnsafeBytes(of: address.pointee.sun_path) { bytes in
                        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    return path.isEmpty ? nil : "ipc://\(path)"
                }
            }
        default:
            return nil
        }
    }

    /// The text `inet_ntop` wrote into `buffer`, up to its terminating zero.
    private static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
