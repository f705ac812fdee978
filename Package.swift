// swift-tools-version:6.0
// zpub: a ZeroMQ pub/sub broker daemon (zpubd) and its command line tool (zpub).
//
// Dependencies point one way:
//   executables -> ZPubBroker -> {ZeroMQ, ZPubCore, ZPubStore, Systemd} -> C shims.
// Nothing outside `ZeroMQ` touches libzmq's C API; nothing outside `Systemd` touches libsystemd;
// nothing outside `ZPubStore` touches SQLite; nothing outside ZPubGateway's `SignatureKey`
// touches libgcrypt.
import PackageDescription

// Release executables are linked with lld and packed relative relocations (DT_RELR, glibc 2.36):
// the 78,000 relocations of a static-stdlib build with SwiftNIO took 1.9 MB of `.rela.dyn`,
// which the loader reads at every start (zpubd's idle RSS: 19.7 -> 18.0 MiB). Debian's gold,
// swiftc's default linker, cannot pack them. And they export no symbols: the static stdlib's
// link arguments ask for -export-dynamic, which put 32,000 of zpubd's own symbols (2 MB of
// .dynsym and .dynstr) in the table the loader searches for every library's symbols, all of it
// resident; nothing looks symbols up in an executable (-1.5 MiB idle RSS).
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags(
        ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic"],
        .when(configuration: .release))
]

let package = Package(
    name: "zpub",
    products: [
        .executable(name: "zpubd", targets: ["zpubd"]),
        .executable(name: "zpub", targets: ["zpub"]),
        .executable(name: "zpub-bench", targets: ["zpub-bench"]),
        // LD_PRELOAD-able malloc counter for the allocation test (Tests/IntegrationTests).
        .library(name: "MallocCounter", type: .dynamic, targets: ["CMallocCounter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // The HTTP gateway (WebSocket, SSE, metrics): SwiftNIO's own HTTP and WebSocket modules.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // The gateway's HTTPS/WSS (BoringSSL inside); docs/http.md ("Implementation") gives what
        // it costs to build.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // C shims: module maps over the system libraries, never part of any public API.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),

        // Linux details behind plain C functions: a drop-all socket filter, the lowest free
        // descriptor, malloc_trim.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),

        // JWT signatures (HMAC, RSA, Ed25519) for the gateway: libgcrypt, which libsystemd
        // already loads (Sources/CGcrypt/shim.h says why this library).
        .systemLibrary(
            name: "CGcrypt",
            pkgConfig: "libgcrypt",
            providers: [.apt(["libgcrypt20-dev"])]
        ),

        .target(name: "CKernel"),

        // zpubd's wrappers of epoll, for libzmq's epoll sets only: a peer's hang-up while
        // libzmq is not reading it is held back, so that what the peer sent before it is read
        // (libzmq 4.3.4 dropped it: the last messages of an ipc producer that exits while its
        // queue is full). And of accept, for its listeners out of descriptors: they rest
        // instead of spinning, and an ipc listener's EMFILE no longer aborts. Linked into
        // zpubd alone; its header says how.
        .target(name: "CHangupDeferral"),

        // A thin, safe Swift layer over libzmq: context, socket, message, poller, errors.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),

        // Broker logic with no I/O: configuration, subscription and topic tables, statistics,
        // the control protocol. Everything here is testable without sockets.
        .target(name: "ZPubCore"),

        // Message history on SQLite (WAL): the store, with no sockets and no threads of its own.
        .target(name: "ZPubStore", dependencies: ["CSQLite", "ZPubCore"]),

        // systemd glue: sd_notify, watchdog, socket activation, the journal.
        .target(
            name: "Systemd",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]
        ),

        // The broker: forwarding loop, control server, reload, shutdown.
        .target(
            name: "ZPubBroker",
            dependencies: [
                "ZeroMQ", "ZPubCore", "ZPubStore", "Systemd", "CKernel",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The HTTP gateway: WebSocket and SSE for browsers, health, stats, metrics and a status
        // page for operators. Joins the broker over inproc; never calls ZeroMQ on NIO's threads.
        .target(
            name: "ZPubGateway",
            dependencies: [
                "ZeroMQ", "ZPubCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                "CGcrypt",
            ]
        ),

        .executableTarget(
            name: "zpubd",
            dependencies: [
                "ZPubBroker", "ZPubCore", "ZPubStore", "Systemd", "ZPubGateway", "CHangupDeferral",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: releaseLinking
        ),
        .executableTarget(
            name: "zpub",
            dependencies: [
                "ZeroMQ", "ZPubCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: releaseLinking
        ),

        // The benchmark: drives zpubd, zmq_proxy and a plain poll loop with the same clients.
        .executableTarget(
            name: "zpub-bench",
            dependencies: [
                "ZeroMQ", "ZPubCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: releaseLinking
        ),
        // Counts malloc and friends in a process it is preloaded into; never linked into anything.
        .target(name: "CMallocCounter"),

        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "ZPubCoreTests", dependencies: ["ZPubCore"]),
        .testTarget(name: "ZPubStoreTests", dependencies: ["ZPubStore", "ZPubCore"]),
        .testTarget(name: "SystemdTests", dependencies: ["Systemd"]),
        .testTarget(
            name: "ZPubGatewayTests",
            dependencies: [
                "ZPubGateway", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "ZPubBrokerTests",
            dependencies: ["ZPubBroker", "ZeroMQ", "CKernel", .product(name: "Logging", package: "swift-log")]),
        // End to end: starts the real zpubd and zpub binaries and talks to them over real
        // sockets, from Swift and from pyzmq.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["ZeroMQ", "ZPubCore"],
            exclude: ["python"]
        ),
    ]
)

// Fuzz targets (libFuzzer): built only by `make fuzz` / scripts/fuzz.sh, which sets ZPUB_FUZZ
// and passes `--sanitize fuzzer --sanitize address`. A normal build must not see them: they
// have no main of their own (libFuzzer provides it).
if Context.environment["ZPUB_FUZZ"] != nil {
    for name in [
        "ControlRequestFuzzer", "ConfigurationFuzzer", "SubscriptionFuzzer", "MessageJSONFuzzer",
    ] {
        package.targets.append(.executableTarget(name: name, dependencies: ["ZPubCore"], path: "Fuzz/\(name)"))
    }
}
