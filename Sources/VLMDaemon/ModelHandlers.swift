import Foundation
import VLMTensor
import VLMWire

/// models/load, models/unload, models/list.
func registerModelHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(ModelsListRequest.self) { _, _ in
        await services.registry.list
    }

    table.register(ModelsLoadRequest.self) { params, context in
        let family = try services.families.family(kind: params.kind)
        let url = URL(fileURLWithPath: params.path)
        let id = params.id ?? family.defaultId(params, file: url)
        guard !id.isEmpty else { throw RPCError.invalidParams("params.id: must not be empty") }
        let request = ModelLoadArguments(id: id, file: url, params: params)
        // Before a resident copy is looked for: bad options are refused even when one is loaded.
        try family.validate(request)
        if let resident = await alreadyLoaded(params, by: family, registry: services.registry) { return resident }
        if await services.registry.model(id) != nil {
            throw RPCError.invalidParams("params.id: a model with id '\(id)' is already loaded; unload it first or choose another id")
        }
        guard FileManager.default.fileExists(atPath: params.path) else {
            throw RPCError(code: ErrorCode.modelLoadFailed, message: "\(params.path): no such file or directory")
        }
        let reservation = try await services.registry.reserve(family.memoryEstimate(request))
        let progress = await context.beginProgress(title: "Loading \(params.kind) model \(id)", cancellable: false)
        let model: any ResidentModel
        do { model = try await context.compute { _ in try family.load(request) } } catch {
            await services.registry.release(reservation)
            await progress.end(message: "failed")
            throw loadFailure(error, path: params.path)
        }
        do { try await services.registry.add(model, replacing: reservation) } catch {
            // Another client loaded the same model meanwhile: theirs stays, this copy is dropped.
            await progress.end(message: "failed")
            if let resident = await alreadyLoaded(params, by: family, registry: services.registry) { return resident }
            throw error
        }
        await progress.end(message: "loaded \(megabytes(model.info.memoryBytes))")
        context.log(.info, "loaded \(params.kind) model '\(id)' from \(params.path) (\(megabytes(model.info.memoryBytes)))")
        return model.info
    }

    table.register(ModelsUnloadRequest.self) { params, context in
        guard await services.registry.model(params.id) != nil else {
            throw RPCError(code: ErrorCode.modelNotLoaded, message: "no model '\(params.id)' is loaded")
        }
        // Requests using the model are cancelled, and the model stays registered (its id taken, its
        // bytes counted) until they have replied: only then is its memory really given back.
        let users = services.requests(using: params.id, except: context)
        if !users.isEmpty {
            services.outbox.log(.info, "unloading '\(params.id)': cancelling \(users.count) request(s) using it")
            users.forEach { $0.cancellation.cancel() }
            while !services.requests(using: params.id, except: context).isEmpty {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        guard let model = await services.registry.remove(params.id) else {
            throw RPCError(code: ErrorCode.modelNotLoaded, message: "no model '\(params.id)' is loaded")
        }
        services.families.named(model.info.kind)?.unloaded(id: params.id, services: services)
        return ModelsUnloadResult(id: params.id, freedBytes: model.info.memoryBytes)
    }
}

/// models/load is idempotent: a model of the same kind from the same file (and the same id, when
/// asked for, and whatever else its family checks) is returned as it is, marked `alreadyLoaded`,
/// instead of loaded twice. That is what keeps models resident across `vlm` commands on a shared daemon.
/// Of several copies of a file (loaded with other options), the first that answers the load.
private func alreadyLoaded(_ params: ModelsLoadParams, by family: any ModelFamily, registry: ModelRegistry) async -> ModelInfo? {
    let copies = await registry.loaded(kind: params.kind, path: params.path, id: params.id)
    guard var info = copies.first(where: { family.satisfies(params, resident: $0) }) else { return nil }
    info.alreadyLoaded = true
    return info
}

/// A load error as -32003 that names the file (the spec promises it), whatever layer raised it.
func loadFailure(_ error: Error, path: String) -> Error {
    if error is CancellationError || error is ComputeCancelled { return error }
    var mapped = (error as? RPCError) ?? (error as? RPCErrorConvertible)?.rpcError
        ?? RPCError(code: ErrorCode.modelLoadFailed, message: "\(error)")
    if mapped.code == ErrorCode.modelLoadFailed, !mapped.message.contains(path) {
        mapped.message = "\(path): \(mapped.message)"
    }
    return mapped
}
