// The SigLIP-style tower llama.cpp's clip_graph_siglip runs for the idefics3 and gemma3 projectors: every
// stored block (no LLaVA penultimate-layer rule), no class token, learned positions, pre-norm blocks with
// ggml's fp16-table tanh GELU (`clip.use_gelu`; quick GELU otherwise), post-LayerNorm; patch states out.
import VLMImage
import VLMLanguage
import VLMTensor
import VLMVision

enum SigLIPTower {
    /// The tower's keys of a file of type `projector`, all blocks run.
    static func hyperparameters(_ gguf: GGUFFile, projector: String) throws -> MMProjHyperparameters {
        var hp = try MMProjHyperparameters(gguf: gguf, projector: projector)
        hp.blocksRun = hp.blockCount
        return hp
    }

    static func load(_ tensors: MMProjTensors, _ hp: MMProjHyperparameters) throws -> VisionTransformer<QuantizedLinear> {
        var architecture = ViTArchitecture(mmproj: hp, hasClassToken: false)
        if hp.useGELU { architecture.activation = .geluTanhHalfTable }
        return try tensors.visionTransformer(architecture, classEmbedding: nil)
    }

    /// [side², width] patch states of a tower-sized image, after the post-LayerNorm.
    static func patchStates(_ vit: VisionTransformer<QuantizedLinear>, _ image: RGBImage, _ hp: MMProjHyperparameters,
                            compute: ComputeContext) throws -> [Float] {
        let states = try vit.forward(image.mtmdTowerInput(mean: hp.imageMean, std: hp.imageStd), count: 1, outputs: .patches,
                                     scratch: ScratchBuffer(), compute: compute)
        return states.patches!
    }

    /// `clip.vision.projector.scale_factor`: patches merged per side, at least `minimum`, dividing the grid
    /// side; `fallback` when the key is absent (an error if there is none).
    static func scaleFactor(_ gguf: GGUFFile, gridSide: Int, minimum: Int, fallback: Int?) throws -> Int {
        let key = "clip.vision.projector.scale_factor"
        let value: Int
        if let raw = gguf.metadata[key] {
            guard let int = raw.intValue else { throw MMProjError.badKey(key: key, reason: "not an integer") }
            value = int
        } else if let fallback {
            value = fallback
        } else {
            throw MMProjError.badKey(key: key, reason: "missing")
        }
        guard value >= minimum, value <= gridSide, gridSide % value == 0 else {
            throw MMProjError.badKey(key: key, reason: "\(value) must be at least \(minimum) and divide the tower's \(gridSide)-patch grid side")
        }
        return value
    }
}
