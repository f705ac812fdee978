import ZPubCore

/// libFuzzer entry point: the input is a script of subscription frames (as an XPUB reports
/// them: 1 or 0, then the prefix) and published topics, run against the subscription table,
/// the topic table and the last-value cache, checked against simple reference models.
@_cdecl("LLVMFuzzerTestOneInput")
public func subscriptionFuzzer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var subscriptions = SubscriptionTable(maxPrefixes: 16, maxPrefixLength: 8)
    var topics = TopicTable(maxTopics: 8)
    var lastValues = LastValueCache(prefixes: [[0x61]], maxEntries: 4, maxBytes: 64, maxAgeMilliseconds: 0)
    var reference: [[UInt8]: Int] = [:]
    var clock: UInt64 = 0
    // Records are: kind byte, length byte, that many bytes.
    var index = 0
    while index + 2 <= bytes.count {
        let kind = bytes[index] % 4
        let length = Int(bytes[index + 1] % 12)
        index += 2
        let body = Array(bytes[index..<min(bytes.count, index + length)])
        index += length
        clock += 1
        switch kind {
        case 0:
            if case .accepted = subscriptions.subscribe(body) { reference[body, default: 0] += 1 }
        case 1:
            let outcome = subscriptions.unsubscribe(body)
            if let count = reference[body] {
                precondition(outcome == .removed(wasLast: count == 1))
                reference[body] = count == 1 ? nil : count - 1
            } else {
                precondition(outcome == .unknown)
            }
        case 2:
            let expected = reference.keys.contains { body.starts(with: $0) }
            precondition(subscriptions.matches(body) == expected, "matches disagrees with the reference")
            // The forwarding loop's two halves: look up while the topic is at hand, count later.
            let found = body.withUnsafeBytes { topics.lookup(topic: $0, subscriptions: subscriptions) }
            precondition(found.wanted == expected)
            topics.count(found, bytes: UInt64(body.count), nowMilliseconds: clock)
        default:
            lastValues.store([body, Array(body.prefix(3))], nowMilliseconds: clock)
            precondition(lastValues.count <= 4 && lastValues.totalBytes <= 64)
        }
        precondition(subscriptions.prefixCount == reference.count)
        precondition(subscriptions.totalSubscriptions == reference.values.reduce(0, +))
        precondition(topics.count <= 8)
    }
    return 0
}
