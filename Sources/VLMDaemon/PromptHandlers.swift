import Foundation
import VLMCLIP
import VLMImage
import VLMPromptLearning
import VLMTensor
import VLMWire

extension PromptLearningError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .invalidFile: return RPCError(code: ErrorCode.datasetUnreadable, message: description)
        default: return RPCError.invalidParams(description)
        }
    }
}

/// optimise-prompt: draws the few-shot split, encodes only the images it needs (through the image
/// cache: the tower is frozen), then learns on the text side with one notification per step.
func registerPromptHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(OptimisePromptRequest.self) { params, context in
        let started = ContinuousClock.now
        let clip = try await services.clipModel(params.model)
        let configuration = try promptConfiguration(params)
        let lm = configuration.method == .languageModel ? try await services.languageModel(params.lm).model : nil
        let saveURL = try params.saveAs.map { try services.learnedPromptURL(name: $0, field: "params.saveAs") }
        if let saveURL { try checkSavable(saveURL) }
        let budget = services.configuration.maxImagePixels
        let request = DatasetRequest(path: params.dataset.path, format: params.dataset.format, labels: params.dataset.labels,
                                     labelsFile: params.dataset.labelsFile, field: "params.dataset")
        let data = try request.open(pixelBudget: budget)
        let split = try FewShotSplit(labels: data.labels, classNames: data.classNames, shots: configuration.shots,
                                     validationPerClass: configuration.validationPerClass, seed: configuration.seed)
        if let n = params.dataset.testLimit, n < 1 { throw RPCError.invalidParams("params.dataset.testLimit: expected an integer ≥ 1") }
        let test = try params.dataset.test.map {
            try request.open(path: $0, classNames: data.classNames, limit: params.dataset.testLimit, pixelBudget: budget)
        }

        let progress = await context.beginProgress(title: "Optimising a prompt (\(params.method)) for \(data.classNames.count) classes")
        let runtime = services.clip
        let (train, validation, testSet) = try await context.compute { compute in
            let total = split.train.count + split.validation.count + (test?.count ?? 0)
            var done = 0
            func features(_ source: LabelledDataset, _ indices: [Int]) throws -> FeatureSet {
                let images = try indices.map { try source.image(at: $0) }
                let embedded = try runtime.embed(images.map { (CLIPRuntime.imageId(for: $0), $0) }, with: clip, compute: compute) { n in
                    let fraction = 0.3 * Double(done + n) / Double(max(total, 1))
                    let message = "encoding images \(done + n)/\(total)"
                    Task { await progress.report(fraction: fraction, message: message) }
                }
                done += indices.count
                return FeatureSet(features: embedded.map(\.embedding), labels: indices.map { source.labels[$0] })
            }
            let train = try features(data, split.train)
            let validation = try features(data, split.validation)
            let testSet = try test.map { try features($0, Array(0..<$0.count)) }
            return (train, validation, testSet)
        }
        let tokenizer = try runtime.tokenizer()
        let result = try await context.compute { compute in
            try withWirePartial(summary) { try optimisePrompt(
                clip: clip.model, tokenizer: tokenizer, classNames: data.classNames, train: train, validation: validation,
                test: testSet, configuration: configuration, languageModel: lm, compute: compute
            ) { step in
                context.sendPartialFromComputeThread(step)
                let fraction = 0.3 + 0.7 * Double(step.step) / Double(max(step.totalSteps, 1))
                Task { await progress.report(fraction: fraction, message: "step \(step.step)/\(step.totalSteps): \(step.prompt)") }
            } }
        }
        var reply = summary(result, method: configuration.method)
        if let saveURL {
            do { try result.learnedPrompt.save(to: saveURL) } catch {
                await progress.end(message: "learned, but not saved")
                throw RPCError(code: ErrorCode.invalidParams, message: "params.saveAs: could not save the learned prompt (\(error)); the result is in error.data",
                               data: (try? JSONCoding.value(of: reply)) ?? .null)
            }
        }
        await progress.end(message: "learned: \(result.promptText)")
        reply.trainImages = train.count
        reply.validationImages = validation.count
        reply.testImages = testSet?.count ?? 0
        reply.savedTo = saveURL?.path
        reply.seconds = (ContinuousClock.now - started).seconds
        return reply
    }
}

/// An engine's cancellation with its best-so-far result turned into that result's wire form, so the
/// one mapping of `ComputeCancelled` (ErrorMapping) can send it as the -32800 reply's data.
func withWirePartial<T, Partial, Wire: Encodable & Sendable>(_ wire: (Partial) -> Wire, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let cancelled as ComputeCancelled {
        throw ComputeCancelled(partial: (cancelled.partial as? Partial).map(wire))
    }
}

/// The wire form of a prompt-learning result (also the best-so-far attached to a cancellation). Steps,
/// accuracies and nearest tokens are VLMWire's types in the engine already; the result differs on
/// purpose (the learned prompt's tensors stay in the daemon; the method goes by its wire name).
func summary(_ r: PromptLearningResult) -> OptimisePromptResult { summary(r, method: r.configuration.method) }

func summary(_ r: PromptLearningResult, method: PromptLearningConfiguration.Method) -> OptimisePromptResult {
    var result = OptimisePromptResult(
        method: wireName(of: method), prompt: r.promptText, templates: r.templates, zeroShot: r.zeroShot,
        bankEnsemble: r.bankEnsemble, learned: r.learned, trainAccuracy: r.trainAccuracy, nearestTokens: r.nearestTokens,
        fluency: r.fluency, initialTrainingLoss: r.initialTrainingLoss, finalTrainingLoss: r.finalTrainingLoss,
        stepsRun: r.stepsRun, bestStep: r.bestStep, stoppedEarly: r.stoppedEarly, trainImages: 0, validationImages: 0,
        testImages: 0, savedTo: nil, configuration: (try? JSONCoding.value(of: r.configuration)) ?? .null, seconds: 0)
    result.nearestWordAccuracy = r.nearestWordAccuracy
    return result
}

/// The protocol's names of the prompt-learning methods (after the papers: CoOp, PEZ).
let wireMethodNames: KeyValuePairs<String, PromptLearningConfiguration.Method> = [
    "coop": .soft, "pez": .projected, "bank": .templateBank, "lm": .languageModel, "names": .names,
]

func wireName(of method: PromptLearningConfiguration.Method) -> String {
    wireMethodNames.first { $0.value == method }?.key ?? method.rawValue
}

/// The engine's configuration from the wire params: the params name methods as the protocol does,
/// are all optional and are checked here, with errors naming the field.
func promptConfiguration(_ p: OptimisePromptParams) throws -> PromptLearningConfiguration {
    var c = PromptLearningConfiguration()
    guard let method = wireMethodNames.first(where: { $0.key == p.method })?.value else {
        throw RPCError.invalidParams("params.method: expected \"coop\", \"pez\", \"names\", \"bank\" or \"lm\", got \"\(p.method)\"")
    }
    c.method = method
    if let v = p.shots { guard v >= 1 else { throw RPCError.invalidParams("params.shots: expected an integer ≥ 1") }; c.shots = v }
    if let v = p.validationPerClass {
        guard v >= 1 else { throw RPCError.invalidParams("params.validationPerClass: expected an integer ≥ 1") }
        c.validationPerClass = v
    }
    if let v = p.contextLength {
        guard (1...64).contains(v) else { throw RPCError.invalidParams("params.contextLength: expected an integer in 1...64") }
        c.contextLength = v
    }
    if let v = p.classSpecific { c.classSpecific = v }
    if let v = p.initialisation { c.initialisation = v == "random" ? .random : .phrase(v) }
    switch p.optimiser {
    case nil: break
    case "sgd": c.optimiser = .sgd
    case "adam": c.optimiser = .adam
    case let other?: throw RPCError.invalidParams("params.optimiser: expected \"sgd\" or \"adam\", got \"\(other)\"")
    }
    if let v = p.learningRate { c.learningRate = v }
    if let v = p.steps {
        guard v >= 1 else { throw RPCError.invalidParams("params.steps: expected an integer ≥ 1 (a step budget of \(v) does nothing)") }
        c.steps = v
    }
    if let v = p.warmupSteps { c.warmupSteps = v }
    if let v = p.cosineSchedule { c.cosineSchedule = v }
    if let v = p.evaluationInterval { c.evaluationInterval = v }
    if let v = p.patience { c.patience = v }
    if let v = p.textAnchorWeight { c.textAnchorWeight = v }
    if let v = p.vocabularyDistanceWeight { c.vocabularyDistanceWeight = v }
    if let bank = p.bank { c.bank = try resolveTemplates(bank, field: "params.bank") }
    if let v = p.maximumBankTemplates { c.maximumBankTemplates = v }
    if let v = p.languageModelRounds { c.languageModelRounds = v }
    if let v = p.languageModelCandidates { c.languageModelCandidates = v }
    if let v = p.seed { c.seed = v }
    return c
}

/// Fails with -32602 naming params.saveAs unless the learned prompt can be saved there, before any
/// optimisation runs. The configured prompts directory is created if missing.
func checkSavable(_ url: URL) throws {
    do {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try SafeFileWriter.check(url)
    } catch {
        throw RPCError.invalidParams("params.saveAs: cannot save to \(error)")
    }
}

extension Services {
    /// `<prompts directory>/<name>.safetensors`, for a plain name (no paths).
    func learnedPromptURL(name: String, field: String) throws -> URL {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard !name.isEmpty, !name.hasPrefix("."), name.unicodeScalars.allSatisfy(allowed.contains) else {
            throw RPCError.invalidParams("\(field): '\(name)' is not a plain name (letters, digits, '.', '_', '-')")
        }
        let url = configuration.promptsDirectory.appendingPathComponent(name + ".safetensors")
        // Learned prompts are regular files in the prompts directory: a link there could expose or
        // overwrite any file the daemon can reach.
        var info = stat()
        if lstat(url.path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            throw RPCError.invalidParams("\(field): '\(name)' in the prompts directory is not a regular file (a link or a directory); refusing to use it")
        }
        return url
    }
}
