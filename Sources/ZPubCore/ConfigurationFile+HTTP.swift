/// The `[http]` section's keys (see `HTTPSettings` and docs/http.md).
extension Schema {
    static func httpInteger(_ key: String, _ path: WritableKeyPath<HTTPSettings, Int> & Sendable) -> Field {
        Field(section: "http", key: key, configurationKey: key) { value, configuration in
            guard case .integer(let number) = value else { return "\(key) must be an integer, not \(value.typeName)" }
            configuration.http[keyPath: path] = number
            return nil
        }
    }

    /// An integer whose absence means something of its own (a value derived from others).
    static func httpInteger(_ key: String, _ path: WritableKeyPath<HTTPSettings, Int?> & Sendable) -> Field {
        Field(section: "http", key: key, configurationKey: key) { value, configuration in
            guard case .integer(let number) = value else { return "\(key) must be an integer, not \(value.typeName)" }
            configuration.http[keyPath: path] = number
            return nil
        }
    }

    static func httpStrings(
        _ key: String, _ path: WritableKeyPath<HTTPSettings, [String]> & Sendable, example: String
    ) -> Field {
        Field(section: "http", key: key, configurationKey: key) { value, configuration in
            switch value {
            case .stringArray(let list): configuration.http[keyPath: path] = list
            case .string(let single): configuration.http[keyPath: path] = [single]
            default: return "\(key) must be an array of strings, e.g. [\(example)], not \(value.typeName)"
            }
            return nil
        }
    }

    static func httpPath(_ key: String, _ path: WritableKeyPath<HTTPSettings, String?> & Sendable) -> Field {
        Field(section: "http", key: key, configurationKey: key) { value, configuration in
            guard case .string(let file) = value else {
                return
                    "\(key) must be a file path in quotes, e.g. \"/etc/zpub/\(key.replacing("_file", with: "")).pem\""
            }
            configuration.http[keyPath: path] = file
            return nil
        }
    }

    static let httpFields: [Field] = [
        Field(section: "http", key: "enabled", configurationKey: "enabled") { value, configuration in
            guard case .boolean(let flag) = value else { return "enabled must be true or false, not \(value.typeName)" }
            configuration.http.enabled = flag
            return nil
        },
        Field(section: "http", key: "listen", configurationKey: "listen") { value, configuration in
            guard case .string(let address) = value else {
                return "listen must be \"host:port\" in quotes, e.g. \"127.0.0.1:8080\""
            }
            configuration.http.listen = address
            return nil
        },
        httpStrings("allowed_origins", \.allowedOrigins, example: "\"https://example.com\""),
        httpInteger("client_queue", \.clientQueue),
        httpInteger("max_clients", \.maxClients),
        httpInteger("max_frame", \.maxFrame),
        httpInteger("max_client_prefixes", \.maxClientPrefixes),
        httpInteger("ping_interval", \.pingInterval),
        httpInteger("write_delay_ms", \.writeDelayMilliseconds),
        httpInteger("upstream_subscriptions_per_s", \.upstreamSubscriptionsPerSecond),
        httpInteger("max_upstream_prefixes", \.maxUpstreamPrefixes),
        httpInteger("max_user_prefixes", \.maxUserPrefixes),
        httpStrings("publish_prefixes", \.publishPrefixes, example: "\"chat.\""),
        httpStrings("tokens", \.tokens, example: "\"private.=a-long-random-token\""),
        Field(section: "http", key: "operator_token", configurationKey: "operator_token") { value, configuration in
            guard case .string(let token) = value else {
                return "operator_token must be a string in quotes, e.g. \"a-long-random-token\""
            }
            configuration.http.operatorToken = token
            return nil
        },
        httpPath("jwt_secret_file", \.jwtSecretFile),
        httpPath("jwt_public_key_file", \.jwtPublicKeyFile),
        httpPath("tls_certificate_file", \.tlsCertificateFile),
        httpPath("tls_key_file", \.tlsKeyFile),
        Field(section: "http", key: "allow_anonymous", configurationKey: "allow_anonymous") { value, configuration in
            guard case .boolean(let flag) = value else {
                return "allow_anonymous must be true or false, not \(value.typeName)"
            }
            configuration.http.allowAnonymous = flag
            return nil
        },
    ]
}
