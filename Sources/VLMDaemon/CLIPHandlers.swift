import Foundation
import VLMCLIP
import VLMImage
import VLMPromptLearning
import VLMTensor
import VLMWire

/// encode-image, classify and dataset/evaluate.
func registerCLIPHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(Method.encodeImage) { (params: EncodeImageParams, context) -> EncodeImageResult in
        let clip = try await services.clipModel(params.model)
        let inputs = try services.decodeImages(params.images)
        let dense = params.dense ?? false
        let progress = await context.beginProgress(title: "Encoding \(inputs.count) image(s) with \(clip.id)")
        let runtime = services.clip
        let encoded = try await context.compute { flag in
            try runtime.embed(inputs.map { ($0.imageId, $0.image) }, with: clip, cancellation: flag)
        }
        var images: [EncodedImage] = []
        for (index, (input, result)) in zip(inputs, encoded).enumerated() {
            var item = EncodedImage(index: index, imageId: input.imageId, width: result.width, height: result.height,
                                    cached: result.cached, embedding: result.embedding)
            if dense {
                guard let image = input.image else {
                    throw RPCError.invalidParams("params.images[\(index)]: dense features need the image itself, not an imageId")
                }
                let pixels = clip.preprocessing(image)
                let map = try await context.compute { flag in
                    try clip.model.encodeImageDense(pixels, count: 1, shouldCancel: { flag.isCancelled })
                }
                item.dense = DenseFeatures(gridHeight: map.gridHeight, gridWidth: map.gridWidth, features: map.features[0])
            }
            await context.sendPartial(item)
            images.append(item)
        }
        await progress.end()
        return EncodeImageResult(model: clip.id, images: images)
    }

    table.register(Method.classify) { (params: ClassifyParams, context) -> ClassifyResult in
        let clip = try await services.clipModel(params.model)
        let labels = try validatedLabels(params.labels, field: "params.labels")
        let topK = params.topK ?? 5
        guard topK >= 1 else { throw RPCError.invalidParams("params.topK: expected an integer ≥ 1") }
        let inputs = try services.decodeImages(params.images)
        let runtime = services.clip
        if params.learnedPrompt != nil, params.templates != nil {
            throw RPCError.invalidParams("params: give 'templates' or 'learnedPrompt', not both")
        }
        let learned = try params.learnedPrompt.map { name in
            let url = try services.learnedPromptURL(name: name, field: "params.learnedPrompt")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw RPCError.invalidParams("params.learnedPrompt: no learned prompt '\(name)' in \(url.deletingLastPathComponent().path)")
            }
            return try LearnedPrompt.load(from: url)
        }
        let templates = try learned?.templates ?? resolveTemplates(params.templates, field: "params.templates")
        let (embeddings, perTemplate, classifier) = try await context.compute { flag in
            let images = try runtime.embed(inputs.map { ($0.imageId, $0.image) }, with: clip, cancellation: flag)
            if let learned {
                let classifier = try learned.classifierWeights(clip: clip.model, tokenizer: runtime.tokenizer(), classNames: labels,
                                                               shouldCancel: { flag.isCancelled })
                return (images, [[[Float]]](), classifier)
            }
            let text = try runtime.classTemplateEmbeddings(labels: labels, templates: templates, clip: clip, cancellation: flag)
            return (images, text, try ZeroShotClassifier(classNames: labels, templateEmbeddings: text))
        }
        var results: [ImageClassification] = []
        for (index, (input, image)) in zip(inputs, embeddings).enumerated() {
            let probs = softmax(classifier.logits(imageEmbeddings: [image.embedding], logitScale: clip.model.logitScale)[0])
            var item = ImageClassification(index: index, imageId: input.imageId, probs: probs,
                                           top: topLabels(probs, labels: labels, k: topK))
            if params.perTemplate == true, !perTemplate.isEmpty {
                item.perTemplate = templates.indices.map { t in
                    let logits = labels.indices.map { c in clip.model.logitScale * dot(image.embedding, perTemplate[c][t]) }
                    return TemplateScores(template: templates[t], probs: softmax(logits))
                }
            }
            await context.sendPartial(item)
            results.append(item)
        }
        return ClassifyResult(model: clip.id, labels: labels, templates: templates, results: results)
    }

    table.register(Method.evaluateDataset) { (params: EvaluateParams, context) -> EvaluateResult in
        try await evaluateDataset(params, context: context, services: services)
    }
}

extension CLIPRuntime {
    /// `[class][template]` normalised text embeddings, through the text cache.
    func classTemplateEmbeddings(labels: [String], templates: [String], clip: LoadedCLIP, cancellation: CancellationFlag) throws -> [[[Float]]] {
        let prompts = labels.flatMap { label in templates.map { PromptTemplates.fill($0, with: label) } }
        let flat = try embed(prompts: prompts, with: clip, cancellation: cancellation)
        return labels.indices.map { c in Array(flat[c * templates.count..<(c + 1) * templates.count]) }
    }
}

/// A decoded request image: either pixels (with their content id) or just an id to look up.
struct RequestImage: Sendable {
    let imageId: String
    let image: RGBImage?
}

extension Services {
    /// The CLIP model a request names, or the only one loaded.
    func clipModel(_ id: String?) async throws -> LoadedCLIP {
        try await model(id, kind: "clip", as: LoadedCLIP.self)
    }

    func decodeImages(_ inputs: [ImageInput]) throws -> [RequestImage] {
        guard !inputs.isEmpty else { throw RPCError.invalidParams("params.images: expected at least one image") }
        let decoder = PNGDecoder(pixelBudget: configuration.maxImagePixels)
        return try inputs.enumerated().map { index, input in
            let field = "params.images[\(index)]"
            let given = [input.path != nil, input.png != nil, input.imageId != nil].filter { $0 }.count
            guard given == 1 else {
                throw RPCError.invalidParams("\(field): expected exactly one of 'path', 'png' (base64) or 'imageId'")
            }
            if let imageId = input.imageId { return RequestImage(imageId: imageId, image: nil) }
            let image: RGBImage
            if let path = input.path {
                image = try decoder.decode(contentsOf: path)
            } else {
                image = try decoder.decode(base64: input.png!, input: "\(field).png")
            }
            return RequestImage(imageId: CLIPRuntime.imageId(for: image), image: image)
        }
    }
}

func validatedLabels(_ labels: [String], field: String) throws -> [String] {
    guard !labels.isEmpty else { throw RPCError.invalidParams("\(field): expected at least one label") }
    if let blank = labels.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
        throw RPCError.invalidParams("\(field)[\(blank)]: labels must not be empty")
    }
    return labels
}

func resolveTemplates(_ templates: TemplatesParam?, field: String) throws -> [String] {
    switch templates {
    case nil:
        return ["a photo of a {}."]
    case .single(let text):
        if let bank = PromptTemplates.named(text) { return bank }
        guard text.contains("{}") else {
            throw RPCError.invalidParams("\(field): '\(text)' is neither a template bank (cifar, imagenet, simple) nor a template containing {}")
        }
        return [text]
    case .list(let list):
        guard !list.isEmpty else { throw RPCError.invalidParams("\(field): expected at least one template") }
        if let bad = list.firstIndex(where: { !$0.contains("{}") }) {
            throw RPCError.invalidParams("\(field)[\(bad)]: a template must contain {} where the label goes")
        }
        return list
    }
}

func softmax(_ logits: [Float]) -> [Float] {
    var values = logits
    values.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: $0.count) }
    return values
}

func topLabels(_ probs: [Float], labels: [String], k: Int) -> [LabelScore] {
    probs.indices.sorted { probs[$0] > probs[$1] }.prefix(k).map { LabelScore(label: labels[$0], index: $0, prob: probs[$0]) }
}
