// Storage formats of weight matrices as ggml lays them out in GGUF files.
//
// A row of `columns` values is stored as `columns / blockLength` consecutive blocks of `blockBytes`
// bytes each. Layouts (ggml-common.h):
//   q4_0  18 B / 32 values: fp16 d, 16 bytes of nibbles (value j = low nibble of byte j, value j+16 = high)
//   q4_1  20 B / 32 values: fp16 d, fp16 m, 16 bytes of nibbles; x = d*q + m
//   q5_0  22 B / 32 values: fp16 d, 32 high bits (u32), 16 bytes of nibbles; x = d*(q - 16)
//   q5_1  24 B / 32 values: fp16 d, fp16 m, 32 high bits, 16 bytes of nibbles; x = d*q + m
//   q8_0  34 B / 32 values: fp16 d, 32 int8
//   q2_K  84 B / 256 values: 16 bytes of 4-bit scale|min pairs, 64 bytes of 2-bit quants, fp16 d, fp16 dmin
//   q3_K 110 B / 256 values: 32 B high-bit mask, 64 B low 2 bits, 12 B packed 6-bit scales, fp16 d
//   q4_K 144 B / 256 values: fp16 d, fp16 dmin, 12 bytes of packed 6-bit scales/mins, 128 bytes of nibbles
//   q5_K 176 B / 256 values: fp16 d, fp16 dmin, 12 B scales/mins, 32 B high bits, 128 B nibbles
//   q6_K 210 B / 256 values: 128 B low nibbles, 64 B high 2-bit pairs, 16 int8 scales, fp16 d

public enum WeightFormat: String, Sendable, CaseIterable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K

    /// Values per block.
    public var blockLength: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }

    /// What activations are converted to for a product with this format (ggml's `vec_dot_type`);
    /// formats with the same partner can share one converted activation row.
    var activationPartner: String {
        switch self {
        case .f32, .f16, .bf16: rawValue
        case .q4_0, .q5_0, .q8_0: "q8_0"
        case .q4_1, .q5_1: "q8_1"
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: "q8_K"
        }
    }

    /// K-quants: 256-value super-blocks multiplied against Q8_K activations.
    public var isKQuant: Bool { blockLength == 256 }

    /// Bytes of one row of `columns` values, or nil when `columns` is not a whole number of blocks.
    public func rowBytes(columns: Int) -> Int? {
        guard columns >= 0, columns % blockLength == 0 else { return nil }
        return (columns / blockLength).multipliedReportingOverflow(by: blockBytes).overflow
            ? nil : (columns / blockLength) * blockBytes
    }
}
