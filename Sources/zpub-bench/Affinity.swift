#if canImport(Glibc)
    import Glibc
#endif

/// Pins the benchmark's clients to one CPU and the forwarder to another, so that on a small
/// machine the forwarder's speed is not decided by how the scheduler interleaves it with the
/// clients, and runs are comparable with one another.
enum Affinity {
    /// Restricts the calling thread, and every thread it creates afterwards, to `cpu`.
    /// Call before any other thread is started.
    static func pinCurrentThread(to cpu: Int) -> Bool {
        var set = cpu_set_t()
        // cpu_set_t is a bit array; CPU_SET is a C macro Swift cannot call.
        withUnsafeMutableBytes(of: &set) { bytes in
            bytes[cpu / 8] |= UInt8(1 << (cpu % 8))
        }
        // Glibc's Swift module hides sched_setaffinity (it is a _GNU_SOURCE declaration).
        typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else { return false }
        let setAffinity = unsafeBitCast(symbol, to: SetAffinity.self)
        return withUnsafeBytes(of: &set) { setAffinity(0, $0.count, $0.baseAddress!) } == 0
    }
}
