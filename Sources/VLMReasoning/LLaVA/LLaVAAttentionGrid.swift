// The LLaVA-1.5 tower's attention map for plain multimodal `generate`: its image tokens are the patch
// grid (token i is patch i+1; the class token, when kept last, spread over every cell).
extension LLaVAVisionTower {
    public func attentionGrid(_ mass: [Double]) -> AttributionMap {
        let side = hyperparameters.gridSide
        return AttributionMap(gridHeight: side, gridWidth: side,
                              scores: Self.gridScores(mass, cells: side * side, classTokenLast: hasClassToken),
                              normalization: "attention(mean over heads)")
    }

    /// Per-image-token attention mass to a grid map summing to 1 (uniform when there is no mass).
    static func gridScores(_ perToken: [Double], cells: Int, classTokenLast: Bool) -> [Float] {
        var grid = [Double](repeating: 0, count: cells)
        for (i, mass) in perToken.enumerated() where mass.isFinite && mass > 0 {
            if classTokenLast && i == perToken.count - 1 {
                for c in 0..<cells { grid[c] += mass / Double(cells) }
            } else {
                grid[classTokenLast ? i + 1 : i] += mass
            }
        }
        let total = grid.reduce(0, +)
        guard total > 0, total.isFinite else { return [Float](repeating: 1 / Float(cells), count: cells) }
        return grid.map { Float($0 / total) }
    }
}
