/// A gateway client's number, unique for the life of the process.
typealias ClientID = UInt64

/// Which gateway clients want which topic prefixes, and so the union of prefixes that the
/// gateway's one SUB socket subscribes to: the first client to want a prefix subscribes it
/// upstream, the last one to let go unsubscribes it. Owned by the gateway's ZeroMQ thread.
///
/// Matching a topic costs one hash lookup per distinct prefix *length* in use, not one per
/// client or per prefix.
struct SubscriptionIndex {
    private var clientsByPrefix: [[UInt8]: Set<ClientID>] = [:]
    private var prefixesByClient: [ClientID: Set<[UInt8]>] = [:]
    /// Prefix length -> how many distinct prefixes have it.
    private var lengths: [Int: Int] = [:]
    private var sortedLengths: [Int] = []

    /// Distinct prefixes, i.e. the SUB socket's subscriptions.
    var distinctPrefixes: Int { clientsByPrefix.count }

    /// Adds a client's prefix. True when the prefix is new to the union (subscribe upstream).
    @discardableResult
    mutating func add(_ client: ClientID, _ prefix: [UInt8]) -> Bool {
        guard prefixesByClient[client, default: []].insert(prefix).inserted else { return false }
        if clientsByPrefix[prefix] != nil {
            clientsByPrefix[prefix]!.insert(client)
            return false
        }
        clientsByPrefix[prefix] = [client]
        lengths[prefix.count, default: 0] += 1
        if lengths[prefix.count] == 1 { sortedLengths = lengths.keys.sorted() }
        return true
    }

    /// Removes a client's prefix. True when no client wants it any more (unsubscribe upstream).
    @discardableResult
    mutating func remove(_ client: ClientID, _ prefix: [UInt8]) -> Bool {
        guard prefixesByClient[client]?.remove(prefix) != nil else { return false }
        if prefixesByClient[client]?.isEmpty == true { prefixesByClient[client] = nil }
        clientsByPrefix[prefix]?.remove(client)
        guard clientsByPrefix[prefix]?.isEmpty == true else { return false }
        clientsByPrefix[prefix] = nil
        lengths[prefix.count, default: 1] -= 1
        if lengths[prefix.count] == 0 {
            lengths[prefix.count] = nil
            sortedLengths = lengths.keys.sorted()
        }
        return true
    }

    /// Removes every prefix of a client; returns those no client wants any more.
    mutating func removeAll(_ client: ClientID) -> [[UInt8]] {
        guard let prefixes = prefixesByClient[client] else { return [] }
        return prefixes.filter { remove(client, $0) }
    }

    func prefixes(of client: ClientID) -> Set<[UInt8]> {
        prefixesByClient[client] ?? []
    }

    /// The clients that want a message on `topic`, each once.
    func clients(matching topic: [UInt8]) -> [ClientID] {
        var matched: [ClientID] = []
        var groups = 0
        for length in sortedLengths {
            if length > topic.count { break }
            if let clients = clientsByPrefix[Array(topic[0..<length])] {
                matched.append(contentsOf: clients)
                groups += 1
            }
        }
        // A client subscribed to both "a" and "a.b" gets an "a.b.c" message once.
        return groups > 1 ? Array(Set(matched)) : matched
    }
}
