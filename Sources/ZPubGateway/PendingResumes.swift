/// A WebSocket client's `since` subscribes that wait for its current resume to finish (one
/// round per client at a time), oldest first.
///
/// Bounded by the client's distinct prefixes (at most `max_client_prefixes`): a prefix asked
/// for again replaces its earlier request (the latest `since` wins), and an unsubscribed prefix
/// leaves the queue, so repeating a request cannot grow it.
struct PendingResumes: Equatable {
    struct Request: Equatable {
        var prefixes: [[UInt8]]
        var after: UInt64
    }

    private(set) var requests: [Request] = []

    var isEmpty: Bool { requests.isEmpty }

    mutating func add(_ prefixes: [[UInt8]], after: UInt64) {
        remove(prefixes)
        requests.append(Request(prefixes: prefixes, after: after))
    }

    mutating func remove(_ prefixes: [[UInt8]]) {
        for index in requests.indices { requests[index].prefixes.removeAll { prefixes.contains($0) } }
        requests.removeAll { $0.prefixes.isEmpty }
    }

    /// The oldest request, taken off the queue.
    mutating func next() -> Request? {
        requests.isEmpty ? nil : requests.removeFirst()
    }
}
