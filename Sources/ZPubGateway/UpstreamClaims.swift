import ZPubCore

/// The distinct prefixes the gateway's clients hold, each with how many hold it, capped at
/// `max_upstream_prefixes`. Every prefix here is (or will be, once the budget lets it) one
/// subscription of the gateway at the broker, two under a history prefix; the broker's table
/// holds `max_subscriptions` for everyone, so without a cap 10,000 clients of 64 prefixes each
/// could fill it: the broker then refused the rest, and ZeroMQ subscribers' new subscriptions
/// and every catch-up's marker with them, while the gateway told its clients "subscribed".
///
/// Claimed on the event loop that answers the request, before the client is told anything,
/// so a refusal (`gateway_full`) is an answer and not a silence; released when the client
/// lets go of the prefix or leaves. A prefix some client holds already costs nothing more, so
/// a full gateway still takes new clients of popular prefixes. Lingering prefixes
/// (`UpstreamLinger`) are not claimed: the link lets them go when claimed ones need the room.
final class UpstreamClaims: Sendable {
    private let state: Locked<(holders: [[UInt8]: Int], limit: Int)>

    init(limit: Int) {
        state = Locked(([:], limit))
    }

    /// `max_upstream_prefixes`; a reload lowers it for new claims only (held ones stay).
    var limit: Int {
        get { state.withLock { $0.limit } }
        set { state.withLock { $0.limit = newValue } }
    }

    /// Distinct prefixes claimed.
    var count: Int { state.withLock { $0.holders.count } }

    /// Claims every one of `prefixes` for one client (a client's prefixes are a set: pass
    /// each once), or none: false when the new ones would take the gateway past its limit.
    func claim(_ prefixes: Set<[UInt8]>) -> Bool {
        state.withLock { state in
            let new = prefixes.reduce(0) { $0 + (state.holders[$1] == nil ? 1 : 0) }
            guard new == 0 || state.holders.count + new <= state.limit else { return false }
            for prefix in prefixes { state.holders[prefix, default: 0] += 1 }
            return true
        }
    }

    /// Whether `prefixes` could be claimed now (a check before a WebSocket upgrade, which
    /// claims them once the connection is a client).
    func wouldAdmit(_ prefixes: Set<[UInt8]>) -> Bool {
        state.withLock { state in
            let new = prefixes.reduce(0) { $0 + (state.holders[$1] == nil ? 1 : 0) }
            return new == 0 || state.holders.count + new <= state.limit
        }
    }

    /// One client lets go of `prefixes` (each claimed once by it).
    func release(_ prefixes: Set<[UInt8]>) {
        state.withLock { state in
            for prefix in prefixes {
                guard let holders = state.holders[prefix] else { continue }
                state.holders[prefix] = holders > 1 ? holders - 1 : nil
            }
        }
    }

    /// What a client is told when the gateway holds its limit of distinct prefixes.
    func refusal(_ prefixes: Set<[UInt8]>) -> String {
        let limit = self.limit
        return
            "the gateway holds max_upstream_prefixes (\(limit)) distinct prefixes for its clients and \(prefixes.count == 1 ? "this one is" : "these are") new to it; try again later, subscribe to a wider prefix, or ask the operator to raise max_upstream_prefixes in [http]"
    }
}
