import ArgumentParser
import Foundation
import VLMWire

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers; report round-trip latency.")

    @OptionGroup var options: DaemonOptions

    @Option(help: "Number of pings to send one after another.")
    var count = 1

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let session = try await Session.start(options)
        var latencies: [Double] = []
        for _ in 0..<count {
            let start = ContinuousClock.now
            _ = try await session.run(Method.ping, params: [:])
            let elapsed = ContinuousClock.now - start
            latencies.append(Double(elapsed.components.attoseconds) * 1e-15 + Double(elapsed.components.seconds) * 1e3)
        }
        await session.close()
        let median = latencies.sorted()[latencies.count / 2]
        if options.json {
            printJSON(["pongs": .int(Int64(count)), "medianMs": .double(median)])
        } else {
            print(String(format: "pong ×%d, median round trip %.3f ms", count, median))
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's uptime, models, requests in flight and caches.")

    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let session = try await Session.start(options)
        let status = try await session.run(Method.status, params: [:])
        await session.close()
        printJSON(status)
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send any request: vlm call METHOD '{\"param\": ...}'. Streamed events print as JSON lines.")

    @OptionGroup var options: DaemonOptions

    @Argument(help: "The method name, e.g. ping or daemon/status.")
    var method: String

    @Argument(help: "The params as a JSON object.")
    var params = "{}"

    func run() async throws {
        let value = try parseJSONArgument(params, name: "params")
        guard case .object = value else { throw ValidationError("params must be a JSON object") }
        var options = self.options
        options.json = true
        let session = try await Session.start(options)
        let result = try await session.run(method, params: value)
        await session.close()
        printJSON(result)
    }
}
