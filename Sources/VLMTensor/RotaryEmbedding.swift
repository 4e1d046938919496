import Foundation

// Rotary position embeddings (Su et al. 2021) applied to query/key rows, in the "halves" layout ggml calls
// NEOX and VISION: within each head, value i turns with value i + half by the angle of pair i.

/// Per row, the (cos, sin) of each rotated pair: [rows][pairs], row-major.
public struct RotaryAngles: Sendable {
    public let pairs: Int
    public let cos: [Float]
    public let sin: [Float]

    public init(pairs: Int, cos: [Float], sin: [Float]) {
        precondition(pairs > 0 && cos.count == sin.count && cos.count % pairs == 0, "angles must be rows x \(pairs) pairs")
        (self.pairs, self.cos, self.sin) = (pairs, cos, sin)
    }

    public var rows: Int { cos.count / pairs }

    /// ggml's 2-D vision RoPE (ggml_rope_multi, GGML_ROPE_TYPE_VISION, as Qwen2-VL's tower calls it): of a
    /// head's `headDimension / 2` pairs, the first half turn with the row position and the second half
    /// with the column, each section's angle starting again at its position and shrinking by
    /// base^(-4 / headDimension) a pair, multiplied step by step in Float as ggml's cache does.
    public static func grid2D(rows: [Int], columns: [Int], headDimension: Int, base: Float = 10000) -> RotaryAngles {
        precondition(rows.count == columns.count && headDimension % 4 == 0, "one (row, column) per token; head size a multiple of 4")
        let pairs = headDimension / 2, section = headDimension / 4
        let scale = powf(base, -2 / Float(pairs))
        var cos = [Float](repeating: 0, count: rows.count * pairs), sin = cos
        for token in rows.indices {
            for (first, position) in [(0, rows[token]), (section, columns[token])] {
                var theta = Float(position)
                for k in first..<(first + section) {
                    cos[token * pairs + k] = cosf(theta)
                    sin[token * pairs + k] = sinf(theta)
                    theta *= scale
                }
            }
        }
        return RotaryAngles(pairs: pairs, cos: cos, sin: sin)
    }

    /// Rotates each `headDimension`-wide head of `rows()` rows `stride` apart in place: x[i], x[i + pairs].
    public func rotate(_ x: UnsafeMutablePointer<Float>, stride: Int, heads: Int, headDimension: Int) {
        precondition(headDimension == 2 * pairs, "head size \(headDimension) for \(pairs) rotated pairs")
        for row in 0..<rows {
            let angles = row * pairs
            for h in 0..<heads {
                let v = x + row * stride + h * headDimension
                for i in 0..<pairs {
                    let x0 = v[i], x1 = v[i + pairs], c = cos[angles + i], s = sin[angles + i]
                    v[i] = x0 * c - x1 * s
                    v[i + pairs] = x0 * s + x1 * c
                }
            }
        }
    }
}
