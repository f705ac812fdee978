/// In-process endpoints that the broker always binds beside the configured ones, so that
/// components in the same process (the HTTP gateway) join it over `inproc://` with the broker's
/// libzmq context. They are not configuration: CONFIG's `bound` does not list them, and a
/// configured endpoint under `reservedPrefix` is refused.
public enum InternalEndpoints {
    public static let reservedPrefix = "inproc://zpubd/"

    /// A PAIR on which the HTTP gateway publishes messages that want a receipt (POST /publish):
    /// the forwarding loop forwards each as if PULLed, and answers with its history sequence.
    /// Bound only while the gateway is configured.
    public static let receipts = reservedPrefix + "receipts"

    /// A receipt: the kept message's history sequence, 8 bytes little-endian (0: not kept);
    /// `refusedWhilePaused` or `refusedWhilePassive`: refused and not forwarded.
    public static func receipt(sequence: UInt64) -> [UInt8] { withUnsafeBytes(of: sequence.littleEndian) { Array($0) } }
    /// The receipt of a message refused because forwarding is paused (PAUSE).
    public static let refusedWhilePaused: [UInt8] = []
    /// The receipt of a message refused because this broker is the passive one of a pair: it
    /// forwards nothing until it takes over, and RESUME does not change that.
    public static let refusedWhilePassive: [UInt8] = [UInt8(ascii: "p")]

    /// The internal endpoint of a socket role; nil for XSUB (nothing in process publishes there).
    public static func endpoint(for role: BrokerSocketRole) -> String? {
        role == .xsub ? nil : reservedPrefix + role.rawValue
    }
}
