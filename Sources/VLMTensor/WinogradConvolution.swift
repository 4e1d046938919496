import CVLMBF16
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel
#endif

/// A 3×3, stride-1 convolution over channels-last batches by Winograd's minimal filtering F(4×4, 3×3)
/// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
///
/// Each 4×4 block of output pixels ("tile") is computed from the 6×6 input window under it:
///   Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A,
/// 36 multiplications per tile and channel pair instead of 144. The sum over input channels at each of
/// the 36 transform positions is a matrix product [tiles × in] · [in × out], so the multiplications run
/// through the packed micro-kernel (`PackedMatrix`), one product per position. Channels-last makes
/// the transforms vector operations across 8 channels at a time, with no transposes.
///
/// The tiles are processed in blocks small enough that a block's transformed input and the products'
/// output stay in cache between the three stages (input transform, 36 products, output transform).
/// F(4,3)'s transforms grow rounding error by a small constant factor over direct convolution
/// (the filter transform is computed in Double at load); the CLIP parity tests bound the result.
///
/// At bf16 the transforms are AVX-512 kernels (CVLMBF16/BF16Winograd.c): the input transform rounds
/// V straight into the bf16 rows the products read, and the output transform works 16 channels at a time.
public struct WinogradConv3x3: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let padding: Int
    /// 36 filters U_p = (G g Gᵀ)_p as [in × out], p = 6·row + column of the transform position.
    let transformed: Filters
    let bias: [Float]
    private let zeros: [Float]

    static let tile = 4
    static let window = 6
    static let positions = 36
    static let lanes = 8

    /// The transformed filters, packed for the precision of the products.
    enum Filters: Sendable {
        case fp32([any PackedProduct])
        case bf16([BF16Matrix])
    }

    /// True when `conv` can run through this path: 3×3, stride 1, channel counts in whole vectors.
    public static func supports(_ conv: Conv2D) -> Bool {
        conv.kernelSize == 3 && conv.stride == 1 && conv.inChannels % lanes == 0 && conv.outChannels % lanes == 0
    }

    /// Transforms an NCHW convolution's filter (PyTorch's [out, in, 3, 3]) once, at load; the 36 products
    /// run at `precision`.
    public init(_ conv: Conv2D, precision: MatrixPrecision = .fp32) {
        precondition(Self.supports(conv), "Winograd F(4,3) needs a 3×3 stride-1 convolution with channels in multiples of 8")
        (inChannels, outChannels, padding) = (conv.inChannels, conv.outChannels, conv.padding)
        let (cin, cout) = (inChannels, outChannels)
        var positions = [[Float]](repeating: [Float](repeating: 0, count: cin * cout), count: Self.positions)
        var u = [Double](repeating: 0, count: Self.positions)
        for o in 0..<cout {
            for c in 0..<cin {
                conv.weight.withUnsafeBufferPointer { Self.filterTransform($0.baseAddress! + (o * cin + c) * 9, into: &u) }
                for p in 0..<Self.positions { positions[p][c * cout + o] = Float(u[p]) }
            }
        }
        switch precision {
        case .fp32: transformed = .fp32(positions.map { precision.packed($0, rows: cin, columns: cout) })
        case .bf16: transformed = .bf16(positions.map { BF16Matrix($0, rows: cin, columns: cout) })
        }
        bias = conv.bias ?? [Float](repeating: 0, count: cout)
        zeros = [Float](repeating: 0, count: cout)
    }

    /// G, 6×3 row-major: the filter's values at the interpolation points 0, ±1, ±2 (with Lavin's
    /// scaling) and ∞.
    private static let G: [Double] = [1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
                                      1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1]

    /// u = G g Gᵀ (6×6, row-major) for one 3×3 filter g (row-major), in Double.
    static func filterTransform(_ g: UnsafePointer<Float>, into u: inout [Double]) {
        for i in 0..<6 {
            // Row i of G g, then its products with the rows of G.
            func gg(_ j: Int) -> Double { G[i * 3] * Double(g[j]) + G[i * 3 + 1] * Double(g[3 + j]) + G[i * 3 + 2] * Double(g[6 + j]) }
            let (gg0, gg1, gg2) = (gg(0), gg(1), gg(2))
            for j in 0..<6 { u[i * 6 + j] = gg0 * G[j * 3] + gg1 * G[j * 3 + 1] + gg2 * G[j * 3 + 2] }
        }
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (height + 2 * padding - 2, width + 2 * padding - 2)
    }

    /// Tiles per block: the block's transformed input and product output ([36 × tiles × (in + out)])
    /// stay within about 2 MiB (the two cores' L2), and blocks hold at least a few micro-kernel tiles.
    private var blockTiles: Int { max(24, (1 << 19) / (Self.positions * (inChannels + outChannels))) }

    /// Convolves `batch` images of [height, width, inChannels] into `output` ([batch, oh, ow, outChannels]),
    /// as `ChannelsLastConv2D.apply` does: with `accumulate`, onto what `output` holds; with `relu`, max(·, 0) last.
    public func apply(
        _ input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
        into output: UnsafeMutablePointer<Float>, scratch: ScratchBuffer, compute: ComputeContext,
        accumulate: Bool = false, relu: Bool = false
    ) {
        let (oh, ow) = outputSize(height: height, width: width)
        guard batch > 0, oh > 0, ow > 0 else { return }
        let grid = TileGrid(height: height, width: width, outHeight: oh, outWidth: ow, padding: padding)
        let filters: [any PackedProduct]
        switch transformed {
        case let .bf16(matrices):
            return applyBF16(matrices, input, batch: batch, grid: grid, into: output, scratch: scratch, compute: compute,
                             accumulate: accumulate, relu: relu)
        case let .fp32(matrices):
            filters = matrices
        }
        let tiles = batch * grid.tilesPerImage
        let block = min(tiles, blockTiles)
        let transformedInput = scratch.region(Self.positions * block * (inChannels + outChannels))
        let products = transformedInput + Self.positions * block * inChannels
        for first in Swift.stride(from: 0, to: tiles, by: block) {
            let count = min(block, tiles - first)
            compute.parallelFor(count, minimumPartSize: 4) { part in
                transformInput(input, grid: grid, tiles: first + part.lowerBound..<first + part.upperBound, firstInBlock: first,
                               block: block, into: transformedInput)
            }
            compute.parallelFor(Self.positions) { part in
                for p in part {
                    filters[p].multiplyOnThisThread(transformedInput + p * block * inChannels, lda: inChannels, m: count,
                                                        into: products + p * block * outChannels, ldc: outChannels, bias: zeros)
                }
            }
            compute.parallelFor(count, minimumPartSize: 4) { part in
                transformOutput(products, grid: grid, tiles: first + part.lowerBound..<first + part.upperBound, firstInBlock: first,
                                block: block, into: output, accumulate: accumulate, relu: relu)
            }
        }
    }

    /// `apply` with bf16 products. Where the tiles are many and a core's L2 holds a good block of them
    /// (the stem and stage 1 of RN50), each thread convolves its own share of the tiles, block by block,
    /// with no synchronisation between the three steps; otherwise the threads share every block.
    private func applyBF16(
        _ filters: [BF16Matrix], _ input: UnsafePointer<Float>, batch: Int, grid: TileGrid,
        into output: UnsafeMutablePointer<Float>, scratch: ScratchBuffer, compute: ComputeContext, accumulate: Bool, relu: Bool
    ) {
        let tiles = batch * grid.tilesPerImage
        let job = BF16WinogradJob(convolution: self, filters: filters, input: input, grid: grid, output: output, accumulate: accumulate,
                                  relu: relu)
        let perCore = bf16TilesPerCore
        guard perCore >= 36, tiles >= compute.threads * perCore else {
            let block = min(tiles, blockTiles)
            return job.run(tiles: 0..<tiles, block: block, workspace: scratch.region(bf16BlockFloats(block)), compute: compute)
        }
        let (parts, space) = (compute.threads, bf16BlockFloats(perCore))
        let workspace = scratch.region(parts * space)
        let alone = compute.with(threads: 1)
        compute.parallelFor(parts, parts: parts) { range in
            for part in range {
                job.run(tiles: (part * tiles / parts)..<((part + 1) * tiles / parts), block: perCore, workspace: workspace + part * space,
                        compute: alone)
            }
        }
    }

    /// Tiles per block when one core works on its own: bf16 V and fp32 products within ¾ MiB (most of a
    /// core's L2), a whole number of micro-kernel tiles.
    private var bf16TilesPerCore: Int {
        let bytes = Self.positions * (2 * inChannels + 4 * outChannels)
        return (3 << 18) / bytes / BF16Matrix.tileRows * BF16Matrix.tileRows
    }

    /// Floats of workspace for a bf16 block of `block` tiles: V (bf16, half a float each), then the products.
    private func bf16BlockFloats(_ block: Int) -> Int { bf16InputFloats(block) + Self.positions * block * outChannels }

    /// Floats' room for the bf16 V of a block of `block` tiles.
    fileprivate func bf16InputFloats(_ block: Int) -> Int { (Self.positions * block * inChannels + 1) / 2 }

    /// V_p[t][c] = (Bᵀ d B)_p for each tile t of `tiles` (numbered across the batch), d its 6×6 input
    /// window (zero outside the image), 8 channels at a time: each window row is loaded and transformed
    /// in registers (d B), then each column of that (Bᵀ ·) on its way to V.
    private func transformInput(
        _ input: UnsafePointer<Float>, grid: TileGrid, tiles: Range<Int>, firstInBlock: Int, block: Int,
        into v: UnsafeMutablePointer<Float>
    ) {
        let cin = inChannels
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: Self.positions) { rowsDone in
            let rowsDone = rowsDone.baseAddress!
            for t in tiles {
                let (image, y0, x0) = grid.window(of: t)
                let source = input + image * grid.height * grid.width * cin
                let target = v + (t - firstInBlock) * cin
                let columnsInside = x0 >= 0 && x0 + Self.window <= grid.width
                for c in Swift.stride(from: 0, to: cin, by: Self.lanes) {
                    for i in 0..<Self.window {
                        let y = y0 + i
                        guard y >= 0 && y < grid.height else {
                            for j in 0..<Self.window { rowsDone[i * 6 + j] = .zero }
                            continue
                        }
                        let row = source + (y * grid.width + x0) * cin + c
                        @inline(__always) func pixel(_ j: Int) -> SIMD8<Float> {
                            columnsInside || (x0 + j >= 0 && x0 + j < grid.width) ? loadVector8(row + j * cin) : .zero
                        }
                        Self.inputTransform(pixel(0), pixel(1), pixel(2), pixel(3), pixel(4), pixel(5)) { rowsDone[i * 6 + $0] = $1 }
                    }
                    for j in 0..<Self.window {
                        let column = rowsDone + j
                        Self.inputTransform(column[0], column[6], column[12], column[18], column[24], column[30]) {
                            storeVector8($1, target + ($0 * 6 + j) * block * cin + c)
                        }
                    }
                }
            }
        }
    }

    /// Bᵀ (d0 … d5): the rows of Bᵀ are the F(4,3) interpolation points 0, ±1, ±2, ∞. `write(i, value)`
    /// receives entry i.
    @inline(__always)
    private static func inputTransform(
        _ d0: SIMD8<Float>, _ d1: SIMD8<Float>, _ d2: SIMD8<Float>, _ d3: SIMD8<Float>, _ d4: SIMD8<Float>, _ d5: SIMD8<Float>,
        _ write: (Int, SIMD8<Float>) -> Void
    ) {
        write(0, 4 * d0 - 5 * d2 + d4)
        write(1, d3 + d4 - 4 * (d1 + d2))
        write(2, d4 - d3 + 4 * (d1 - d2))
        write(3, d4 - d2 + 2 * (d3 - d1))
        write(4, d4 - d2 + 2 * (d1 - d3))
        write(5, 4 * d1 - 5 * d3 + d5)
    }

    /// Y = Aᵀ M A for each tile of `tiles`, plus bias (and the residual already in `output` when
    /// `accumulate`), then ReLU; the parts of a tile past the image's edge are dropped.
    private func transformOutput(
        _ products: UnsafePointer<Float>, grid: TileGrid, tiles: Range<Int>, firstInBlock: Int, block: Int,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool, relu: Bool
    ) {
        let cout = outChannels
        let floor = SIMD8<Float>(repeating: relu ? 0 : -.infinity)
        let step = block * cout
        bias.withUnsafeBufferPointer { bias in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 6 * Self.tile) { rowsDone in
                let rowsDone = rowsDone.baseAddress!
                for t in tiles {
                    let (image, y0, x0) = grid.outputTile(of: t)
                    let target = output + image * grid.outHeight * grid.outWidth * cout
                    let source = products + (t - firstInBlock) * cout
                    let rows = min(Self.tile, grid.outHeight - y0)
                    let columns = min(Self.tile, grid.outWidth - x0)
                    for o in Swift.stride(from: 0, to: cout, by: Self.lanes) {
                        // M A, row by row, then Aᵀ (M A), column by column, straight to the output pixels.
                        for i in 0..<Self.window {
                            let m = source + i * 6 * step + o
                            Self.outputTransform(loadVector8(m), loadVector8(m + step), loadVector8(m + 2 * step), loadVector8(m + 3 * step),
                                                 loadVector8(m + 4 * step), loadVector8(m + 5 * step)) { rowsDone[i * 4 + $0] = $1 }
                        }
                        let b = loadVector8(bias.baseAddress! + o)
                        for j in 0..<columns {
                            let column = rowsDone + j
                            Self.outputTransform(column[0], column[4], column[8], column[12], column[16], column[20]) { i, value in
                                guard i < rows else { return }
                                let y = target + ((y0 + i) * grid.outWidth + x0 + j) * cout + o
                                let sum = accumulate ? value + b + loadVector8(y) : value + b
                                storeVector8(lanewiseMax(sum, floor), y)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Aᵀ (m0 … m5); `write(i, value)` receives entry i of 4.
    @inline(__always)
    private static func outputTransform(
        _ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>, _ m3: SIMD8<Float>, _ m4: SIMD8<Float>, _ m5: SIMD8<Float>,
        _ write: (Int, SIMD8<Float>) -> Void
    ) {
        let (sum12, difference12, sum34, difference34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4)
        write(0, m0 + sum12 + sum34)
        write(1, difference12 + 2 * difference34)
        write(2, sum12 + 4 * sum34)
        write(3, difference12 + 8 * difference34 + m5)
    }
}

/// max(a, b) lane by lane (the generic `pointwiseMax` is not inlined into the hot loop).
@inline(__always)
private func lanewiseMax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    #if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
    _mm256_max_ps(a, b)
    #else
    pointwiseMax(a, b)
    #endif
}

/// Where tile t (numbered across the batch, row-major within an image) sits.
private struct TileGrid {
    let height: Int
    let width: Int
    let outHeight: Int
    let outWidth: Int
    let padding: Int
    let tileRows: Int
    let tileColumns: Int

    init(height: Int, width: Int, outHeight: Int, outWidth: Int, padding: Int) {
        (self.height, self.width, self.outHeight, self.outWidth, self.padding) = (height, width, outHeight, outWidth, padding)
        tileRows = (outHeight + WinogradConv3x3.tile - 1) / WinogradConv3x3.tile
        tileColumns = (outWidth + WinogradConv3x3.tile - 1) / WinogradConv3x3.tile
    }

    var tilesPerImage: Int { tileRows * tileColumns }

    /// The image and the top-left output pixel of tile t.
    @inline(__always)
    func outputTile(of t: Int) -> (image: Int, y: Int, x: Int) {
        let (image, index) = t.quotientAndRemainder(dividingBy: tilesPerImage)
        return (image, (index / tileColumns) * WinogradConv3x3.tile, (index % tileColumns) * WinogradConv3x3.tile)
    }

    /// The image and the top-left input pixel (possibly in the padding) of tile t's 6×6 window.
    @inline(__always)
    func window(of t: Int) -> (image: Int, y: Int, x: Int) {
        let (image, y, x) = outputTile(of: t)
        return (image, y - padding, x - padding)
    }
}

/// One bf16 Winograd convolution's operands, run over ranges of tiles block by block: V in bf16 (rounded
/// by the input transform), the 36 products from it, then the output transform with bias, residual and
/// ReLU, all in AVX-512 (CVLMBF16/BF16Winograd.c).
private struct BF16WinogradJob {
    let convolution: WinogradConv3x3
    let filters: [BF16Matrix]
    let input: UnsafePointer<Float>
    let grid: TileGrid
    let output: UnsafeMutablePointer<Float>
    let accumulate: Bool
    let relu: Bool

    /// Convolves `tiles` in blocks of `block` in `workspace` (`bf16BlockFloats(block)` floats), each step
    /// split across `compute`'s threads.
    func run(tiles: Range<Int>, block: Int, workspace: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        let (cin, cout) = (convolution.inChannels, convolution.outChannels)
        let roundedFloats = convolution.bf16InputFloats(block)
        let products = workspace + roundedFloats
        UnsafeMutableRawPointer(workspace).withMemoryRebound(to: UInt16.self, capacity: 2 * roundedFloats) { v in
            for first in Swift.stride(from: tiles.lowerBound, to: tiles.upperBound, by: block) {
                let count = min(block, tiles.upperBound - first)
                compute.parallelFor(count, minimumPartSize: 4) { part in
                    for t in (first + part.lowerBound)..<(first + part.upperBound) {
                        let (image, y0, x0) = grid.window(of: t)
                        vlm_bf16_winograd_input(input + image * grid.height * grid.width * cin, Int32(grid.height), Int32(grid.width),
                                                Int32(cin), Int32(y0), Int32(x0), v + (t - first) * cin, block * cin)
                    }
                }
                compute.parallelFor(WinogradConv3x3.positions) { part in
                    for p in part {
                        filters[p].multiplyOnThisThread(rounded: v + p * block * cin, lda: cin, m: count,
                                                        into: products + p * block * cout, ldc: cout)
                    }
                }
                convolution.bias.withUnsafeBufferPointer { bias in
                    compute.parallelFor(count, minimumPartSize: 4) { part in
                        for t in (first + part.lowerBound)..<(first + part.upperBound) {
                            let (image, y0, x0) = grid.outputTile(of: t)
                            let corner = output + ((image * grid.outHeight + y0) * grid.outWidth + x0) * cout
                            vlm_winograd_output(products + (t - first) * cout, block * cout, Int32(cout), bias.baseAddress!, corner,
                                                grid.outWidth * cout, Int32(min(WinogradConv3x3.tile, grid.outHeight - y0)),
                                                Int32(min(WinogradConv3x3.tile, grid.outWidth - x0)), accumulate ? 1 : 0, relu ? 1 : 0)
                        }
                    }
                }
            }
        }
    }
}
