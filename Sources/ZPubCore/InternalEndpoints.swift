/// In-process endpoints that the broker always binds beside the configured ones, so that
/// components in the same process (the HTTP gateway) join it over `inproc://` with the broker's
/// libzmq context. They are not configuration: CONFIG's `bound` does not list them, and a
/// configured endpoint under `reservedPrefix` is refused.
public enum InternalEndpoints {
    public static let reservedPrefix = "inproc://zpubd/"

    /// The internal endpoint of a socket role; nil for XSUB (nothing in process publishes there).
    public static func endpoint(for role: BrokerSocketRole) -> String? {
        role == .xsub ? nil : reservedPrefix + role.rawValue
    }
}
