import Foundation
import VLMTensor
import VLMWire

/// The long-lived state handlers share: the model registry, caches and the compute thread count.
/// Handlers reach models only through here; models never reach back. On a socket, one Services
/// serves every connection (each its own `Daemon`), so a model loaded by one client is there for the next.
public final class Services: Sendable {
    let configuration: DaemonConfiguration
    /// Daemon-wide log (stderr; on stdio also the client's window/logMessage).
    let outbox: Outbox
    let registry: ModelRegistry
    /// The model kinds this daemon loads, and through them the methods it serves.
    let families: ModelFamilies
    let clip: CLIPRuntime
    /// Image tokens of multimodal `generate`, by pixels and projector.
    let projectorImages: ProjectorImageCache
    /// The connections being served (one on stdio), for daemon-wide status.
    let connections = ConnectionList()
    let startedAt = ContinuousClock.now
    private let threadCount: Mutex<Int>
    /// Requests running now, so models/unload can find and stop a model's users.
    private let running = Mutex<[ObjectIdentifier: RequestContext]>([:])

    /// Shared by several connections: logs go to stderr only (no one client's window/logMessage).
    public convenience init(configuration: DaemonConfiguration) {
        self.init(configuration: configuration, outbox: Outbox(sink: DiscardingSink(), stderrLogLevel: configuration.stderrLogLevel))
    }

    init(configuration: DaemonConfiguration, outbox: Outbox, families: ModelFamilies = ModelFamilies()) {
        self.configuration = configuration
        self.families = families
        self.outbox = outbox
        self.registry = ModelRegistry(budgetBytes: configuration.memoryBudgetBytes)
        self.clip = CLIPRuntime(imageCacheBytes: configuration.imageCacheBytes, textCacheBytes: configuration.imageCacheBytes / 4)
        self.projectorImages = ProjectorImageCache(budgetBytes: configuration.imageCacheBytes)
        self.threadCount = Mutex(configuration.threads)
        setThreads(configuration.threads)
    }

    var threads: Int { threadCount.withLock { $0 } }

    func requestStarted(_ context: RequestContext) { running.withLock { $0[ObjectIdentifier(context)] = context } }
    func requestFinished(_ context: RequestContext) { running.withLock { $0[ObjectIdentifier(context)] = nil } }

    /// The running requests that took model `id`, other than `except`.
    func requests(using id: String, except: RequestContext?) -> [RequestContext] {
        running.withLock { Array($0.values) }.filter { $0 !== except && $0.modelsInUse.withLock { $0.contains(id) } }
    }

    /// The thread count every request from now on computes with (its `ComputeContext`), whichever
    /// model it uses and whenever that model was loaded. OpenBLAS's pool is process-wide, so its
    /// count is set here too, the daemon's one place for it.
    func setThreads(_ n: Int) {
        threadCount.withLock { $0 = n }
        ComputeContext.setBLASThreads(n)
    }

    func cacheStatuses() async -> [CacheStatus] {
        [clip.imageCache.status, clip.textCache.status, clip.reasoningCache.status, projectorImages.cache.status]
    }

    /// The loaded model of `family` a request names (`id`), or the only one of that family when it names none.
    func model<Family: ModelFamily>(_ id: String?, of family: Family.Type) async throws -> Family.Model {
        let kind = Family.kind
        if let id {
            guard let model = await registry.model(id) else { throw RPCError.modelNotLoaded(id, kind: kind) }
            guard let typed = model as? Family.Model else {
                throw RPCError.invalidParams("params.model: '\(id)' is a \(model.info.kind) model, expected a \(kind) model")
            }
            RequestContext.current?.modelsInUse.withLock { _ = $0.insert(id) }
            return typed
        }
        let candidates = await registry.list.filter { $0.kind == kind }
        guard candidates.count == 1, let only = await registry.model(candidates[0].id) as? Family.Model else {
            if candidates.isEmpty {
                throw RPCError(code: ErrorCode.modelNotLoaded, message: "no \(kind) model is loaded; load one with models/load {kind: \"\(kind)\", path: ...}")
            }
            throw RPCError.invalidParams("params.model: \(candidates.count) \(kind) models are loaded (\(candidates.map(\.id).joined(separator: ", "))); name one")
        }
        RequestContext.current?.modelsInUse.withLock { _ = $0.insert(only.info.id) }
        return only
    }
}

/// The daemons (one per connection) sharing one Services; held weakly so a closed connection goes away.
final class ConnectionList: Sendable {
    private struct Entry { weak var daemon: Daemon? }
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    func add(_ daemon: Daemon) { entries.withLock { $0[ObjectIdentifier(daemon)] = Entry(daemon: daemon) } }
    func remove(_ daemon: Daemon) { _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(daemon)) } }
    var all: [Daemon] { entries.withLock { $0.values.compactMap(\.daemon) } }
}

/// A sink for messages with no client to go to.
struct DiscardingSink: MessageSink {
    func send(_ body: Data) async {}
}
