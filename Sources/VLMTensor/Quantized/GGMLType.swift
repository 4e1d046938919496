// ggml's tensor type codes (ggml.h `enum ggml_type`), by name, and the ones this package computes with.

public enum GGMLType {
    /// Every type code ggml has defined, including removed ones, so an error can say which type a file
    /// uses ("IQ2_XXS") rather than a bare number.
    public static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_2 (removed)", 5: "Q4_3 (removed)", 6: "Q5_0", 7: "Q5_1",
        8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
        16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
        24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
        31: "Q4_0_4_4 (removed)", 32: "Q4_0_4_8 (removed)", 33: "Q4_0_8_8 (removed)", 34: "TQ1_0", 35: "TQ2_0",
        36: "IQ4_NL_4_4 (removed)", 37: "IQ4_NL_4_8 (removed)", 38: "IQ4_NL_8_8 (removed)", 39: "MXFP4", 40: "NVFP4",
        41: "Q1_0", 42: "Q2_0",
    ]

    /// The weight formats with kernels, by type code.
    public static let formats: [UInt32: WeightFormat] = [
        0: .f32, 1: .f16, 2: .q4_0, 3: .q4_1, 6: .q5_0, 7: .q5_1, 8: .q8_0,
        10: .q2_K, 11: .q3_K, 12: .q4_K, 13: .q5_K, 14: .q6_K, 30: .bf16,
    ]

    /// "IQ2_XXS (16)", or "unknown type 99" for a code ggml never defined.
    public static func describe(_ code: UInt32) -> String {
        names[code].map { "\($0) (\(code))" } ?? "unknown type \(code)"
    }
}
