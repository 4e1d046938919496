// How llama.cpp's mtmd cuts an image into idefics3 (SmolVLM) views (mtmd_image_preprocessor_idefics3,
// after transformers' Idefics3ImageProcessor), and the text it puts around them (mtmd_tokenize with
// MTMD_SLICE_TMPL_IDEFICS3, after Idefics3Processor):
//
//   1. resize keeping the aspect ratio so the longest edge is `clip.vision.preproc_image_size`
//      (the other edge truncated, then rounded up to even);
//   2. resize (aspect ratio not kept) up to whole tiles of the tower's image size;
//   3. cut that into rows x columns tiles, and resize it to one tile for the global view.
// Every resize is Pillow's Lanczos as llama.cpp ports it (horizontal pass first).
// Files converted without that key take mtmd's generic llava-uhd slicing instead: each side rounded to
// the nearest whole number of tiles (at least one), the image fitted into that canvas keeping its aspect
// ratio (bicubic, black padding, centred) and cut into tiles; the global view is the whole image
// stretched to one tile (bicubic).
//
// Layout, tiles row by row and the global view last:
//   <fake_token_around_image><row_1_col_1>[tile] ... <fake_token_around_image><row_1_col_C>[tile] \n
//   ... <fake_token_around_image><row_R_col_C>[tile]
//   \n\n<fake_token_around_image><global-img>[global view]<fake_token_around_image>
import VLMImage

/// The tiles and global view of one image.
public struct Idefics3Views: Sendable {
    public var rows: Int, columns: Int
    /// Row-major tiles, each `tileSize` square.
    public var tiles: [RGBImage]
    /// The whole image at one tile's size.
    public var global: RGBImage
}

public struct Idefics3Preprocessing: Sendable {
    /// The tower's image size: one tile's side.
    public let tileSize: Int
    /// `clip.vision.preproc_image_size`: the longest edge before tiling; nil for files without it.
    public let longestEdge: Int?

    public init(tileSize: Int, longestEdge: Int?) {
        self.tileSize = tileSize
        self.longestEdge = longestEdge
    }

    /// The size tiles are cut from: step 1's size (tiled files), or the whole-tile canvas (older files).
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        guard let longestEdge else {
            // mtmd's calc_size_preserved_ratio aligned to the tile, in float as it computes it.
            func side(_ n: Int) -> Int { max(tileSize, Int((Float(n) / Float(tileSize)).rounded()) * tileSize) }
            return (side(width), side(height))
        }
        let aspect = Double(width) / Double(height)
        if width >= height {
            let h = Int(Double(longestEdge) / aspect)
            return (longestEdge, h + h % 2)
        }
        let w = Int(Double(longestEdge) * aspect)
        return (w + w % 2, longestEdge)
    }

    /// Tiles per row and column of an image of this size.
    public func grid(width: Int, height: Int) -> (rows: Int, columns: Int) {
        let resized = resizedSize(width: width, height: height)
        return ((resized.height + tileSize - 1) / tileSize, (resized.width + tileSize - 1) / tileSize)
    }

    public func views(_ image: RGBImage) throws -> Idefics3Views {
        let resized = resizedSize(width: image.width, height: image.height)
        guard resized.width > 0, resized.height > 0 else {
            throw MMProjError.notSupported("a \(image.width)x\(image.height) image: its short side vanishes at a longest edge of \(longestEdge ?? 0)")
        }
        let (rows, columns) = grid(width: image.width, height: image.height)
        let refined: RGBImage, global: RGBImage
        if longestEdge == nil {
            refined = try image.mtmdFitted(width: resized.width, height: resized.height, filter: .bicubic)
            global = try image.mtmdResized(width: tileSize, height: tileSize, filter: .bicubic)
        } else {
            let step1 = try image.mtmdResized(width: resized.width, height: resized.height, filter: .lanczos)
            refined = try step1.mtmdResized(width: columns * tileSize, height: rows * tileSize, filter: .lanczos)
            global = try refined.mtmdResized(width: tileSize, height: tileSize, filter: .lanczos)
        }
        var tiles: [RGBImage] = []
        for row in 0..<rows {
            for column in 0..<columns {
                tiles.append(try refined.cropped(x: column * tileSize, y: row * tileSize, width: tileSize, height: tileSize))
            }
        }
        return Idefics3Views(rows: rows, columns: columns, tiles: tiles, global: global)
    }

    /// The marker text before each tile and the global view, and after the global view, in mtmd's order;
    /// `views[i]` is replaced by the i-th view's tokens (tiles row-major, then the global view).
    public static func layout(rows: Int, columns: Int, views: [ImageChunk]) -> [ImageChunk] {
        precondition(views.count == rows * columns + 1, "\(views.count) views for \(rows)x\(columns) tiles and a global view")
        var chunks: [ImageChunk] = []
        func text(_ string: String) {
            // mtmd appends consecutive text to one chunk; so does this.
            if case let .text(previous)? = chunks.last { chunks[chunks.count - 1] = .text(previous + string) } else { chunks.append(.text(string)) }
        }
        for row in 0..<rows {
            for column in 0..<columns {
                text("<fake_token_around_image><row_\(row + 1)_col_\(column + 1)>")
                chunks.append(views[row * columns + column])
            }
            if row < rows - 1 { text("\n") }
        }
        text("\n\n<fake_token_around_image><global-img>")
        chunks.append(views[rows * columns])
        text("<fake_token_around_image>")
        return chunks
    }
}
