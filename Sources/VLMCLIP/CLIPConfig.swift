import Foundation
import VLMTensor

/// The parts of open_clip's `open_clip_config.json` (hub format: `{"model_cfg": ..., "preprocess_cfg": ...}`)
/// this runtime uses. Missing fields take open_clip's dataclass defaults (CLIPVisionCfg, CLIPTextCfg,
/// PreprocessCfg); options that change the architecture beyond what is implemented are rejected
/// by name rather than silently ignored.
public struct CLIPConfig: Sendable, Equatable {
    public enum VisionTower: Sendable, Equatable {
        /// ModifiedResNet with the given number of Bottleneck blocks per stage, e.g. [3, 4, 6, 3] for RN50.
        case modifiedResNet(stageBlocks: [Int])
        /// VisionTransformer with this many residual blocks and square patches.
        case visionTransformer(layers: Int, patchSize: Int)
    }

    public struct Vision: Sendable, Equatable {
        public var tower: VisionTower
        public var width: Int
        public var headWidth: Int
        public var mlpRatio: Double
        public var imageSize: Int
    }

    public struct Text: Sendable, Equatable {
        public var contextLength: Int
        public var vocabSize: Int
        public var width: Int
        public var heads: Int
        public var layers: Int
        public var mlpRatio: Double
    }

    /// How images must be prepared for `CLIPModel.encodeImages` (open_clip's PreprocessCfg).
    public struct Preprocess: Sendable, Equatable {
        public var imageSize: Int
        public var mean: [Float]
        public var std: [Float]
        /// "bicubic", "bilinear" or "random" (open_clip names).
        public var interpolation: String
        /// "shortest", "longest" or "squash".
        public var resizeMode: String
        public var fillColor: Int
    }

    public var embedDim: Int
    public var quickGELU: Bool
    public var vision: Vision
    public var text: Text
    public var preprocess: Preprocess

    /// The MLP activation of the transformer towers.
    public var activation: Activation { quickGELU ? .quickGELU : .gelu }

    /// Parses a hub-format config (`model_cfg` + optional `preprocess_cfg`).
    public init(jsonData: Data, path: String = "open_clip_config.json") throws {
        let reader = try ConfigReader(data: jsonData, path: path)
        let model = try reader.object(reader.root, "model_cfg")
        let visionObject = try reader.object(model, "vision_cfg")
        let textObject = try reader.object(model, "text_cfg")
        embedDim = try reader.positiveInt(model, "embed_dim")
        quickGELU = try reader.bool(model, "quick_gelu", default: false)
        try reader.rejectUnsupported(model, ["init_logit_bias", "custom_text", "multimodal_cfg"], section: "model_cfg")
        try reader.rejectUnsupported(visionObject, [
            "timm_model_name", "attentional_pool", "no_ln_pre", "final_ln_after_pool", "ls_init_value",
            "act_kwargs", "norm_kwargs", "block_type", "qk_norm", "scaled_cosine_attn", "scale_heads",
            "scale_attn_inner", "scale_attn", "scale_fc",
        ], section: "vision_cfg")
        if let pool = visionObject["pool_type"] as? String, pool != "tok" {
            throw CLIPError.unsupportedArchitecture("vision_cfg.pool_type \(pool)")
        }
        try reader.rejectUnsupported(textObject, [
            "hf_model_name", "ls_init_value", "embed_cls", "no_causal_mask", "final_ln_after_pool",
            "proj_bias", "act_kwargs", "norm_kwargs", "block_type", "qk_norm", "scaled_cosine_attn",
            "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc",
        ], section: "text_cfg")
        if let pool = textObject["pool_type"] as? String, pool != "argmax" {
            throw CLIPError.unsupportedArchitecture("text_cfg.pool_type \(pool)")
        }
        if let projection = textObject["proj_type"] as? String, projection != "linear" {
            throw CLIPError.unsupportedArchitecture("text_cfg.proj_type \(projection)")
        }

        let tower: VisionTower
        if let stages = visionObject["layers"] as? [Any] {
            let blocks = try stages.map { value -> Int in
                guard let n = value as? Int, n > 0 else { throw reader.invalid("vision_cfg.layers must be positive integers") }
                return n
            }
            guard blocks.count == 4 else { throw reader.invalid("ModifiedResNet needs 4 stages in vision_cfg.layers, got \(blocks.count)") }
            tower = .modifiedResNet(stageBlocks: blocks)
        } else {
            tower = .visionTransformer(
                layers: try reader.positiveInt(visionObject, "layers", default: 12),
                patchSize: try reader.positiveInt(visionObject, "patch_size", default: 16))
        }
        vision = Vision(
            tower: tower,
            width: try reader.positiveInt(visionObject, "width", default: 768),
            headWidth: try reader.positiveInt(visionObject, "head_width", default: 64),
            mlpRatio: try reader.positiveDouble(visionObject, "mlp_ratio", default: 4),
            imageSize: try reader.squareSize(visionObject, "image_size", default: 224))
        text = Text(
            contextLength: try reader.positiveInt(textObject, "context_length", default: 77),
            vocabSize: try reader.positiveInt(textObject, "vocab_size", default: 49408),
            width: try reader.positiveInt(textObject, "width", default: 512),
            heads: try reader.positiveInt(textObject, "heads", default: 8),
            layers: try reader.positiveInt(textObject, "layers", default: 12),
            mlpRatio: try reader.positiveDouble(textObject, "mlp_ratio", default: 4))

        let preprocessObject = (reader.root["preprocess_cfg"] as? [String: Any]) ?? [:]
        preprocess = Preprocess(
            imageSize: vision.imageSize,
            mean: try reader.floats(preprocessObject, "mean", count: 3, default: [0.48145466, 0.4578275, 0.40821073]),
            std: try reader.floats(preprocessObject, "std", count: 3, default: [0.26862954, 0.26130258, 0.27577711]),
            interpolation: (preprocessObject["interpolation"] as? String) ?? "bicubic",
            resizeMode: (preprocessObject["resize_mode"] as? String) ?? "shortest",
            fillColor: (preprocessObject["fill_color"] as? Int) ?? 0)
        try validate(reader)
    }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CLIPError.invalidConfig(path: url.path, reason: "cannot read file (\(error.localizedDescription))")
        }
        try self.init(jsonData: data, path: url.path)
    }

    /// Cross-field consistency that the tensor shapes rely on.
    private func validate(_ reader: ConfigReader) throws {
        switch vision.tower {
        case .modifiedResNet:
            guard vision.imageSize % 32 == 0 else { throw reader.invalid("ModifiedResNet image_size \(vision.imageSize) is not a multiple of 32") }
            guard vision.width % 2 == 0, (vision.width * 32) % vision.headWidth == 0 else {
                throw reader.invalid("ModifiedResNet width \(vision.width) incompatible with head_width \(vision.headWidth)")
            }
        case let .visionTransformer(_, patch):
            guard vision.imageSize % patch == 0 else { throw reader.invalid("image_size \(vision.imageSize) is not a multiple of patch_size \(patch)") }
            guard vision.width % vision.headWidth == 0 else { throw reader.invalid("vision width \(vision.width) not divisible by head_width \(vision.headWidth)") }
        }
        guard vision.mlpRatio <= 64, text.mlpRatio <= 64 else { throw reader.invalid("mlp_ratio above 64 is implausible") }
        guard text.width % text.heads == 0 else { throw reader.invalid("text width \(text.width) not divisible by \(text.heads) heads") }
        guard ["shortest", "longest", "squash"].contains(preprocess.resizeMode) else { throw reader.invalid("unknown resize_mode \(preprocess.resizeMode)") }
        guard preprocess.std.allSatisfy({ $0 > 0 }) else { throw reader.invalid("preprocess std must be positive") }
        let limit = 1 << 20  // guards the size arithmetic below against absurd configs
        for (name, value) in [("embed_dim", embedDim), ("vision width", vision.width), ("image_size", vision.imageSize),
                              ("text width", text.width), ("vocab_size", text.vocabSize), ("context_length", text.contextLength)]
        where value > limit {
            throw reader.invalid("\(name) \(value) is implausibly large")
        }
    }
}
