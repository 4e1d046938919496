import VLMTensor
import VLMVision

/// Reads open_clip state-dict tensors with the shapes the config implies, and builds layers from them
/// (`linear` and `convolutionWithBatchNorm` come from VLMVision's `StateDictReader`, which the
/// ModifiedResNet tower reads through). Every read checks the shape, so a checkpoint that does not
/// match its config fails at load time with the tensor's name instead of producing garbage.
struct CheckpointReader: StateDictReader {
    let file: SafeTensorsFile

    func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
        try file.tensor(name, shape: shape)
    }

    func layerNorm(_ prefix: String, width: Int) throws -> LayerNorm {
        LayerNorm(weight: try tensor(prefix + "weight", [width]), bias: try tensor(prefix + "bias", [width]))
    }

    /// A [in, out] matrix used as `x @ P` in open_clip (visual.proj, text_projection).
    func projection(_ name: String, in inFeatures: Int, out outFeatures: Int) throws -> Linear {
        Linear(projection: try tensor(name, [inFeatures, outFeatures]))
    }
}
