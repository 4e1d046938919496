import VLMTensor

/// Reads open_clip state-dict tensors with the shapes the config implies, and builds layers from them.
/// Every read checks the shape, so a checkpoint that does not match its config fails at load time
/// with the tensor's name instead of producing garbage.
struct CheckpointReader {
    let file: SafeTensorsFile

    func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
        try file.tensor(name, shape: shape)
    }

    func linear(_ prefix: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        Linear(
            weight: try tensor(prefix + "weight", [outFeatures, inFeatures]),
            bias: bias ? try tensor(prefix + "bias", [outFeatures]) : nil)
    }

    func layerNorm(_ prefix: String, width: Int) throws -> LayerNorm {
        LayerNorm(weight: try tensor(prefix + "weight", [width]), bias: try tensor(prefix + "bias", [width]))
    }

    /// A bias-free convolution `convName` followed by the batch norm `normPrefix`, folded into one.
    func convolutionWithBatchNorm(
        _ convName: String, _ normPrefix: String, in inChannels: Int, out outChannels: Int,
        kernel: Int, stride: Int = 1, padding: Int = 0
    ) throws -> Conv2D {
        let weight = try tensor(convName, [outChannels, inChannels, kernel, kernel])
        let norm = BatchNorm(
            weight: try tensor(normPrefix + "weight", [outChannels]).storage,
            bias: try tensor(normPrefix + "bias", [outChannels]).storage,
            runningMean: try tensor(normPrefix + "running_mean", [outChannels]).storage,
            runningVar: try tensor(normPrefix + "running_var", [outChannels]).storage)
        return Conv2D.foldingBatchNorm(weight, norm, stride: stride, padding: padding)
    }

    /// A [in, out] matrix used as `x @ P` in open_clip (visual.proj, text_projection).
    func projection(_ name: String, in inFeatures: Int, out outFeatures: Int) throws -> Linear {
        Linear(projection: try tensor(name, [inFeatures, outFeatures]))
    }
}
