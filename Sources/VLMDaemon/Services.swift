import Foundation
import VLMTensor
import VLMWire

/// The long-lived state handlers share: the model registry, caches and the compute thread count.
/// Handlers reach models only through here; models never reach back.
public final class Services: Sendable {
    let configuration: DaemonConfiguration
    let outbox: Outbox
    let registry: ModelRegistry
    let clip: CLIPRuntime
    private let threadCount: Mutex<Int>
    /// Requests running now, so models/unload can find and stop a model's users.
    private let running = Mutex<[ObjectIdentifier: RequestContext]>([:])

    init(configuration: DaemonConfiguration, outbox: Outbox) {
        self.configuration = configuration
        self.outbox = outbox
        self.registry = ModelRegistry(budgetBytes: configuration.memoryBudgetBytes)
        self.clip = CLIPRuntime(imageCacheBytes: configuration.imageCacheBytes, textCacheBytes: configuration.imageCacheBytes / 4)
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

    func setThreads(_ n: Int) {
        threadCount.withLock { $0 = n }
        TensorThreads.set(n)
    }

    func cacheStatuses() async -> [CacheStatus] {
        [clip.imageCache.status, clip.textCache.status, clip.reasoningCache.status]
    }

    /// The loaded model a request names (`id`), or the only one of that kind when it names none.
    func model<M: ResidentModel>(_ id: String?, kind: String, as type: M.Type) async throws -> M {
        if let id {
            guard let model = await registry.model(id) else { throw RPCError.modelNotLoaded(id, kind: kind) }
            guard let typed = model as? M else {
                throw RPCError.invalidParams("params.model: '\(id)' is a \(model.info.kind) model, expected a \(kind) model")
            }
            RequestContext.current?.modelsInUse.withLock { _ = $0.insert(id) }
            return typed
        }
        let candidates = await registry.list.filter { $0.kind == kind }
        guard candidates.count == 1, let only = await registry.model(candidates[0].id) as? M else {
            if candidates.isEmpty {
                throw RPCError(code: ErrorCode.modelNotLoaded, message: "no \(kind) model is loaded; load one with models/load {kind: \"\(kind)\", path: ...}")
            }
            throw RPCError.invalidParams("params.model: \(candidates.count) \(kind) models are loaded (\(candidates.map(\.id).joined(separator: ", "))); name one")
        }
        RequestContext.current?.modelsInUse.withLock { _ = $0.insert(only.info.id) }
        return only
    }
}
