import ArgumentParser
import Foundation
import VLMWire

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers; report round-trip latency.")

    @OptionGroup var options: DaemonOptions

    @Option(parsing: .unconditional, help: "Number of pings to send one after another.")
    var count = 1

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let session = try await Session.start(options)
        var latencies: [Double] = []
        for _ in 0..<count {
            let start = ContinuousClock.now
            _ = try await session.send(PingRequest.self, PingParams())
            let elapsed = ContinuousClock.now - start
            latencies.append(Double(elapsed.components.attoseconds) * 1e-15 + Double(elapsed.components.seconds) * 1e3)
        }
        await session.close()
        let median = latencies.sorted()[latencies.count / 2]
        if options.json {
            Terminal.json(["pongs": .int(Int64(count)), "medianMs": .double(median)])
        } else {
            Terminal.line(String(format: "pong ×%d, median round trip %.3f ms", count, median))
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's uptime, models, requests in flight and caches.")

    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let session = try await Session.start(options)
        let status = try await session.send(StatusRequest.self, NoParams())
        await session.close()
        if options.json { Terminal.json(status) } else { Terminal.line(renderStatus(status)) }
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
        let result = try await session.run(method, params: value, onCancelled: { sofar in
            if sofar != .null { Terminal.json(sofar) }
        })
        await session.close()
        Terminal.json(result)
    }
}

/// daemon/status as a person reads it: uptime, memory, models, requests in flight, caches.
func renderStatus(_ s: StatusResult) -> String {
    func mib(_ bytes: Int?) -> String { String(format: "%.1f MiB", Double(bytes ?? 0) / 1_048_576) }
    func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
    let memory = s.memory
    var lines = [
        String(format: "uptime %.1f s, %d request(s) in flight", s.uptimeSeconds, s.requestsInFlight),
        "memory: models \(mib(memory.modelBytes)) + generation caches \(mib(memory.generationBytes)) of \(mib(memory.budgetBytes)) budget, resident \(mib(memory.residentBytes))",
        "model loads since start: \(s.modelLoads), clients connected: \(s.connections)",
    ]
    lines.append("")
    lines.append(s.models.isEmpty ? "models: none loaded" : "models:")
    for model in s.models {
        lines.append("  " + column(model.id, 24) + "  " + column(model.kind, 6) + "  " + column(mib(model.memoryBytes), 11) + "  " + model.path)
    }
    for request in s.inFlight {
        lines.append(String(format: "  request %@  %@  %.3f s", describeJSON(request.id.json), request.method, request.runningSeconds))
    }
    lines.append("")
    func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
    let headers = ["entries", "size", "budget", "hits", "misses", "evictions"], widths = [8, 12, 12, 8, 8, 10]
    lines.append(column("caches:", 26) + zip(headers, widths).map { right($0, $1) }.joined())
    for cache in s.caches {
        let cells = [String(cache.entries), mib(cache.bytes), mib(cache.budgetBytes), String(cache.hits), String(cache.misses), String(cache.evictions)]
        lines.append("  " + column(cache.name, 24) + zip(cells, widths).map { right($0, $1) }.joined())
    }
    return lines.joined(separator: "\n")
}

func describeJSON(_ value: JSONValue) -> String {
    (try? JSONCoding.encode(value)).flatMap { String(data: $0, encoding: .utf8) } ?? "?"
}
