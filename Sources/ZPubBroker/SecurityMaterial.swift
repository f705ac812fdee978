import ZPubCore
import ZeroMQ

/// The files the security configuration names, read: the server's CURVE key and each socket's
/// allow lists. Read at start (a problem stops the daemon, like a bad configuration) and on
/// every reload (a problem keeps the material in force).
public struct SecurityMaterial: Sendable {
    public let serverKeyPair: CurveKeyPair?
    public let policies: [String: ZAPPolicy]
    /// Things worth a warning that do not stop the daemon (e.g. a readable secret key file).
    public let warnings: [String]
    /// One of a pair over CURVE: the peer's public key ([ha] peer_public_key_file).
    public let pairPeerKey: CurveKey?

    init(serverKeyPair: CurveKeyPair?, policies: [String: ZAPPolicy], warnings: [String], pairPeerKey: CurveKey? = nil)
    {
        self.serverKeyPair = serverKeyPair
        self.policies = policies
        self.warnings = warnings
        self.pairPeerKey = pairPeerKey
    }

    public static let none = SecurityMaterial(serverKeyPair: nil, policies: [:], warnings: [])

    /// Reads every file `configuration` names; throws one message per problem.
    public static func load(for configuration: BrokerConfiguration) throws(SecurityProblems) -> SecurityMaterial {
        var problems: [String] = []
        var warnings: [String] = []
        var keyPair: CurveKeyPair?
        if let path = configuration.serverSecretKeyFile {
            do {
                let text = try TextFile.read(path)
                if let wrong = KeyList.wrongKind(text, path: path, wanted: .secret) {
                    throw SecurityProblems(["server_secret_key_file \(wrong)"])
                }
                let keys = try KeyList.parse(text, kind: .secret).get()
                guard keys.count == 1, let secret = CurveKey(z85: keys[0]) else {
                    throw SecurityProblems([
                        "\(path): expected one secret key (40 characters of Z85, as `zpub keygen` writes)"
                    ])
                }
                keyPair = try CurveKeyPair(secretKey: secret)
                if case .file(let mode) = TextFile.kind(path), mode & 0o077 != 0 {
                    warnings.append("\(path) (the server's secret key) is readable by others: chmod 600 it")
                }
            } catch let error as SecurityProblems {
                problems += error.messages
            } catch let error as ConfigurationProblem {
                problems.append("\(path):\(error.line ?? 0): \(error.message)")
            } catch {
                // A credential's reason says what to add to the unit; a path's, how to make one.
                let hint = path.hasPrefix(TextFile.credentialScheme) ? "" : "; create one with `zpub keygen`"
                problems.append("cannot read server_secret_key_file \(path): \(Self.reason(error))\(hint)")
            }
        }
        var policies: [String: ZAPPolicy] = [:]
        for role in BrokerSocketRole.allCases {
            let settings = configuration.security(for: role)
            var keys: Set<[UInt8]>?
            if let path = settings.allowedKeys {
                do {
                    keys = try readKeys(path)
                    if keys?.isEmpty == true {
                        // Closed to every CURVE client: what an empty list means, but more
                        // likely a file not yet filled than a wish.
                        warnings.append(
                            "allowed_keys \(path) of [security.\(role.rawValue)] holds no key: no CURVE client is let in there until one is added (one public key per line, as `zpub keygen` writes)"
                        )
                    }
                } catch let error as SecurityProblems {
                    problems += error.messages
                } catch {
                    problems.append(
                        "cannot read allowed_keys \(path) of [security.\(role.rawValue)]: \(Self.reason(error))")
                }
            }
            policies[role.rawValue] = ZAPPolicy(
                allowedKeys: keys, allowedAddresses: settings.allowedAddresses.compactMap(CIDR.init))
        }
        // One of a pair over CURVE: only the peer's key may connect to the pair endpoint.
        var pairPeerKey: CurveKey?
        if let path = configuration.pair.peerPublicKeyFile {
            do {
                // A credential systemd did not pass is refused with its own reason, not "missing".
                _ = try TextFile.resolve(path)
                guard TextFile.kind(path) != .missing else {
                    throw SecurityProblems([
                        "peer_public_key_file \(path) of [ha] does not exist; copy the peer's NAME.public (zpub keygen) there"
                    ])
                }
                let keys = try readKeys(path)
                guard keys.count == 1, let key = keys.first.flatMap({ CurveKey(bytes: $0) }) else {
                    throw SecurityProblems([
                        "\(path): expected one public key (the peer's NAME.public from `zpub keygen`)"
                    ])
                }
                pairPeerKey = key
                policies[PairSettings.zapDomain] = ZAPPolicy(allowedKeys: [key.bytes], allowedAddresses: [])
            } catch let error as SecurityProblems {
                problems += error.messages
            } catch {
                problems.append("cannot read peer_public_key_file \(path) of [ha]: \(Self.reason(error))")
            }
        }
        if !problems.isEmpty { throw SecurityProblems(problems) }
        return SecurityMaterial(
            serverKeyPair: keyPair, policies: policies, warnings: warnings, pairPeerKey: pairPeerKey)
    }

    /// Keys from a file, or from every regular file in a directory (hidden files skipped).
    private static func readKeys(_ path: String) throws -> Set<[UInt8]> {
        _ = try TextFile.resolve(path)
        let kind = TextFile.kind(path)
        guard kind != .missing else {
            throw SecurityProblems([
                "allowed_keys \(path) does not exist; create it (one public key per line, or a directory of key files)"
            ])
        }
        let files =
            kind == .directory
            ? try TextFile.entries(path).filter { !$0.hasPrefix(".") }.map { "\(path)/\($0)" }
            : [path]
        var keys = Set<[UInt8]>()
        for file in files where TextFile.kind(file) != .directory {
            let text = try TextFile.read(file)
            // A secret key here would be one more key to keep secret, and no client's key.
            if let wrong = KeyList.wrongKind(text, path: file, wanted: .public) { throw SecurityProblems([wrong]) }
            switch KeyList.parse(text) {
            case .success(let list):
                for key in list { if let parsed = CurveKey(z85: key) { keys.insert(parsed.bytes) } }
            case .failure(let problem):
                throw SecurityProblems(["\(file):\(problem.line ?? 0): \(problem.message)"])
            }
        }
        return keys
    }

    private static func reason(_ error: Error) -> String {
        String(describing: error)
    }
}

public struct SecurityProblems: Error, CustomStringConvertible {
    public let messages: [String]
    init(_ messages: [String]) { self.messages = messages }
    public var description: String { messages.joined(separator: "\n") }
}
