import Logging
import ZPubCore
import ZeroMQ

/// Reads libzmq's connection events (the monitor PAIRs of PULL, XSUB and XPUB) on a thread of
/// its own: the descriptor guard gets them at once, and the forwarding loop gets them through
/// its mailbox for the peer counts, the upstream states and the log.
///
/// Why not in the forwarding loop, which owns the state they change: every ZeroMQ socket in a
/// `zmq_poll` set costs two `getsockopt` calls (ZMQ_FD, ZMQ_EVENTS) on every poll, so the three
/// monitors doubled the cost of each of the loop's polls, some 100 instructions per delivered
/// 1 KiB message (callgrind, scripts/callgrind-forwarders.sh), for events that come once per
/// connection. The mailbox's pipe in the poll set is one plain descriptor, whatever it carries.
/// And the guard no longer waits for the loop, which a subscription flood can hold inside libzmq
/// for seconds (docs/reliability.md). While the loop is that far behind, what waits for it is
/// bounded (`ConnectionEventBacklog`): past 4,096 events the reader adds them up.
final class ConnectionEventReader: Sendable {
    /// Post anything to stop the reader; it then closes the monitor sockets.
    let stopMailbox = Mailbox<Bool>()
    private let monitors: MonitorSockets
    private let descriptorGuard: DescriptorGuard
    private let loopMailbox: Mailbox<LoopCommand>
    private let backlog: ConnectionEventBacklog
    private let logger: Logger

    init(monitors: MonitorSockets, loop: ForwardingLoopHandle, logger: Logger) {
        self.monitors = monitors
        self.descriptorGuard = loop.descriptorGuard
        self.loopMailbox = loop.mailbox
        self.backlog = loop.connectionEvents
        self.logger = logger
    }

    /// Runs until stopped; call on the reader's own thread.
    func run() {
        var poller = Poller()
        let monitors = monitors.all
        let monitorIndexes = monitors.map { poller.add($0.socket) }
        let stopIndex = poller.add(fileDescriptor: stopMailbox.fileDescriptor)
        while true {
            do {
                _ = try poller.poll(timeoutMilliseconds: -1)
            } catch {
                logger.critical("the connection event reader cannot poll: \(error); peer counts stop changing")
                break
            }
            for position in monitorIndexes.indices where poller.isReadable(monitorIndexes[position]) {
                read(monitors[position])
            }
            if poller.isReadable(stopIndex) && !stopMailbox.take().isEmpty { break }
        }
        for monitor in monitors {
            read(monitor)
            monitor.socket.close()
        }
    }

    private func read(_ monitor: (role: BrokerSocketRole, socket: Socket)) {
        while let event = try? monitor.socket.readMonitorEvent() {
            if event.event.contains(.accepted) || event.event.contains(.connected) {
                descriptorGuard.opened(fileDescriptor: event.value, endpoint: event.endpoint)
            } else if event.event.contains(.listening) {
                descriptorGuard.listening(endpoint: event.endpoint, fileDescriptor: event.value)
                continue
            } else if event.event.contains(.acceptFailed) {
                descriptorGuard.acceptFailed(errno: event.value, endpoint: event.endpoint)
            }
            // The new subscriber's socket as it is now, moments after the accept: by the time the
            // loop reads the event its number may belong to another socket.
            let accepted =
                monitor.role == .xpub && event.event.contains(.accepted)
                ? SubscriberReachability.Accepted(descriptor: event.value) : nil
            switch backlog.admit(event, of: monitor.role, accepted: accepted) {
            case .queue: loopMailbox.post(.connectionEvent(monitor.role, event, accepted: accepted))
            case .summarized(let wakeLoop): if wakeLoop { loopMailbox.post(.connectionEventSummary) }
            }
        }
    }
}

/// The monitor PAIRs, handed from the thread that made them to the reader's. Unchecked: they are
/// made with the data sockets, which puts them in the same region for the compiler's `sending`
/// checks, but after the handover only the reader's thread touches them (the forwarding loop
/// never had them).
struct MonitorSockets: @unchecked Sendable {
    let all: [(role: BrokerSocketRole, socket: Socket)]
}
