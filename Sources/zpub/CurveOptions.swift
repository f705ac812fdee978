import ArgumentParser
import Foundation
import ZPubCore
import ZeroMQ

/// CURVE for the CLI's sockets, when the broker's socket requires it.
struct CurveOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The broker's CURVE public key: 40 characters of Z85, or a file holding it (zpub keygen's NAME.public).",
            valueName: "key-or-file"))
    var serverKey: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "This client's CURVE secret key file (zpub keygen's NAME.secret). Without it, a fresh key pair is used.",
            valueName: "file"))
    var clientKey: String?

    /// Before anything connects, as any other wrong command line (exit 64): these were found
    /// at the first connection, exit 1 (an audit).
    func validate() throws {
        if clientKey != nil && serverKey == nil {
            throw ValidationError("--client-key needs --server-key (the broker's public key)")
        }
        do {
            if let serverKey { _ = try Self.readKey(serverKey, what: "--server-key", kind: .public) }
            if let clientKey { _ = try Self.readKey(clientKey, what: "--client-key", kind: .secret) }
        } catch let error as CLIError {
            throw ValidationError(error.description)
        }
    }

    /// Makes `socket` a CURVE client when --server-key was given.
    func apply(to socket: Socket) throws {
        guard let serverKey else {
            if clientKey != nil { throw CLIError("--client-key needs --server-key (the broker's public key)") }
            return
        }
        let server = try Self.readKey(serverKey, what: "--server-key", kind: .public)
        let pair: CurveKeyPair
        if let clientKey {
            pair = try CurveKeyPair(secretKey: try Self.readKey(clientKey, what: "--client-key", kind: .secret))
        } else {
            pair = try CurveKeyPair.generate()
        }
        try socket.makeCurveClient(serverKey: server, keyPair: pair)
    }

    /// A key given inline (Z85) or in a file (its first non-comment line), which must not be
    /// of the other kind when its header (zpub keygen's) says which it is.
    static func readKey(_ value: String, what: String, kind: KeyList.Kind) throws -> CurveKey {
        if let key = CurveKey(z85: value) { return key }
        guard let text = try? String(contentsOfFile: value, encoding: .utf8) else {
            throw CLIError("\(what) \(value) is neither a Z85 key (40 characters) nor a readable file")
        }
        if let wrong = KeyList.wrongKind(text, path: value, wanted: kind) { throw CLIError("\(what) \(wrong)") }
        let line = text.split(separator: "\n").first { !$0.hasPrefix("#") && !$0.allSatisfy(\.isWhitespace) }
        guard let line, let key = CurveKey(z85: line) else {
            throw CLIError("\(value) holds no CURVE key (40 characters of Z85, as `zpub keygen` writes)")
        }
        return key
    }
}

struct KeyGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new CURVE key pair: NAME.public and NAME.secret (Z85; the secret readable only by you).",
        discussion: """
            For the broker: name NAME.secret in [security] server_secret_key_file and give \
            clients the public key (--server-key). For a client: put NAME.public in the \
            broker's allowed_keys and use --client-key NAME.secret.
            """)

    @Argument(help: "The path and base name of the two files, e.g. /etc/zpub/server.")
    var name: String

    @Flag(name: .long, help: "Overwrite existing files.")
    var force = false

    /// A name that ends in "/" has no base name: the files were written as the directory's
    /// hidden `.public` and `.secret`.
    func validate() throws {
        if name.isEmpty || name.hasSuffix("/") || name.hasSuffix("/.") || name == "." {
            throw ValidationError(
                "NAME \"\(name)\" names a directory, not the files' base name: give one, e.g. \(name.hasSuffix("/") ? name : name + "/")server"
            )
        }
    }

    func run() throws {
        try reportingErrors {
            let pair = try CurveKeyPair.generate()
            let files = [("\(name).public", pair.publicKey.z85), ("\(name).secret", pair.secretKey.z85)]
            for (path, _) in files where FileManager.default.fileExists(atPath: path) && !force {
                throw CLIError("\(path) exists; use --force to overwrite it (clients using the old key lose access)")
            }
            let previous = umask(0o077)
            defer { umask(previous) }
            for (path, key) in files {
                let text =
                    "# CURVE \(path.hasSuffix(".secret") ? "secret" : "public") key, written by zpub keygen\n\(key)\n"
                guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
                    throw CLIError("cannot write \(path): check that the directory exists and is writable")
                }
                // The public key is for handing out (clients give it as --server-key, brokers
                // list it in allowed_keys), often from another account than the one that ran
                // keygen with sudo; only the secret key stays its owner's.
                chmod(path, path.hasSuffix(".secret") ? 0o600 : 0o644)
            }
            Output.line("public key: \(pair.publicKey.z85)")
            Output.line("wrote \(name).public (mode 0644) and \(name).secret (mode 0600)")
        }
    }
}
