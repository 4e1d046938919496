import VLMTensor

/// Named weights of a PyTorch state dict (an open_clip checkpoint), each read with the shape the
/// architecture implies, so a checkpoint that does not match its config fails at load time with the
/// tensor's name instead of producing garbage. The towers here build their layers through it; the
/// loader that knows the file (VLMCLIP's `CheckpointReader`) supplies `tensor`.
public protocol StateDictReader {
    func tensor(_ name: String, _ shape: [Int]) throws -> Tensor
}

extension StateDictReader {
    public func linear(_ prefix: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        Linear(
            weight: try tensor(prefix + "weight", [outFeatures, inFeatures]),
            bias: bias ? try tensor(prefix + "bias", [outFeatures]) : nil)
    }

    /// A bias-free convolution `convName` followed by the batch norm `normPrefix`, folded into one.
    public func convolutionWithBatchNorm(
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
}
