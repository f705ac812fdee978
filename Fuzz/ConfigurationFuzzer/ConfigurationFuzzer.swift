import ZPubCore

/// libFuzzer entry point: any bytes as a configuration file. The parser must never trap, must
/// report every problem with a line inside the file, and must accept only valid configurations.
@_cdecl("LLVMFuzzerTestOneInput")
public func configurationFuzzer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lineCount = text.utf8.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
    switch ConfigurationFile.parse(text) {
    case .success(let configuration):
        precondition(configuration.validate().isEmpty, "an accepted configuration must be valid")
    case .failure(let failure):
        precondition(!failure.problems.isEmpty)
        for problem in failure.problems {
            precondition(!problem.message.isEmpty)
            if let line = problem.line { precondition(line >= 1 && line <= lineCount, "line \(line) of \(lineCount)") }
        }
    }
    _ = KeyList.parse(text)
    _ = CIDR(text)
    _ = Base64.decode(text)
    return 0
}
