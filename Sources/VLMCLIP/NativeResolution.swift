// Dense features at another input size than the model's (VLMVision's NativeResolution.swift resizes
// the attention pool's positional embedding to the trunk's grid).
//
// Why: a small model sees a scene of several objects at its own 64 px, so each object is a few
// pixels wide and the dense map has 2×2 cells. Fed larger, each object is at the scale the model
// was trained at and the map is finer.
import Foundation
import VLMTensor
import VLMVision

extension CLIPModel {
    /// The trunk's downsampling factor: a dense cell per this many input pixels.
    public static let denseStride = 32
    /// Largest side accepted, as a multiple of the model's image size (activation memory grows with the square).
    public static let maximumResolutionFactor = 4

    /// Throws unless `size` is a side this model's dense features can be computed at: a ModifiedResNet
    /// tower, a multiple of 32, between 32 and 4× the model's image size.
    public func checkDenseResolution(_ size: Int) throws(CLIPError) {
        guard imageTower is ModifiedResNet else {
            throw .invalidInput("dense features at another input size need a ModifiedResNet tower (this model is a ViT)")
        }
        let largest = Self.maximumResolutionFactor * config.vision.imageSize
        guard size >= Self.denseStride, size <= largest, size % Self.denseStride == 0 else {
            throw .invalidInput("the input side must be a multiple of \(Self.denseStride) in \(Self.denseStride)...\(largest), got \(size)")
        }
    }

    /// Per-position features (as `encodeImageDense`) of images preprocessed at `size`×`size`
    /// ([count, 3, size, size]); the grid is size/32 square.
    public func encodeImageDense(_ pixels: [Float], count: Int, size: Int, compute: ComputeContext = ComputeContext()) throws
        -> DenseImageFeatures
    {
        try checkDenseResolution(size)
        let resnet = imageTower as! ModifiedResNet  // checked above
        let perImage = 3 * size * size
        guard count > 0, pixels.count == count * perImage else {
            throw CLIPError.invalidInput("expected \(count) images of 3×\(size)×\(size) (\(count * perImage) floats), got \(pixels.count) floats")
        }
        let scratch = ScratchBuffer()
        var maps: [[[Float]]] = []
        var grid = (height: 0, width: 0)
        for image in 0..<count {
            let dense = try resnet.encodeDense(Array(pixels[image * perImage..<(image + 1) * perImage]), count: 1, size: size,
                                               scratch: scratch, compute: compute)
            grid = (dense.gridHeight, dense.gridWidth)
            maps.append((0..<grid.height * grid.width).map { Array(dense.values[$0 * embedDim..<($0 + 1) * embedDim]) })
        }
        return DenseImageFeatures(gridHeight: grid.height, gridWidth: grid.width, features: maps)
    }
}
