/// The `[ha]` section's keys (see `PairSettings` and docs/topologies.md).
extension Schema {
    static func pairEndpoint(_ key: String, _ path: WritableKeyPath<PairSettings, String?> & Sendable) -> Field {
        Field(section: "ha", key: key, configurationKey: key) { value, configuration in
            guard case .string(let endpoint) = value else {
                return "\(key) must be an endpoint in quotes, e.g. \"tcp://10.0.0.1:5600\""
            }
            configuration.pair[keyPath: path] = endpoint
            return nil
        }
    }

    static let pairFields: [Field] = [
        Field(section: "ha", key: "role", configurationKey: "role") { value, configuration in
            guard case .string(let text) = value, let role = PairSettings.Role(rawValue: text) else {
                let given =
                    if case .string(let text) = value {
                        ", not \"\(text)\"\(PairSettings.Role(rawValue: text.lowercased()) != nil ? " (lower case)" : "")"
                    } else { "" }
                return "role must be \"primary\" or \"backup\"\(given)"
            }
            configuration.pair.role = role
            return nil
        },
        pairEndpoint("bind", \.bind),
        pairEndpoint("peer", \.peer),
        Field(section: "ha", key: "peer_public_key_file", configurationKey: "peer_public_key_file") {
            value, configuration in
            guard case .string(let path) = value else {
                return "peer_public_key_file must be a path in quotes, e.g. \"/etc/zpub/peer.public\""
            }
            configuration.pair.peerPublicKeyFile = path
            return nil
        },
        Field(section: "ha", key: "failover_ms", configurationKey: "failover_ms") { value, configuration in
            guard case .integer(let number) = value else {
                return "failover_ms must be an integer, not \(value.typeName)"
            }
            configuration.pair.failoverMilliseconds = number
            return nil
        },
    ]
}
