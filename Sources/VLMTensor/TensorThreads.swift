import COpenBLAS

/// The number of threads OpenBLAS uses for every matrix product in the process.
///
/// OpenBLAS keeps one global thread pool, so this is a process-wide setting: set it once at start-up
/// (the daemon's `--threads`, the benchmark's `--threads`) rather than per call.
public enum TensorThreads {
    public static func set(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    public static var current: Int { Int(openblas_get_num_threads()) }
}
