import Foundation
import VLMCLIP
import VLMReasoning
import VLMTensor
import VLMWire

/// encode-text (CLIP text embeddings, through the text cache, optionally as template ensembles) and
/// attribute (the maps and selections a reasoning step would get, for texts the client gives, with no
/// language model). Both stream one partial result per text as each batch is done.
func registerTextAndAttributionHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(EncodeTextRequest.self) { params, context in
        let clip = try await services.clipModel(params.model)
        let texts = try indexedTexts(params.texts)
        let templates = try params.templates.map { try resolveTemplates($0, field: "params.templates") }
        let batchSize = try imageBatchSize(params.batchSize)
        let runtime = services.clip
        let progress = await context.beginProgress(title: "Encoding \(texts.count) text(s) with \(clip.id)")
        let encoded = try await streamBatches(texts, size: batchSize, unit: "texts", context: context, progress: progress) { batch, compute in
            let embeddings = try runtime.textEmbeddings(batch.map(\.text), templates: templates, clip: clip, compute: compute)
            return zip(batch, embeddings).map { EncodedText(index: $0.index, text: $0.text, embedding: $1) }
        } soFar: { done in
            EncodeTextResult(model: clip.id, templates: templates, texts: done)
        }
        return EncodeTextResult(model: clip.id, templates: templates, texts: encoded)
    }

    table.register(AttributeRequest.self) { params, context in
        let clip = try await services.clipModel(params.clip)
        let texts = try indexedTexts(params.texts)
        let configuration = try attributionConfiguration(params, texts: texts.count)
        let selector = try params.selector.map { try services.selector(named: $0, for: clip, field: "params.selector") }
        let resolution = try attributionResolution(params.resolution, selector: selector, clip: clip)
        guard let input = try services.decodeImages([params.image]).first, let image = input.image else {
            throw RPCError.invalidParams("params.image: expected a 'path' or 'png' (the pixels are needed to place the cells)")
        }
        let runtime = services.clip
        let progress = await context.beginProgress(title: "Attributing \(texts.count) text(s) with \(clip.id)")
        // The image's features come through the same cache visual reasoning uses.
        let target = try await context.compute { compute in
            try AttributionTarget(image, selector: selector, resolution: resolution, clip: clip, runtime: runtime,
                                  configuration: configuration, compute: compute)
        }
        func result(_ attributions: [AttributionInfo]) -> AttributeResult {
            AttributeResult(clip: clip.id, imageId: input.imageId, width: image.width, height: image.height,
                            gridHeight: target.cells.grid.gridHeight, gridWidth: target.cells.grid.gridWidth,
                            visibleBox: wireBox(target.visibleBox), attributions: attributions)
        }
        let attributions = try await streamBatches(texts, size: 8, unit: "texts", context: context, progress: progress) { batch, compute in
            let embeddings = try runtime.embed(prompts: batch.map(\.text), with: clip, compute: compute)
            return try zip(batch, embeddings).map { item, embedding in
                wireAttribution(try target.attribution(index: item.index, text: item.text, textEmbedding: embedding))
            }
        } soFar: { done in
            result(done)
        }
        return result(attributions)
    }
}

/// The reasoning configuration whose selection and heatmap settings an attribute request gives.
func attributionConfiguration(_ params: AttributeParams, texts: Int) throws -> ReasoningConfiguration {
    var configuration = ReasoningConfiguration()
    configuration.selection = try patchSelection(select: params.select, k: params.k, mass: params.mass, default: configuration.selection)
    configuration.heatmaps = try heatmapOutput(dir: params.heatmapDir, inline: params.heatmapsInline, lastStep: texts - 1)
    do { try configuration.validate() } catch let error as ReasoningError { throw error.rpcError }
    return configuration
}

/// One text of a request with its position.
struct IndexedText: Sendable {
    let index: Int
    let text: String
}

func indexedTexts(_ texts: [String]) throws -> [IndexedText] {
    guard !texts.isEmpty else { throw RPCError.invalidParams("params.texts: expected at least one text") }
    return texts.enumerated().map { IndexedText(index: $0.offset, text: $0.element) }
}

extension CLIPRuntime {
    /// One normalised embedding per text, through the text cache: the text itself, or with
    /// `templates` the ensemble of the text in every template (averaged and renormalised as classify
    /// builds a class).
    func textEmbeddings(_ texts: [String], templates: [String]?, clip: LoadedCLIP, compute: ComputeContext) throws -> [[Float]] {
        guard let templates else { return try embed(prompts: texts, with: clip, compute: compute) }
        let perTemplate = try classTemplateEmbeddings(labels: texts, templates: templates, clip: clip, compute: compute)
        return try ZeroShotClassifier(classNames: texts, templateEmbeddings: perTemplate).weights
    }
}
