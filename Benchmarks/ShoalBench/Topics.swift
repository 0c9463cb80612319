// `topics`: N topics × M subscribers each × P publishers, against a server speaking the protocol of `shoal serve
// --handler topics` ({"subscribe":T}, answered {"subscribed":T}; {"publish":T,"data":D}, D delivered to T's
// subscribers). Subscriber g joins topic g mod N; each publisher sends to the topics in turn. The data is a JSON
// string starting with the same 16-digit stamp as `broadcast` (send time and publisher), so deliveries are timed
// end to end; the fan-out per message is M.
import ArgumentParser

struct Topics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish/subscribe: deliveries per second and end-to-end latency over N topics × M subscribers.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Topics (t0, t1, ...).") var topics = 10
    @Option(name: .customLong("subscribers-per-topic"), help: "Connections subscribed to each topic.")
    var subscribersPerTopic = 10
    @Option(help: "Connections that publish (they subscribe to nothing).") var publishers = 1
    @Option(help: "Messages per second per publisher.") var rate = 100.0
    @Option(help: "Bytes of each message's data (at least 16: send time and publisher id).") var size = 32
    @Option(help: "Data after the 16-digit stamp: letters (the same every time) or json (JSON-like records with apostrophes for quotes, different in every message).")
    var payload = PayloadKind.letters
    @Option(help: "Seconds per measured run.") var duration = 5.0
    @Option(help: "Seconds of load before the first run, not measured (it also lets subscriptions reach every worker).")
    var warmup = 1.0

    func validate() throws {
        guard topics >= 1, subscribersPerTopic >= 1 else { throw ValidationError("need at least one topic and one subscriber per topic") }
        guard (1...0xFFFF).contains(publishers) else { throw ValidationError("--publishers must be 1...65535") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16 (the data carries a timestamp and the publisher id)") }
        guard rate > 0, duration > 0 else { throw ValidationError("--rate and --duration must be positive") }
    }

    func run() throws {
        let plan = FanOutPlan(subscribers: topics * subscribersPerTopic, publishers: publishers, rate: rate, size: size,
                              binary: false, payload: payload, duration: duration, warmup: warmup, runs: common.runs,
                              topics: topics)
        try plan.measure(common, threading)
    }
}
