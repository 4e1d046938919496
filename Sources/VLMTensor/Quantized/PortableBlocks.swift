// The integer core of the quantised dot products in portable Swift SIMD, for CPUs without the x86
// kernels of X86Blocks.swift (same results: the integer sums are exact either way).
#if !(arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS)
extension BlockDot {
    /// A block of 32 small signed weights, as its even-indexed and odd-indexed elements
    /// (lane m of `even` is element 2m, of `odd` element 2m+1).
    struct Unpacked32 {
        let even: SIMD16<Int16>, odd: SIMD16<Int16>

        /// 32 int8 (q8_0).
        @inline(__always)
        init(int8 p: UnsafeRawPointer) {
            let v = p.loadUnaligned(as: SIMD16<Int16>.self)
            even = (v &<< 8) &>> 8
            odd = v &>> 8
        }

        /// 16 bytes of nibbles: element i is the low nibble of byte i, element 16+i its high nibble.
        @inline(__always)
        init(nibbles p: UnsafeRawPointer, offset: Int16) {
            let packed = p.loadUnaligned(as: SIMD8<Int16>.self)  // lane m: byte 2m low, byte 2m+1 high
            let both = SIMD16(lowHalf: packed, highHalf: packed &>> 4)
            even = (both & 0x000F) &- offset
            odd = ((both &>> 8) & 0x000F) &- offset
        }

        /// 16 bytes of nibbles plus a fifth bit per element (bit i of `highBits` for element i).
        @inline(__always)
        init(nibbles p: UnsafeRawPointer, highBits: UInt32, offset: Int16) {
            let low = Unpacked32(nibbles: p, offset: 0)
            let bits = SIMD16<UInt32>(repeating: highBits)
            let evenShifts = SIMD16<UInt32>(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
            let evenHigh = SIMD16<Int16>(truncatingIfNeeded: (bits &>> evenShifts) & 1) &<< 4
            let oddHigh = SIMD16<Int16>(truncatingIfNeeded: (bits &>> (evenShifts &+ 1)) & 1) &<< 4
            even = (low.even | evenHigh) &- offset
            odd = (low.odd | oddHigh) &- offset
        }

        /// Eight int32 lanes; lane k = sum of w[j] * a[j] for j in 4k..<4k+4, for a block of activations
        /// in `splitQuants` layout (16 even-indexed then 16 odd-indexed Int16).
        @inline(__always)
        func laneSums(_ a: UnsafeRawPointer) -> SIMD8<Int32> {
            let aEven = a.loadUnaligned(as: SIMD16<Int16>.self), aOdd = a.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self)
            // Two products fit Int16 (|q| <= 127); the pairs are widened before adding four.
            let pairs = even &* aEven &+ odd &* aOdd
            let words = unsafeBitCast(pairs, to: SIMD8<Int32>.self)
            return ((words &<< 16) &>> 16) &+ (words &>> 16)
        }
    }
}

/// 32 bytes of packed K-quant weights being unpacked.
struct Bytes32 {
    let v: SIMD32<UInt8>
    @inline(__always) init(_ v: SIMD32<UInt8>) { self.v = v }
    @inline(__always) init(_ p: UnsafeRawPointer) { v = p.loadUnaligned(as: SIMD32<UInt8>.self) }
    @inline(__always) init(repeating b: UInt8) { v = SIMD32(repeating: b) }
    @inline(__always) func masked(_ m: UInt8) -> Bytes32 { Bytes32(v & SIMD32(repeating: m)) }
    @inline(__always) func shiftedRight(_ n: Int32) -> Bytes32 { Bytes32(v &>> SIMD32(repeating: UInt8(n))) }
    @inline(__always) func shiftedLeft(_ n: Int32) -> Bytes32 { Bytes32(v &<< SIMD32(repeating: UInt8(n))) }
    @inline(__always) static func | (a: Bytes32, b: Bytes32) -> Bytes32 { Bytes32(a.v | b.v) }
    @inline(__always) static func &- (a: Bytes32, b: Bytes32) -> Bytes32 { Bytes32(a.v &- b.v) }
}

/// `_mm256_maddubs_epi16` + `_mm256_madd_epi16(ones, …)` for 32 small weights and 32 int8 activations:
/// lane k = sum of w[j] * a[j] for j in 4k..<4k+4. Weights are 0...63 so each pair fits in Int16.
@inline(__always)
func quadSums(_ w: Bytes32, _ a: UnsafeRawPointer) -> SIMD8<Int32> {
    let products = SIMD32<Int16>(truncatingIfNeeded: w.v) &* SIMD32<Int16>(truncatingIfNeeded: a.loadUnaligned(as: SIMD32<Int8>.self))
    let words = unsafeBitCast(products, to: SIMD16<Int32>.self)
    let pairs = ((words &<< 16) &>> 16) &+ (words &>> 16)
    let longs = unsafeBitCast(pairs, to: SIMD8<Int64>.self)
    return SIMD8<Int32>(truncatingIfNeeded: ((longs &<< 32) &>> 32) &+ (longs &>> 32))
}

/// Eight int32 lanes to Float, rounding to nearest (exact below 2^24), as `_mm256_cvtepi32_ps`.
@inline(__always)
func laneFloats(_ lanes: SIMD8<Int32>) -> SIMD8<Float> { SIMD8<Float>(lanes) }

/// `quadSums(w, a)` with lanes 0..<4 times `low` and lanes 4..<8 times `high`.
@inline(__always)
func scaledQuadSums(_ w: Bytes32, _ a: UnsafeRawPointer, low: Int32, high: Int32) -> SIMD8<Int32> {
    halvesScale(low, high) &* quadSums(w, a)
}

/// The lane sums of four int32 vectors, wrapping.
@inline(__always)
func wrappedSums(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>, _ c: SIMD8<Int32>, _ d: SIMD8<Int32>) -> SIMD4<Int32> {
    SIMD4(a.wrappedSum(), b.wrappedSum(), c.wrappedSum(), d.wrappedSum())
}

extension ActivationView {
    /// Block j's activations as the block kernels read them: `splitQuants` (even then odd elements).
    @inline(__always)
    func block32(_ j: Int) -> UnsafeRawPointer { splitQuants + j * 64 }
}

/// The portable kernels multiply against the even/odd split Int16 layout.
let activationsNeedSplitQuants = true
#endif
