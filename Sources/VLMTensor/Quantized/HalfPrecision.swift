// IEEE half (fp16) and bfloat16 conversions, bit-exact with ggml's.
//
// GGUF stores block scales and F16 weights as fp16 bits. On x86 the conversion is F16C's; elsewhere a
// 64K-entry table (as ggml's portable path has) avoids a libcall per element. Both are exact.

#if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// fp16 bits -> Float, exact (every fp16 value is representable as a Float): one F16C instruction
/// (`vcvtph2ps`, part of the Haswell baseline these modules are compiled for).
@inlinable @inline(__always)
public func halfToFloat(_ bits: UInt16) -> Float { _cvtsh_ss(bits) }
#else
/// fp16 bits -> Float, exact (every fp16 value is representable as a Float).
@usableFromInline let halfToFloatTable: [Float] = (0..<65536).map { Float(Float16(bitPattern: UInt16($0))) }

@inlinable @inline(__always)
public func halfToFloat(_ bits: UInt16) -> Float {
    halfToFloatTable.withUnsafeBufferPointer { $0[Int(bits)] }
}
#endif

/// Float -> fp16 bits with round-to-nearest-even, like `GGML_FP32_TO_FP16` (F16C / reference path).
@inlinable @inline(__always)
public func floatToHalf(_ value: Float) -> UInt16 { Float16(value).bitPattern }

/// Rounds a Float through fp16 and back: what ggml does to activations multiplied with F16 data.
@inlinable @inline(__always)
public func roundedThroughHalf(_ value: Float) -> Float { halfToFloat(floatToHalf(value)) }

/// bfloat16 bits -> Float: the top 16 bits of a Float.
@inlinable @inline(__always)
public func bfloat16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// Float -> bfloat16 bits, round-to-nearest-even, NaN kept quiet (ggml's `ggml_compute_fp32_to_bf16`).
@inlinable @inline(__always)
public func floatToBFloat16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if (bits & 0x7fff_ffff) > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (bits >> 16) | 64) }
    return UInt16(truncatingIfNeeded: (bits &+ (0x7fff &+ ((bits >> 16) & 1))) >> 16)
}
