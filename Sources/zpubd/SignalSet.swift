#if canImport(Glibc)
    import Glibc
#endif

/// A set of signals that are blocked in every thread and taken synchronously with `sigwait`,
/// so handling them is ordinary code on an ordinary thread (no async-signal-safety rules).
struct SignalSet {
    private var set = sigset_t()

    init(_ signals: [Int32]) {
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
    }

    /// Blocks the signals in the calling thread and the threads it creates from now on.
    func block() {
        var set = self.set
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for one of the signals and returns it.
    func wait() -> Int32 {
        var set = self.set
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }
}
