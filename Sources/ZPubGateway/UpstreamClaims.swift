import ZPubCore

/// The distinct prefixes the gateway's clients hold, each with how many hold it, capped at
/// `max_upstream_prefixes`. Every prefix here is (or will be, once the budget lets it) one
/// subscription of the gateway at the broker, two under a history prefix; the broker's table
/// holds `max_subscriptions` for everyone, so without a cap 10,000 clients of 64 prefixes each
/// could fill it: the broker then refused the rest, and ZeroMQ subscribers' new subscriptions
/// and every catch-up's marker with them, while the gateway told its clients "subscribed".
///
/// The cap is one pool for all clients, so the prefixes the clients of one user (a JWT's
/// `sub`) hold are capped too, at `max_user_prefixes` over all their connections: one user
/// connecting again and again with new prefixes cannot take the whole pool. (Clients without a
/// JWT have no user: anonymous and static-token clients share the pool, bounded by
/// `max_clients` and `max_client_prefixes`.)
///
/// Claimed on the event loop that answers the request, before the client is told anything,
/// so a refusal (`gateway_full`, `user_full`) is an answer and not a silence; released when
/// the client lets go of the prefix or leaves. A prefix some client holds already costs the
/// pool nothing more, so a full gateway still takes new clients of popular prefixes (within
/// their user's limit). Lingering prefixes (`UpstreamLinger`) are not claimed: the link lets
/// them go when claimed ones need the room.
final class UpstreamClaims: Sendable {
    /// Why a claim was refused, or that it was not.
    enum Outcome: Equatable {
        case claimed
        /// The new prefixes would take the gateway past `max_upstream_prefixes`.
        case gatewayFull
        /// They would take the client's user past `max_user_prefixes`.
        case userFull
    }

    private struct State {
        var holders: [[UInt8]: Int] = [:]
        var limit: Int
        /// Per user: each prefix its clients hold, and by how many of them.
        var users: [String: [[UInt8]: Int]] = [:]
        var userLimit: Int

        func outcome(of prefixes: Set<[UInt8]>, user: String?) -> Outcome {
            let new = prefixes.reduce(0) { $0 + (holders[$1] == nil ? 1 : 0) }
            guard new == 0 || holders.count + new <= limit else { return .gatewayFull }
            guard let user, userLimit > 0 else { return .claimed }
            let held = users[user] ?? [:]
            let newToUser = prefixes.reduce(0) { $0 + (held[$1] == nil ? 1 : 0) }
            return newToUser == 0 || held.count + newToUser <= userLimit ? .claimed : .userFull
        }

        mutating func add(_ prefixes: Set<[UInt8]>, user: String?) {
            for prefix in prefixes { holders[prefix, default: 0] += 1 }
            guard let user else { return }
            for prefix in prefixes { users[user, default: [:]][prefix, default: 0] += 1 }
        }

        mutating func remove(_ prefixes: Set<[UInt8]>, user: String?) {
            for prefix in prefixes {
                guard let count = holders[prefix] else { continue }
                holders[prefix] = count > 1 ? count - 1 : nil
            }
            guard let user, var held = users[user] else { return }
            for prefix in prefixes {
                guard let count = held[prefix] else { continue }
                held[prefix] = count > 1 ? count - 1 : nil
            }
            users[user] = held.isEmpty ? nil : held
        }
    }

    private let state: Locked<State>

    init(limit: Int, userLimit: Int = HTTPSettings.Defaults.maxUserPrefixes) {
        state = Locked(State(limit: limit, userLimit: userLimit))
    }

    /// `max_upstream_prefixes`; a reload lowers it for new claims only (held ones stay).
    var limit: Int {
        get { state.withLock { $0.limit } }
        set { state.withLock { $0.limit = newValue } }
    }

    /// `max_user_prefixes` (0: none); a reload lowers it for new claims only, as `limit`.
    var userLimit: Int {
        get { state.withLock { $0.userLimit } }
        set { state.withLock { $0.userLimit = newValue } }
    }

    /// Distinct prefixes claimed.
    var count: Int { state.withLock { $0.holders.count } }

    /// Distinct prefixes the clients of `user` hold.
    func count(of user: String) -> Int { state.withLock { $0.users[user]?.count ?? 0 } }

    /// Claims every one of `prefixes` for one client of `user` (nil: no JWT) (a client's
    /// prefixes are a set: pass each once), or none, with why.
    func claim(_ prefixes: Set<[UInt8]>, user: String?) -> Outcome {
        state.withLock { state in
            let outcome = state.outcome(of: prefixes, user: user)
            if outcome == .claimed { state.add(prefixes, user: user) }
            return outcome
        }
    }

    /// What `claim` would answer now (a check before a WebSocket upgrade, which claims them
    /// once the connection is a client).
    func wouldAdmit(_ prefixes: Set<[UInt8]>, user: String?) -> Outcome {
        state.withLock { $0.outcome(of: prefixes, user: user) }
    }

    /// One client of `user` lets go of `prefixes` (each claimed once by it).
    func release(_ prefixes: Set<[UInt8]>, user: String?) {
        state.withLock { $0.remove(prefixes, user: user) }
    }

    /// A client's token was refreshed for another user: its prefixes count for that user from
    /// now on, even past its limit (they are held already; only new ones are checked).
    func move(_ prefixes: Set<[UInt8]>, from old: String?, to new: String?) {
        guard old != new else { return }
        state.withLock { state in
            state.remove(prefixes, user: old)
            state.add(prefixes, user: new)
        }
    }

    /// What a client is told when a claim is refused: the error code and the reason.
    func refusal(_ outcome: Outcome, _ prefixes: Set<[UInt8]>, user: String?) -> (code: String, message: String) {
        let these = prefixes.count == 1 ? "this one is" : "these are"
        switch outcome {
        case .userFull:
            let limit = userLimit
            return (
                "user_full",
                "the clients of \(user ?? "this user") hold max_user_prefixes (\(limit)) distinct prefixes and \(these) new to them; let go of some (unsubscribe, or close another connection), subscribe to a wider prefix, or ask the operator to raise max_user_prefixes in [http]"
            )
        case .gatewayFull, .claimed:
            let limit = self.limit
            return (
                "gateway_full",
                "the gateway holds max_upstream_prefixes (\(limit)) distinct prefixes for its clients and \(these) new to it; try again later, subscribe to a wider prefix, or ask the operator to raise max_upstream_prefixes in [http]"
            )
        }
    }
}
