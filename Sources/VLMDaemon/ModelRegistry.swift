import Foundation
import VLMWire

/// A model kept resident in memory. Each conformance lives in its family's file (`ModelFamily`).
protocol ResidentModel: AnyObject, Sendable {
    var info: ModelInfo { get }
}

/// Loaded models under a memory budget. Loading refuses (with -32005) when the model would not fit,
/// rather than silently evicting something a client is using.
actor ModelRegistry {
    let budgetBytes: Int
    private var models: [String: any ResidentModel] = [:]
    private var loadOrder: [String] = []
    /// Bytes promised to loads under way, so two concurrent loads cannot both pass the budget check
    /// and together exceed it (each is counted from before it starts reading its file).
    private var reservations: [Int: Int] = [:]
    private var nextReservation = 0
    /// Models loaded since start (what `daemon/status` reports as modelLoads): shows whether clients
    /// of a shared daemon reused a resident model or loaded it again.
    private(set) var loads = 0

    init(budgetBytes: Int) { self.budgetBytes = budgetBytes }

    var list: [ModelInfo] { loadOrder.compactMap { models[$0]?.info } }
    var usedBytes: Int { models.values.reduce(0) { $0 + $1.info.memoryBytes } }

    func model(_ id: String) -> (any ResidentModel)? { models[id] }

    /// Sets `estimatedBytes` aside for a load about to start; -32005 when it cannot fit beside the
    /// resident models and the loads already under way. Release it with `release` once the model
    /// is added (or the load failed).
    func reserve(_ estimatedBytes: Int) throws -> Int {
        try checkBudget(adding: estimatedBytes)
        nextReservation += 1
        reservations[nextReservation] = estimatedBytes
        return nextReservation
    }

    func release(_ reservation: Int) {
        reservations[reservation] = nil
        generationReservations.remove(reservation)
    }

    /// Reservations held by requests for their generation caches (KV caches), not by loads.
    private var generationReservations: Set<Int> = []
    /// Bytes set aside for the generation caches of requests under way (`daemon/status`).
    var generationBytes: Int { generationReservations.reduce(0) { $0 + (reservations[$1] ?? 0) } }

    /// Sets `bytes` aside for a request's generation cache; -32005 (before any work) when it cannot fit
    /// beside the resident models and the other reservations. Release it when the request ends.
    func reserveGeneration(_ bytes: Int) throws -> Int {
        try checkBudget(adding: bytes, for: "the generation cache (KV cache)")
        let reservation = try reserve(bytes)
        generationReservations.insert(reservation)
        return reservation
    }

    /// Fails with -32005 when `estimatedBytes` cannot fit beside the resident models and reservations.
    func checkBudget(adding estimatedBytes: Int, for purpose: String = "loading") throws {
        let used = usedBytes + reservations.values.reduce(0, +)
        if used + estimatedBytes > budgetBytes {
            throw RPCError(code: ErrorCode.memoryBudgetExceeded, message:
                "\(purpose) needs about \(megabytes(estimatedBytes)) but only \(megabytes(budgetBytes - used)) of the \(megabytes(budgetBytes)) budget is free; unload a model first (models/unload)",
                data: ["neededBytes": .int(Int64(estimatedBytes)), "availableBytes": .int(Int64(budgetBytes - used)),
                       "usedBytes": .int(Int64(used)), "budgetBytes": .int(Int64(budgetBytes))])
        }
    }

    /// Adds a loaded model in place of its reservation (released whatever happens).
    func add(_ model: any ResidentModel, replacing reservation: Int) throws {
        release(reservation)
        let id = model.info.id
        if models[id] != nil { throw RPCError.invalidParams("params.id: a model with id '\(id)' is already loaded") }
        try checkBudget(adding: model.info.memoryBytes)
        models[id] = model
        loadOrder.append(id)
        loads += 1
    }

    /// The loaded models `models/load` might load again, in load order: same kind and file, and the same id
    /// when one is asked for (its family tells which of them answer the load).
    func loaded(kind: String, path: String, id: String?) -> [ModelInfo] {
        let file = URL(fileURLWithPath: path).standardizedFileURL.path
        return list.filter { info in
            info.kind == kind && URL(fileURLWithPath: info.path).standardizedFileURL.path == file && (id == nil || id == info.id)
        }
    }

    @discardableResult
    func remove(_ id: String) -> (any ResidentModel)? {
        loadOrder.removeAll { $0 == id }
        return models.removeValue(forKey: id)
    }
}

func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

extension RPCError {
    static func modelNotLoaded(_ id: String, kind: String) -> RPCError {
        RPCError(code: ErrorCode.modelNotLoaded, message: "no \(kind) model '\(id)' is loaded; load one with models/load")
    }
}
