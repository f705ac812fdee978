import NIOCore
import NIOPosix
import Synchronization

/// How many requests one connection is served in one turn of the gateway's event loop, which
/// every connection shares. A client that pipelined thousands of requests in one write (HTTP),
/// or streamed WebSocket requests, and read the answers, was served all that one read brought
/// before any other connection was looked at: a new client's /healthz waited 2.3-10 s beside
/// one to four such clients (debug build). Past `perTurn`, the rest wait for the next turn,
/// after the I/O of every other ready connection (`LoopTurns`).
struct TurnBudget {
    static let perTurn = 32
    private var used = 0
    private var turn = UInt64.max
    /// `resume` is queued for the next turn and has not run yet.
    private var waiting = false

    /// Takes a request's place in this turn, or false when the turn's are used: the caller then
    /// holds the request and, if `startWaiting` says so, queues its resumption for the next turn.
    mutating func take(_ turns: LoopTurns) -> Bool {
        let now = turns.current
        if now != turn {
            turn = now
            used = 0
        }
        guard used < Self.perTurn else { return false }
        used += 1
        return true
    }

    /// True the first time a held request needs its resumption queued (`LoopTurns.afterThisTurn`,
    /// whose closure calls `resumed`).
    mutating func startWaiting() -> Bool {
        defer { waiting = true }
        return !waiting
    }

    mutating func resumed() { waiting = false }
}

/// Counts the turns ("ticks") of the gateway's event loop (NIO tells this delegate at the end
/// of each), and runs what waits for a later one. A task queued with `execute` cannot wait for
/// other connections' I/O: NIO runs the tasks that tasks queue, and scheduled ones that fall
/// due meanwhile, in the same turn, before it looks at sockets again; and one queued from the
/// loop's own thread after that does not wake it (measured: connections stalled until other
/// I/O came). So one timer serves every waiting connection, 50 µs on: it runs those that
/// began waiting in an earlier turn and is set again for the others (a timer per connection,
/// each set again, kept 16 of them always due and the turn never ended).
///
/// One firing runs at most `perFiring` of them; the others due then wait for the next turn as
/// if they had begun waiting in this one. Each runs `TurnBudget.perTurn` requests, so a turn
/// serves at most `perFiring` times as many for waiting connections, however many wait (all
/// of them in one firing made the turn as long as every hog's share).
final class LoopTurns: NIOEventLoopMetricsDelegate {
    static let perFiring = 16
    private let count = Atomic<UInt64>(0)
    /// Each waiting connection's resumption, with the turn it began waiting in.
    private let waiting = Mutex<(resumes: [(turn: UInt64, resume: @Sendable () -> Void)], timerSet: Bool)>(([], false))

    /// The current turn's number.
    var current: UInt64 { count.load(ordering: .relaxed) }

    /// Runs `resume` on `loop` (the gateway's one event loop) in a later turn than this one.
    func afterThisTurn(on loop: EventLoop, _ resume: @escaping @Sendable () -> Void) {
        let setTimer = waiting.withLock { state in
            state.resumes.append((current, resume))
            defer { state.timerSet = true }
            return !state.timerSet
        }
        if setTimer { runWaiting(on: loop) }
    }

    /// Runs the resumptions whose turn has passed; the timer is set again for the others.
    private func runWaiting(on loop: EventLoop) {
        loop.scheduleTask(in: .microseconds(50)) { [self] in
            let now = current
            let (due, more) = waiting.withLock { state in
                var due: [@Sendable () -> Void] = []
                var kept: [(turn: UInt64, resume: @Sendable () -> Void)] = []
                kept.reserveCapacity(state.resumes.count)
                for waiter in state.resumes {
                    if waiter.turn == now {
                        kept.append(waiter)
                    } else if due.count < Self.perFiring {
                        due.append(waiter.resume)
                    } else {
                        // Due, but this turn's share is given: the next turn's, first in line.
                        kept.append((now, waiter.resume))
                    }
                }
                state.resumes = kept
                state.timerSet = !kept.isEmpty
                return (due, state.timerSet)
            }
            if more { runWaiting(on: loop) }
            for resume in due { resume() }
        }
    }

    func processedTick(info: NIOEventLoopTickInfo) {
        count.add(1, ordering: .relaxed)
    }
}
