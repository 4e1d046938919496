// The LLaVA-1.5 tower's attention map: its image tokens are the patch grid (the class token, when kept
// last, spread over every cell), as visual reasoning's LLaVA path lays them (LLaVAPreparedImage).
extension LLaVAVisionTower {
    public func attentionGrid(_ mass: [Double]) -> AttributionMap {
        let side = hyperparameters.gridSide
        return AttributionMap(gridHeight: side, gridWidth: side,
                              scores: LLaVAPreparedImage.gridScores(mass, cells: side * side, classTokenLast: hasClassToken),
                              normalization: "attention(mean over heads)")
    }
}
