// IEEE half (fp16) and bfloat16 conversions, bit-exact with ggml's.
//
// GGUF stores block scales and F16 weights as fp16 bits. Converting through a 64K-entry table (as ggml
// does) avoids a libcall per element on x86 builds without F16C, and gives the exact same value.

/// fp16 bits -> Float, exact (every fp16 value is representable as a Float).
public let halfToFloatTable: [Float] = (0..<65536).map { Float(Float16(bitPattern: UInt16($0))) }

@inline(__always)
public func halfToFloat(_ bits: UInt16) -> Float {
    halfToFloatTable.withUnsafeBufferPointer { $0[Int(bits)] }
}

/// Float -> fp16 bits with round-to-nearest-even, like `GGML_FP32_TO_FP16` (F16C / reference path).
@inline(__always)
public func floatToHalf(_ value: Float) -> UInt16 { Float16(value).bitPattern }

/// Rounds a Float through fp16 and back: what ggml does to activations multiplied with F16 data.
@inline(__always)
public func roundedThroughHalf(_ value: Float) -> Float { halfToFloat(floatToHalf(value)) }

/// bfloat16 bits -> Float: the top 16 bits of a Float.
@inline(__always)
public func bfloat16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// Float -> bfloat16 bits, round-to-nearest-even, NaN kept quiet (ggml's `ggml_compute_fp32_to_bf16`).
@inline(__always)
public func floatToBFloat16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if (bits & 0x7fff_ffff) > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (bits >> 16) | 64) }
    return UInt16(truncatingIfNeeded: (bits &+ (0x7fff &+ ((bits >> 16) & 1))) >> 16)
}
