// Per-step work that nothing downstream of decoding waits for (drawing, encoding and writing a step's
// heatmap) runs here, in order, on one background thread, while the run goes on generating; the run
// takes the results back on its own thread (`join`) before it reports them.
import VLMTensor
import Foundation

/// `@unchecked Sendable`: `done` is guarded by `lock`; the queue runs one job at a time.
final class StepWorker: @unchecked Sendable {
    struct Finished {
        /// The caller's tag for the job (the step's index in the run's steps).
        var tag: Int
        var result: Result<StepAttribution, any Error>
        var seconds: Double
    }

    private let queue = DispatchQueue(label: "vlmd.reasoning.step-work", qos: .userInitiated)
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var done: [Finished] = []

    func submit(tag: Int, _ job: @escaping @Sendable () throws -> StepAttribution) {
        queue.async(group: group) { [self] in
            let start = Date()
            let result = Result { try job() }
            let finished = Finished(tag: tag, result: result, seconds: Date().timeIntervalSince(start))
            lock.withLock { done.append(finished) }
        }
    }

    /// Waits for every submitted job and returns them in submission order.
    func join() -> [Finished] {
        group.wait()
        return lock.withLock {
            defer { done = [] }
            return done
        }
    }
}

/// A prepared image's `pixelBox(of:)` handed to the worker. Safe to call there: the prepared image's
/// grid geometry is fixed once `prepare` returns (looks append image tokens, never change the grid).
struct PixelBoxes: @unchecked Sendable {
    let prepared: any PreparedImage
    func callAsFunction(_ box: GridBox) -> PixelBox { prepared.pixelBox(of: box) }
}
