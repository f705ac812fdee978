import ZPubCore

/// One reading of the broker for `zpub top`: its STATS and TOPICS replies.
struct TopSample {
    var stats: StatsSnapshot
    var topics: TopicList
}

/// What `zpub top` shows: the latest counters, and the rates since the reading before.
///
/// Rates are differences between two successive readings divided by the time between them, as
/// the broker measured it (`uptime_s`), so a slow control round trip does not skew them. A
/// rate is nil when there is no earlier reading, or when a counter went down (zpubd restarted).
struct TopView {
    /// One topic's counters and rates.
    struct TopicRow {
        var topic: String
        /// The topic's bytes in hex when they are not UTF-8 (TOPICS' `topic_hex`), and the
        /// bytes themselves, which the topic sort compares: `topic` alone holds U+FFFD for
        /// each byte that is not UTF-8, and told such topics apart in neither.
        var topicHex: String? = nil
        var raw: [UInt8] = []
        /// The topic as the screen shows it (`TopicList.Item.printable`): printed raw, an escape
        /// sequence or a newline in a producer's topic recoloured the screen or broke its rows.
        var shown: String
        var messages: UInt64
        var bytes: UInt64
        var unwanted: UInt64
        var messagesPerSecond: Double?
        var bytesPerSecond: Double?
    }

    let sample: TopSample
    /// Seconds between the previous reading and this one; nil for the first.
    let interval: Double?
    let messagesInPerSecond: Double?
    let messagesOutPerSecond: Double?
    let bytesInPerSecond: Double?
    let bytesOutPerSecond: Double?
    let unwantedPerSecond: Double?
    /// Messages the history writer stored per second (nil without history prefixes).
    let historyWritesPerSecond: Double?
    let topics: [TopicRow]

    init(previous: TopSample?, current: TopSample) {
        sample = current
        let stats = current.stats
        var interval: Double?
        if let previous, current.stats.uptimeSeconds > previous.stats.uptimeSeconds {
            interval = current.stats.uptimeSeconds - previous.stats.uptimeSeconds
        }
        self.interval = interval
        func rate(_ counter: (StatsSnapshot) -> UInt64) -> Double? {
            guard let previous, let interval else { return nil }
            return Self.rate(from: counter(previous.stats), to: counter(stats), over: interval)
        }
        messagesInPerSecond = rate(\.messagesIn)
        messagesOutPerSecond = rate(\.messagesOut)
        bytesInPerSecond = rate(\.bytesIn)
        bytesOutPerSecond = rate(\.bytesOut)
        unwantedPerSecond = rate(\.unwantedMessages)
        historyWritesPerSecond = rate { $0.history?.written ?? 0 }

        // Keyed by kind and bytes: a text topic "61ff" and the binary topic "a\xff", whose hex
        // is 61ff, shared one key, and one showed the other's rate (an audit).
        func key(_ item: TopicList.Item) -> String { item.topicHex.map { "h:" + $0 } ?? "t:" + item.topic }
        var before: [String: TopicList.Item] = [:]
        for item in previous?.topics.topics ?? [] { before[key(item)] = item }
        topics = current.topics.topics.map { item in
            var row = TopicRow(
                topic: item.topic, topicHex: item.topicHex, raw: Subscriptions.bytes(item.topic, hex: item.topicHex),
                shown: item.printable, messages: item.messages, bytes: item.bytes, unwanted: item.unwanted)
            if let interval {
                // A topic absent from the previous reading is new: it started from zero.
                let old = before[key(item)]
                row.messagesPerSecond = Self.rate(from: old?.messages ?? 0, to: item.messages, over: interval)
                row.bytesPerSecond = Self.rate(from: old?.bytes ?? 0, to: item.bytes, over: interval)
            }
            return row
        }
    }

    static func rate(from old: UInt64, to new: UInt64, over seconds: Double) -> Double? {
        guard new >= old, seconds > 0 else { return nil }
        return Double(new - old) / seconds
    }

    /// The topics in the order `key` asks for: busiest first, names breaking ties.
    func sortedTopics(by key: TopSortKey) -> [TopicRow] {
        topics.sorted { left, right in
            let (a, b): (Double, Double)
            switch key {
            case .topic: return left.raw.lexicographicallyPrecedes(right.raw)
            case .rate: (a, b) = (left.messagesPerSecond ?? 0, right.messagesPerSecond ?? 0)
            case .bytes: (a, b) = (left.bytesPerSecond ?? 0, right.bytesPerSecond ?? 0)
            case .messages: (a, b) = (Double(left.messages), Double(right.messages))
            case .unwanted: (a, b) = (Double(left.unwanted), Double(right.unwanted))
            }
            return a != b ? a > b : left.raw.lexicographicallyPrecedes(right.raw)
        }
    }
}

/// The column `zpub top` sorts the topics by, and the key that selects it.
enum TopSortKey: String, CaseIterable {
    case rate, bytes, messages, unwanted, topic

    /// The key pressed in the live view.
    var key: Character {
        switch self {
        case .rate: "r"
        case .bytes: "b"
        case .messages: "m"
        case .unwanted: "u"
        case .topic: "t"
        }
    }

    /// The column heading it sorts.
    var column: String {
        switch self {
        case .rate: "MSG/S"
        case .bytes: "BYTES/S"
        case .messages: "MESSAGES"
        case .unwanted: "UNWANTED"
        case .topic: "TOPIC"
        }
    }

    init?(key: UInt8) {
        guard let match = Self.allCases.first(where: { $0.key.asciiValue == key }) else { return nil }
        self = match
    }
}
