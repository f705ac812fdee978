/// The client side of the Clone handshake (docs/last-value.md), with no sockets: it joins a
/// SNAPSHOT reply to the live stream of the SUB socket that asked for it, so that the caller
/// delivers every message exactly once and in order. `SnapshotRendezvous` is the broker side.
///
/// The caller subscribes to `markerTopic` (after its data prefixes, on the same SUB socket),
/// sends `SNAPSHOT <token> <prefix>` and then feeds what happens, in any order: live messages
/// (`received`), the marker message (`markerReceived`), the reply or its failure (`replied`,
/// `failed`). Each returns what may be delivered now. The rules:
/// - the snapshot's entries come first;
/// - a live message before the marker on a topic under one of the reply's cached prefixes is
///   already in the snapshot: it is skipped;
/// - every other live message follows, in the order it arrived;
/// - until the reply is in, live messages are held (`heldCount` says how many, for the caller's
///   bound); without a reply (`failed`) everything held is released as it came.
///
/// `zpub sub --snapshot`, `zpub sub --since` (a history replay: the entries are the replayed
/// messages, the covered prefixes the history prefixes) and the HTTP gateway's catch-ups (SSE
/// resumes, WebSocket `since`, the cached values a new client gets first) use it.
public struct SnapshotCatchUp<Item> {
    /// What may be delivered now: the snapshot's entries (if they came with this event), then
    /// live items, in this order.
    public struct Release {
        public var entries: [MessageJSON]
        public var items: [Item]
    }

    private enum Reply: Equatable {
        /// Live messages before the marker on topics under these prefixes are in the reply.
        case values(covering: [[UInt8]])
        case failed
    }

    public let token: String
    /// The topic the caller subscribes to before asking, and on which the marker comes.
    public let markerTopic: [UInt8]
    private var reply: Reply?
    private var markerSeen = false
    private var heldBeforeMarker: [(topic: [UInt8], item: Item)] = []
    private var heldAfterMarker: [Item] = []
    /// The last-value cache's sequence when the snapshot was taken, as the marker carries it.
    public private(set) var markerSequence: UInt64?

    public init(token: String) {
        self.token = token
        self.markerTopic = Array((SnapshotReply.markerPrefix + token).utf8)
    }

    /// Done: from now on every live message passes straight through, and the caller may
    /// unsubscribe from the marker.
    public var isComplete: Bool {
        switch reply {
        case .failed: true
        case .values: markerSeen
        case nil: false
        }
    }

    /// Live messages held until the reply is in.
    public var heldCount: Int { heldBeforeMarker.count + heldAfterMarker.count }

    /// The prefixes the reply covers (a replay's: the history prefixes), once it is in.
    public var coveredPrefixes: [[UInt8]]? {
        if case .values(let prefixes) = reply { prefixes } else { nil }
    }

    /// Whether a message on the SUB socket is this handshake's marker (feed it to `markerReceived`).
    public func isMarker(topic: some Collection<UInt8>) -> Bool {
        topic.elementsEqual(markerTopic)
    }

    /// A live message (not the marker). Returns it when it is to be delivered now; nil when it
    /// is held (see `heldCount`) or skipped because the snapshot has it already.
    public mutating func received(topic: some Collection<UInt8>, _ item: Item) -> Item? {
        switch reply {
        case .failed:
            return item
        case .values(let covering):
            if markerSeen || !Self.covers(covering, topic: topic) { return item }
            return nil
        case nil:
            if markerSeen {
                heldAfterMarker.append(item)
            } else {
                heldBeforeMarker.append((Array(topic), item))
            }
            return nil
        }
    }

    /// The marker message arrived, with its frames (topic, then the sequence as text).
    /// Returns nothing to deliver: everything after the marker is live already, or held
    /// until the reply.
    public mutating func markerReceived(frames: [[UInt8]]) {
        guard !markerSeen else { return }
        markerSeen = true
        markerSequence = SnapshotReply.markerSequence(frames)
    }

    /// The SNAPSHOT reply arrived: the entries, then what was held and is not in them.
    public mutating func replied(_ values: SnapshotReply) -> Release {
        replied(entries: values.entries, covering: values.prefixes)
    }

    /// A reply arrived (a snapshot's values or a replay's messages) whose `entries` hold every
    /// message before the marker on topics under `covering`: the entries, then what was held
    /// and is not in them.
    public mutating func replied(entries: [MessageJSON], covering: [String]) -> Release {
        guard reply == nil else { return Release(entries: [], items: []) }
        let prefixes = covering.map { Array($0.utf8) }
        reply = .values(covering: prefixes)
        var items = heldBeforeMarker.filter { !Self.covers(prefixes, topic: $0.topic) }.map(\.item)
        items += heldAfterMarker
        heldBeforeMarker = []
        heldAfterMarker = []
        return Release(entries: entries, items: items)
    }

    private static func covers(_ prefixes: [[UInt8]], topic: some Collection<UInt8>) -> Bool {
        prefixes.contains { topic.starts(with: $0) }
    }

    /// No reply (an error or a timeout): everything held, as it came; no snapshot.
    public mutating func failed() -> Release {
        guard reply == nil else { return Release(entries: [], items: []) }
        reply = .failed
        let items = heldBeforeMarker.map(\.item) + heldAfterMarker
        heldBeforeMarker = []
        heldAfterMarker = []
        return Release(entries: [], items: items)
    }
}

extension SnapshotReply {
    /// Whether live messages on `topic` that came before the marker are in the snapshot
    /// already: the topic is under one of the cached prefixes.
    public func covers(topic: some Collection<UInt8>) -> Bool {
        prefixes.contains { topic.starts(with: $0.utf8) }
    }

    /// The marker message the broker publishes for `token`: its topic, then `sequence` as text.
    public static func markerFrames(token: String, sequence: UInt64) -> [[UInt8]] {
        [Array((markerPrefix + token).utf8), Array(String(sequence).utf8)]
    }

    /// The sequence a marker message carries (nil if its second frame is missing or not a number).
    public static func markerSequence(_ frames: [[UInt8]]) -> UInt64? {
        guard frames.count > 1 else { return nil }
        return UInt64(String(decoding: frames[1], as: UTF8.self))
    }
}
