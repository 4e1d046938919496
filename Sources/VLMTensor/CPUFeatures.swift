// The x86 vector extensions of the CPU we run on (cpuid), for reports and kernel choices.
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel.cpuid
#endif

public enum CPUFeatures {
    /// The extensions that matter to the quantised kernels, by their /proc/cpuinfo names.
    public static let available: [String] = {
        #if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        guard __get_cpuid_count(1, 0, &a, &b, &c, &d) != 0 else { return [] }
        var names: [String] = []
        if c & (1 << 12) != 0 { names.append("fma") }
        if c & (1 << 29) != 0 { names.append("f16c") }
        guard __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 else { return names }
        let leaf7: [(UInt32, String)] = [(b >> 5, "avx2"), (b >> 16, "avx512f"), (b >> 30, "avx512bw"), (b >> 31, "avx512vl"),
                                          (c >> 11, "avx512_vnni")]
        names += leaf7.filter { $0.0 & 1 != 0 }.map(\.1)
        return names
        #else
        return []
        #endif
    }()
}
