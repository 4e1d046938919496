import Foundation
import VLMWire

/// Registers every method the daemon serves: the daemon's and models/*, then each model family's.
/// Each family of methods lives in its own file.
func registerHandlers(_ table: inout HandlerTable, services: Services) {
    registerDaemonHandlers(&table, services: services)
    registerModelHandlers(&table, services: services)
    for family in services.families.all { family.registerHandlers(&table, services: services) }
}

func registerDaemonHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(PingRequest.self) { params, context in
        if let delay = params.delayMs {
            guard (0...600_000).contains(delay) else {
                throw RPCError.invalidParams("params.delayMs: expected an integer in 0...600000")
            }
            try await Task.sleep(for: .milliseconds(delay))
        }
        return PingResult(pong: true, echo: params.echo)
    }

    table.register(DebugStreamRequest.self) { params, context in
        guard (0...1_000_000).contains(params.count) else {
            throw RPCError.invalidParams("params.count: expected an integer in 0...1000000")
        }
        let interval = params.intervalMs ?? 0
        guard (0...60_000).contains(interval) else {
            throw RPCError.invalidParams("params.intervalMs: expected an integer in 0...60000")
        }
        let progress = await context.beginProgress(title: "Counting to \(params.count)")
        for index in 0..<params.count {
            try context.checkCancellation()
            if interval > 0 { try await Task.sleep(for: .milliseconds(interval)) }
            await context.sendPartial(DebugStreamPartial(index: index))
            await progress.report(fraction: Double(index + 1) / Double(max(params.count, 1)), message: "\(index + 1)/\(params.count)")
        }
        await progress.end()
        return DebugStreamResult(count: params.count)
    }
}
