import NIOCore
import NIOHTTP1
import ZPubCore

/// The status page's live feed (`/status/events`), polled once for all its clients: one STATS a
/// second, one TOPICS and one SUBSCRIPTIONS every five, whatever the number of clients, and
/// nothing while there is none. Each event is encoded once and written to every client.
///
/// Polling per client made each of up to `max_clients` status pages cost the broker those
/// requests: every one a round trip to the forwarding loop, TOPICS and SUBSCRIPTIONS each a
/// copy of the broker's tables, and a sort of both lists per client; a few hundred pages
/// filled the control queue that /healthz needs.
final class StatusFeed: Sendable {
    /// How many topics and subscriptions the page shows (the busiest).
    static let shownRows = 12
    /// Ticks between two TOPICS and SUBSCRIPTIONS polls.
    static let tablesEvery = 5

    private enum Kind: String, CaseIterable {
        case stats, topics, subscriptions
    }

    private struct State {
        var clients: [UInt64: Channel] = [:]
        var lastID: UInt64 = 0
        var poll: RepeatedTask?
        var ticks = 0
        /// The newest event of each kind: a client that joins between two polls gets them at once.
        var latest: [Kind: ByteBuffer] = [:]
        /// Requests out: a broker slower than the tick is not asked again before it answers.
        var asking: Set<Kind> = []
    }

    private let eventLoop: EventLoop
    private let control: ControlDispatcher
    private let counters: GatewayCounters
    private let state = Locked(State())

    init(eventLoop: EventLoop, control: ControlDispatcher, counters: GatewayCounters) {
        self.eventLoop = eventLoop
        self.control = control
        self.counters = counters
    }

    /// Adds a client whose response head is written; returns its id for `leave`. The first
    /// client starts the poll.
    func join(_ channel: Channel) -> UInt64 {
        let (id, latest) = state.withLock { state in
            state.lastID += 1
            state.clients[state.lastID] = channel
            if state.poll == nil {
                state.poll = eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { [self] _ in
                    tick()
                }
            }
            return (state.lastID, Kind.allCases.compactMap { state.latest[$0] })
        }
        for event in latest { Self.write(event, to: channel) }
        return id
    }

    /// Removes a client; the last one stops the poll.
    func leave(_ id: UInt64) {
        state.withLock { state in
            state.clients[id] = nil
            guard state.clients.isEmpty else { return }
            state.poll?.cancel()
            state = State(lastID: state.lastID, asking: state.asking)
        }
    }

    private func tick() {
        let due = state.withLock { state -> [Kind] in
            state.ticks += 1
            let kinds: [Kind] = state.ticks % Self.tablesEvery == 1 ? Kind.allCases : [.stats]
            let due = kinds.filter { !state.asking.contains($0) }
            state.asking.formUnion(due)
            return due
        }
        for kind in due {
            let command: ControlCommand =
                switch kind {
                case .stats: .stats
                case .topics: .topics
                case .subscriptions: .subscriptions
                }
            control.request(ControlRequest(command: command), on: eventLoop).whenComplete { [self] result in
                state.withLock { _ = $0.asking.remove(kind) }
                // A broker that did not answer: the page keeps its last figures until it does.
                guard case .success(let reply) = result, let data = encode(reply) else { return }
                publish(kind, data)
            }
        }
    }

    /// The event's data: STATS with the gateway's counters, or the busiest rows of a table.
    private func encode(_ reply: ControlReply) -> [UInt8]? {
        switch reply {
        case .stats:
            let gateway = ControlReply.json(counters.snapshot) ?? Array("{}".utf8)
            return Array("{\"stats\":".utf8) + reply.json + Array(",\"gateway\":".utf8) + gateway + [UInt8(ascii: "}")]
        case .topics(var list):
            list.topics = Array(list.topics.sorted { $0.messages > $1.messages }.prefix(Self.shownRows))
            return ControlReply.json(list)
        case .subscriptions(var list):
            list.subscriptions = Array(list.subscriptions.sorted { $0.count > $1.count }.prefix(Self.shownRows))
            return ControlReply.json(list)
        default:
            return nil
        }
    }

    private func publish(_ kind: Kind, _ data: [UInt8]) {
        let event = ByteBuffer(bytes: WireFormat.serverSentEvent(id: nil, event: kind.rawValue, data: data))
        let clients = state.withLock { state -> [Channel] in
            // Answered after the last client left: nobody to show it to, and stale by the next.
            guard !state.clients.isEmpty else { return [] }
            state.latest[kind] = event
            return Array(state.clients.values)
        }
        for channel in clients { Self.write(event, to: channel) }
    }

    /// Skipped while the connection has no room: a slow page misses updates, it does not
    /// queue them.
    private static func write(_ event: ByteBuffer, to channel: Channel) {
        guard channel.isWritable else { return }
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(event)), promise: nil)
    }
}
