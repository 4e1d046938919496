// The integer core of the quantised dot products with x86 AVX2 integer instructions, as ggml runs it:
// `_mm256_maddubs_epi16` (unsigned x signed bytes, adjacent pairs summed to int16) then
// `_mm256_madd_epi16` with ones (adjacent int16 pairs to int32), giving eight lanes that each hold the
// products of four consecutive elements. Signed weights go through `_mm256_sign_epi8` first (|w| and
// a with w's sign). The results are exact integers, identical to the portable path's.
//
// The numeric modules are compiled for Haswell (AVX2 + FMA), so these need no run-time check.
// Building with `-Xswiftc -DVLM_PORTABLE_KERNELS` selects the portable path instead (to test it on x86).
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

extension BlockDot {
    /// A block of 32 weights as bytes in element order, with the magnitudes `maddubs` multiplies.
    struct Unpacked32 {
        let weights: __m256i
        let magnitudes: __m256i
        let signed: Bool

        @inline(__always)
        init(signed weights: __m256i) {
            self.weights = weights
            magnitudes = _mm256_sign_epi8(weights, weights)
            signed = true
        }

        @inline(__always)
        init(unsigned weights: __m256i) {
            self.weights = weights
            magnitudes = weights
            signed = false
        }

        /// 32 int8 (q8_0).
        @inline(__always)
        init(int8 p: UnsafeRawPointer) { self.init(signed: _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self))) }

        /// 16 bytes of nibbles: element i is the low nibble of byte i, element 16+i its high nibble.
        @inline(__always)
        init(nibbles p: UnsafeRawPointer, offset: Int16) {
            let bytes = nibbleBytes(p)
            if offset == 0 { self.init(unsigned: bytes) } else { self.init(signed: _mm256_sub_epi8(bytes, _mm256_set1_epi8(Int8(offset)))) }
        }

        /// Nibbles plus a fifth bit per element (bit i of `highBits` for element i).
        @inline(__always)
        init(nibbles p: UnsafeRawPointer, highBits: UInt32, offset: Int16) {
            let bytes = _mm256_or_si256(nibbleBytes(p), _mm256_and_si256(bitBytes(highBits), _mm256_set1_epi8(0x10)))
            if offset == 0 { self.init(unsigned: bytes) } else { self.init(signed: _mm256_sub_epi8(bytes, _mm256_set1_epi8(Int8(offset)))) }
        }

        /// Lane k = sum of w[j] * a[j] for j in 4k..<4k+4; `a` is the block's 32 int8 activations.
        @inline(__always)
        func laneSums(_ a: UnsafeRawPointer) -> SIMD8<Int32> {
            var activations = _mm256_loadu_si256(a.assumingMemoryBound(to: __m256i.self))
            if signed { activations = _mm256_sign_epi8(activations, weights) }
            return unsafeBitCast(_mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, activations), _mm256_set1_epi16(1)),
                                 to: SIMD8<Int32>.self)
        }
    }
}

/// `bytes_from_nibbles_32`: low nibbles of 16 bytes, then their high nibbles.
@inline(__always)
private func nibbleBytes(_ p: UnsafeRawPointer) -> __m256i {
    let packed = _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0F))
}

/// `bytes_from_bits_32`: byte i is 0xFF when bit i is set, else 0.
@inline(__always)
private func bitBytes(_ bits: UInt32) -> __m256i {
    let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: bits)),
                                     _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0))
    let marked = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE))
    return _mm256_cmpeq_epi8(marked, _mm256_set1_epi64x(-1))
}

/// 32 bytes of packed K-quant weights being unpacked (AVX2 byte operations).
struct Bytes32 {
    let v: __m256i
    @inline(__always) init(_ v: __m256i) { self.v = v }
    @inline(__always) init(_ p: UnsafeRawPointer) { v = _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self)) }
    @inline(__always) init(repeating b: UInt8) { v = _mm256_set1_epi8(Int8(bitPattern: b)) }
    @inline(__always) func masked(_ m: UInt8) -> Bytes32 { Bytes32(_mm256_and_si256(v, _mm256_set1_epi8(Int8(bitPattern: m)))) }
    /// Logical shift of each byte (the 16-bit shift's spill from the neighbour byte is masked off).
    @inline(__always) func shiftedRight(_ n: Int32) -> Bytes32 { Bytes32(_mm256_srli_epi16(v, n)).masked(UInt8(0xFF) >> UInt8(n)) }
    @inline(__always) func shiftedLeft(_ n: Int32) -> Bytes32 { Bytes32(_mm256_slli_epi16(v, n)).masked(UInt8(0xFF) << UInt8(n)) }
    @inline(__always) static func | (a: Bytes32, b: Bytes32) -> Bytes32 { Bytes32(_mm256_or_si256(a.v, b.v)) }
    @inline(__always) static func &- (a: Bytes32, b: Bytes32) -> Bytes32 { Bytes32(_mm256_sub_epi8(a.v, b.v)) }
}

/// `_mm256_maddubs_epi16` + `_mm256_madd_epi16(…, ones)`: lane k = sum of w[j] * a[j], j in 4k..<4k+4,
/// for unsigned weights below 128 and int8 activations.
@inline(__always)
func quadSums(_ w: Bytes32, _ a: UnsafeRawPointer) -> SIMD8<Int32> {
    let products = _mm256_maddubs_epi16(w.v, _mm256_loadu_si256(a.assumingMemoryBound(to: __m256i.self)))
    return unsafeBitCast(_mm256_madd_epi16(products, _mm256_set1_epi16(1)), to: SIMD8<Int32>.self)
}

/// `quadSums(w, a)` with lanes 0..<4 times `low` and lanes 4..<8 times `high` in the same step, as
/// ggml's K-quant kernels do it: `_mm256_madd_epi16` of the byte-pair sums with the scales as int16
/// instead of ones (exact: pair sums and scales fit in int16, their products in int32).
@inline(__always)
func scaledQuadSums(_ w: Bytes32, _ a: UnsafeRawPointer, low: Int32, high: Int32) -> SIMD8<Int32> {
    let products = _mm256_maddubs_epi16(w.v, _mm256_loadu_si256(a.assumingMemoryBound(to: __m256i.self)))
    let scales = _mm256_set_m128i(_mm_set1_epi16(Int16(truncatingIfNeeded: high)), _mm_set1_epi16(Int16(truncatingIfNeeded: low)))
    return unsafeBitCast(_mm256_madd_epi16(products, scales), to: SIMD8<Int32>.self)
}

/// The lane sums of four int32 vectors, wrapping (exact in any order): three `vphaddd` and one add
/// instead of a reduction tree per vector.
@inline(__always)
func wrappedSums(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>, _ c: SIMD8<Int32>, _ d: SIMD8<Int32>) -> SIMD4<Int32> {
    @inline(__always) func m(_ v: SIMD8<Int32>) -> __m256i { unsafeBitCast(v, to: __m256i.self) }
    // Lanes 0..<4: partial sums of a, b, c, d over their lanes 0..<4; lanes 4..<8: over lanes 4..<8.
    let halves = unsafeBitCast(_mm256_hadd_epi32(_mm256_hadd_epi32(m(a), m(b)), _mm256_hadd_epi32(m(c), m(d))), to: SIMD8<Int32>.self)
    return halves.lowHalf &+ halves.highHalf
}

/// `_mm256_cvtepi32_ps`: eight int32 lanes to Float, rounding to nearest (exact below 2^24).
@inline(__always)
func laneFloats(_ lanes: SIMD8<Int32>) -> SIMD8<Float> {
    _mm256_cvtepi32_ps(unsafeBitCast(lanes, to: __m256i.self))  // __m256 is SIMD8<Float> in Swift
}

extension ActivationView {
    /// Block j's activations as the block kernels read them: its 32 int8 quants.
    @inline(__always)
    func block32(_ j: Int) -> UnsafeRawPointer { quants + j * 32 }
}

/// The x86 kernels read the int8 quants directly.
let activationsNeedSplitQuants = false
#endif
