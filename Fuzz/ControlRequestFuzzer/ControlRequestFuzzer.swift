import ZPubCore

/// libFuzzer entry point: any bytes as a control request frame (and as a multi-frame request
/// split at 0xFF bytes). Parsing must never trap, and every failure must be a reply-able error.
@_cdecl("LLVMFuzzerTestOneInput")
public func controlRequestFuzzer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for maxSize in [64, 4_096] {
        switch ControlRequest.parse(bytes, maxSize: maxSize) {
        case .success(let request):
            precondition(bytes.count <= maxSize)
            _ = request.snapshotArguments
        case .failure(let error):
            precondition(!error.message.isEmpty)
        }
    }
    let frames = bytes.split(separator: 0xFF, omittingEmptySubsequences: false).map(Array.init)
    _ = ControlRequest.parse(frames: frames, maxSize: 4_096)
    return 0
}
