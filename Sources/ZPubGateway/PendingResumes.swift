/// A WebSocket client's catch-ups that wait for its current one to finish (one round per
/// client at a time), oldest first: `subscribe` with `since` (kept messages after a history
/// sequence), and `subscribe` of a prefix under the last-value cache (its cached values).
///
/// Bounded by the client's distinct prefixes (at most `max_client_prefixes`): a prefix asked
/// for again replaces its earlier request (the latest wins), and an unsubscribed prefix
/// leaves the queue, so repeating a request cannot grow it.
struct PendingResumes: Equatable {
    struct Request: Equatable {
        var prefixes: [[UInt8]]
        var point: ResumePoint
    }

    private(set) var requests: [Request] = []

    var isEmpty: Bool { requests.isEmpty }

    /// Queues a catch-up of `prefixes` from `point`. Joins the newest request when that one
    /// starts from the same point: subscribes one after the other (a WebSocket request naming
    /// several prefixes comes as one per prefix) make one round, not one each.
    mutating func add(_ prefixes: [[UInt8]], from point: ResumePoint) {
        remove(prefixes)
        if requests.last?.point == point {
            requests[requests.count - 1].prefixes += prefixes
        } else {
            requests.append(Request(prefixes: prefixes, point: point))
        }
    }

    /// Adds `prefix` to the oldest request of a prefix it falls under; false when there is none.
    mutating func join(_ prefix: [UInt8]) -> Bool {
        guard let index = requests.firstIndex(where: { $0.prefixes.contains { prefix.starts(with: $0) } }) else {
            return false
        }
        requests[index].prefixes.append(prefix)
        return true
    }

    /// Takes the prefixes of catch-ups of every cached value (`lastValue(after: 0)`) that
    /// `isWanted` picks.
    mutating func takeWaitingForValues(where isWanted: ([UInt8]) -> Bool) -> [[UInt8]] {
        var taken: [[UInt8]] = []
        for index in requests.indices where requests[index].point == .lastValue(after: 0) {
            taken += requests[index].prefixes.filter(isWanted)
            requests[index].prefixes.removeAll(where: isWanted)
        }
        requests.removeAll { $0.prefixes.isEmpty }
        return taken
    }

    func contains(_ prefix: [UInt8]) -> Bool {
        requests.contains { $0.prefixes.contains(prefix) }
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
