// Boxes of cells on a grid (attribution maps, selection heads' maps) and the smallest one holding a
// given share of a map's mass: what reasoning selects and what selector evaluation scores.
import Foundation

/// A rectangle of grid cells, inclusive-exclusive: rows `row..<row+rows`, columns `column..<column+columns`.
public struct GridBox: Sendable, Equatable {
    public var row: Int, column: Int, rows: Int, columns: Int
    public init(row: Int, column: Int, rows: Int, columns: Int) {
        self.row = row; self.column = column; self.rows = rows; self.columns = columns
    }
}

extension GridBox {
    /// The smallest-area axis-aligned box of cells whose mass reaches `fraction` of the total; among
    /// boxes of that area the one with the most mass (ties: the first in row-major order of its top-left
    /// corner, then by height). Exhaustive over all boxes with a summed-area table: O(H² W²), which is
    /// 2,401 boxes for a 7x7 grid and 331,776 for 24x24.
    public static func smallest(holding fraction: Float, of scores: [Float], gridHeight h: Int, gridWidth w: Int) -> GridBox {
        // table[(r) * (w+1) + c] = sum of scores[0..<r][0..<c], in Double so the thresholds are exact enough.
        var table = [Double](repeating: 0, count: (h + 1) * (w + 1))
        for r in 0..<h {
            for c in 0..<w {
                table[(r + 1) * (w + 1) + c + 1] = Double(scores[r * w + c]) + table[r * (w + 1) + c + 1]
                    + table[(r + 1) * (w + 1) + c] - table[r * (w + 1) + c]
            }
        }
        let total = table[h * (w + 1) + w]
        // A small tolerance so a fraction of 1 is reachable despite rounding.
        let needed = Double(fraction) * total - 1e-9
        var best = GridBox(row: 0, column: 0, rows: h, columns: w), bestArea = h * w, bestMass = total
        for row in 0..<h {
            for column in 0..<w {
                for rows in 1...(h - row) {
                    for columns in 1...(w - column) {
                        let area = rows * columns
                        guard area <= bestArea else { break }
                        let mass = table[(row + rows) * (w + 1) + column + columns] - table[row * (w + 1) + column + columns]
                            - table[(row + rows) * (w + 1) + column] + table[row * (w + 1) + column]
                        guard mass >= needed else { continue }
                        if area < bestArea || mass > bestMass {
                            best = GridBox(row: row, column: column, rows: rows, columns: columns)
                            bestArea = area
                            bestMass = mass
                        }
                    }
                }
            }
        }
        return best
    }
}
