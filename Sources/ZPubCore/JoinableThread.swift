#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A named POSIX thread that can be waited for: the threads that own ZeroMQ sockets (the
/// forwarding loop, the control server, the ZAP handler, the HTTP gateway's link).
///
/// Plain pthreads rather than Foundation's `Thread`, so that zpubd does not load Foundation
/// (about 6 MiB of resident memory for one class; docs/performance.md, "Memory").
public final class JoinableThread: Sendable {
    private let thread: pthread_t

    /// Starts `body` on a new thread called `name` (at most 15 bytes show in `top -H`), with a
    /// stack of `stackSize` bytes.
    ///
    /// `body` is `sending`: what it captures (a loop and its sockets) moves to the new thread,
    /// and the compiler refuses any later use of it by the caller. That is how a socket, which
    /// is not `Sendable`, gets to the thread that owns it.
    public init(name: String, stackSize: Int = 1 << 20, body: sending @escaping () -> Void) {
        // Holds the body on its way through pthread_create's untyped argument; only the new
        // thread touches it after that.
        final class Start {
            let name: String
            let body: () -> Void
            init(name: String, body: @escaping () -> Void) {
                self.name = name
                self.body = body
            }
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackSize)
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread, &attributes,
            { argument in
                let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
                nameCurrentThread(start.name)
                start.body()
                return nil
            }, start)
        // Only fails without memory or past the process's thread limit: nothing to carry on with.
        precondition(status == 0, "cannot start thread \(name): pthread_create returned \(status)")
        self.thread = thread
    }

    /// Waits until the thread's body has returned. Call once.
    public func join() {
        pthread_join(thread, nil)
    }
}

/// Names the calling thread, as `top -H` and `ps -L` show it. (pthread_setname_np is a GNU
/// extension Swift's Glibc module leaves out; the kernel's own interface for it is this file.)
private func nameCurrentThread(_ name: String) {
    let file = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard file >= 0 else { return }
    defer { close(file) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
}
