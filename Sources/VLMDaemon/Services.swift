import Foundation
import VLMTensor
import VLMWire

/// The long-lived state handlers share: the model registry, caches and the compute thread count.
/// Handlers reach models only through here; models never reach back.
public final class Services: Sendable {
    let configuration: DaemonConfiguration
    let outbox: Outbox
    let registry: ModelRegistry
    private let threadCount: Mutex<Int>

    init(configuration: DaemonConfiguration, outbox: Outbox) {
        self.configuration = configuration
        self.outbox = outbox
        self.registry = ModelRegistry(budgetBytes: configuration.memoryBudgetBytes)
        self.threadCount = Mutex(configuration.threads)
        setThreads(configuration.threads)
    }

    var threads: Int { threadCount.withLock { $0 } }

    func setThreads(_ n: Int) {
        threadCount.withLock { $0 = n }
        TensorThreads.set(n)
    }

    func cacheStatuses() async -> [CacheStatus] {
        []
    }
}
