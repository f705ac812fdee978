import ArgumentParser
import ZPubCore

/// zpub: publish, subscribe and inspect a running zpubd, in the manner of redis-cli,
/// nats and mosquitto_pub/sub.
@main
struct ZPubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zpub",
        abstract: "Publish to, subscribe from and inspect a zpubd broker.",
        discussion: """
            Endpoints default to zpubd's own defaults (loopback): control tcp://127.0.0.1:5555,
            xpub tcp://127.0.0.1:5556, pull tcp://127.0.0.1:5557, xsub tcp://127.0.0.1:5558.
            Every command gives up after --timeout instead of waiting for a broker that is not there.
            """,
        version: ZPubVersion.current,
        subcommands: [
            Publish.self, Subscribe.self, Stats.self, Health.self, Subscriptions.self, Topics.self, Ping.self,
            ShowConfig.self, Pause.self, Resume.self, KeyGen.self, Top.self, History.self,
        ]
    )
}

/// Where the control socket is and how long to wait for it; shared by the inspection commands.
struct ControlOptions: ParsableArguments {
    @Option(
        name: [.customShort("c"), .long], help: ArgumentHelp("The broker's control endpoint.", valueName: "endpoint"))
    var control = BrokerConfiguration.Defaults.controlEndpoints[0]

    @Option(name: .long, help: ArgumentHelp("Give up after this many milliseconds.", valueName: "ms"))
    var timeout = 3_000

    @Flag(name: .long, help: "Print the broker's JSON reply as it came (top: one JSON line of rates per refresh).")
    var json = false

    @OptionGroup var curve: CurveOptions

    var client: ControlClient { ControlClient(endpoint: control, timeoutMilliseconds: timeout, curve: curve) }
}
