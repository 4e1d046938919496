import Foundation

/// A rectangle in the original image's pixels: `x..<x+width`, `y..<y+height`.
public struct PixelRect: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { (self.x, self.y, self.width, self.height) = (x, y, width, height) }

    public var area: Int { max(0, width) * max(0, height) }

    public func intersection(_ other: PixelRect) -> Int {
        let w = min(x + width, other.x + other.width) - max(x, other.x)
        let h = min(y + height, other.y + other.height) - max(y, other.y)
        return max(0, w) * max(0, h)
    }

    public func iou(_ other: PixelRect) -> Double {
        let inter = intersection(other), union = area + other.area - inter
        return union > 0 ? Double(inter) / Double(union) : 0
    }

    /// Whether the point (px, py) lies inside.
    public func contains(x px: Double, y py: Double) -> Bool {
        Double(x) <= px && px < Double(x + width) && Double(y) <= py && py < Double(y + height)
    }
}

public enum SelectionTargets {
    /// A box as a distribution over the cells: each cell weighted by the pixels of the box it covers
    /// (`cells` are the cells' pixel rectangles in the original image). A box that fits inside one cell
    /// puts all its mass there; a box across several shares it by area. Nil when the box covers no
    /// cell (it lies outside the region the tower sees).
    public static func fromBox(_ box: PixelRect, cells: [PixelRect]) -> [Float]? {
        let overlap = cells.map { Double($0.intersection(box)) }
        let total = overlap.reduce(0, +)
        guard total > 0 else { return nil }
        return overlap.map { Float($0 / total) }
    }

    /// A given map (non-negative, one value per cell) as a distribution; nil when it has a negative or
    /// non-finite value, the wrong size, or no mass.
    public static func fromMap(_ map: [Float], cellCount: Int) -> [Float]? {
        guard map.count == cellCount, map.allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
        let total = map.reduce(0.0) { $0 + Double($1) }
        guard total > 0 else { return nil }
        return map.map { Float(Double($0) / total) }
    }
}

public enum SelectionMetrics {
    /// Whether the map points into `box`: the centre of its highest cell (ties: the first) lies inside.
    public static func pointsInto(_ scores: [Float], cells: [PixelRect], box: PixelRect) -> Bool {
        guard let best = scores.indices.max(by: { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }) else { return false }
        let cell = cells[best]
        return box.contains(x: Double(cell.x) + Double(cell.width) / 2, y: Double(cell.y) + Double(cell.height) / 2)
    }
}
