// Where each grid cell of the vision tower lies in the original image.
//
// The tower sees an S x S image made by `CLIPPreprocessing.geometry`: for the default `.shortest` mode
// the short side is resized to S and the centre S x S window is kept. A grid cell covers an equal
// share of that window; mapping back undoes the crop offset, then the resize. Sizes and offsets come
// from `CLIPPreprocessing` itself (`resizedSize`, `inputOffset`), so they are torchvision's / open_clip's.
import Foundation
import VLMImage
import VLMTensor

public struct PreprocessingGeometry: Sendable, Equatable {
    public let imageWidth: Int, imageHeight: Int
    /// The tower's input side S.
    public let size: Int
    /// The image size after resizing (before crop or pad).
    public let resizedWidth: Int, resizedHeight: Int
    /// Resized-image coordinate of the S x S input's left/top edge (negative when the input is padded).
    public let offsetX: Int, offsetY: Int

    public init(imageWidth: Int, imageHeight: Int, size: Int, mode: CLIPPreprocessing.ResizeMode) {
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        self.size = size
        (resizedWidth, resizedHeight) = CLIPPreprocessing.resizedSize(width: imageWidth, height: imageHeight, target: size, mode: mode)
        offsetX = CLIPPreprocessing.inputOffset(resized: resizedWidth, target: size)
        offsetY = CLIPPreprocessing.inputOffset(resized: resizedHeight, target: size)
    }

    /// The original-image pixels behind a box of cells of a `gridHeight` x `gridWidth` grid over the
    /// S x S input: edges rounded outwards, clamped to the image, never empty.
    public func pixelBox(of box: GridBox, gridHeight: Int, gridWidth: Int) -> PixelBox {
        let scaleX = Double(imageWidth) / Double(resizedWidth), scaleY = Double(imageHeight) / Double(resizedHeight)
        func original(_ cell: Int, cells: Int, offset: Int, scale: Double) -> Double {
            (Double(cell) * Double(size) / Double(cells) + Double(offset)) * scale
        }
        let x0 = Int(original(box.column, cells: gridWidth, offset: offsetX, scale: scaleX).rounded(.down))
        let x1 = Int(original(box.column + box.columns, cells: gridWidth, offset: offsetX, scale: scaleX).rounded(.up))
        let y0 = Int(original(box.row, cells: gridHeight, offset: offsetY, scale: scaleY).rounded(.down))
        let y1 = Int(original(box.row + box.rows, cells: gridHeight, offset: offsetY, scale: scaleY).rounded(.up))
        let left = min(max(0, x0), imageWidth - 1), top = min(max(0, y0), imageHeight - 1)
        let right = max(left + 1, min(imageWidth, x1)), bottom = max(top + 1, min(imageHeight, y1))
        return PixelBox(x: left, y: top, width: right - left, height: bottom - top)
    }
}
