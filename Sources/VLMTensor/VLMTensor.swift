import COpenBLAS

/// Compute threads used by OpenBLAS and the tensor core's own parallel loops.
public enum TensorThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}
