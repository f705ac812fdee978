import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The terminal for a full-screen view: raw mode for single keys, the alternate screen, plain
/// ANSI escape sequences (no curses). `restore()` puts everything back; call it on every exit.
final class Terminal {
    private let input: Int32
    private var saved: termios?
    private var active = false

    /// Whether standard output is a terminal (otherwise `zpub top` prints plain lines).
    static var isOutputTerminal: Bool { isatty(1) == 1 }

    init(input: Int32 = 0) { self.input = input }

    /// Raw mode on standard input (when it is a terminal), the alternate screen, cursor hidden.
    func enter() {
        if isatty(input) == 1 {
            var settings = termios()
            if tcgetattr(input, &settings) == 0 {
                saved = settings
                // Keys arrive one at a time and unechoed; ISIG stays so Ctrl-C is still SIGINT,
                // which the caller handles like `q`.
                settings.c_lflag &= ~tcflag_t(ICANON | ECHO)
                withUnsafeMutableBytes(of: &settings.c_cc) { cc in
                    cc[Int(VMIN)] = 0
                    cc[Int(VTIME)] = 0
                }
                tcsetattr(input, TCSANOW, &settings)
            }
        }
        write("\u{1B}[?1049h\u{1B}[?25l")
        active = true
    }

    /// Leaves the alternate screen, shows the cursor, restores the terminal's settings.
    func restore() {
        guard active else { return }
        active = false
        write("\u{1B}[?25h\u{1B}[?1049l")
        if var saved { tcsetattr(input, TCSANOW, &saved) }
    }

    deinit { restore() }

    /// Rows and columns of the terminal on standard output (24x80 if it does not say).
    static func size() -> (rows: Int, columns: Int) {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return (24, 80) }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    /// Waits up to `milliseconds` for keys on standard input; returns those that came.
    func keys(waitingUpTo milliseconds: Int) -> [UInt8] {
        guard saved != nil else {
            usleep(useconds_t(max(0, milliseconds)) * 1_000)
            return []
        }
        var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(max(0, milliseconds))) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(input, &buffer, buffer.count)
        return count > 0 ? Array(buffer[0..<count]) : []
    }

    /// Draws a whole screen in one write: home, each line cleared to its end, the rest erased.
    func draw(_ lines: [String]) {
        write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(1, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

/// Signals taken synchronously: blocked in every thread (so block them before libzmq starts
/// its threads) and collected with `sigtimedwait`, instead of handlers that can do almost
/// nothing safely.
struct SignalWatcher {
    private var set = sigset_t()

    init(_ signals: [Int32]) {
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Whether one of `signals` waits to be taken (`pending()`), without taking it.
    func isPending(_ signals: [Int32]) -> Bool {
        var waiting = sigset_t()
        sigpending(&waiting)
        return signals.contains { sigismember(&waiting, $0) == 1 }
    }

    /// A signal that arrived since the last call, if any; never waits.
    func pending() -> Int32? {
        var set = self.set
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        let signal = sigtimedwait(&set, nil, &zero)
        return signal > 0 ? signal : nil
    }
}
