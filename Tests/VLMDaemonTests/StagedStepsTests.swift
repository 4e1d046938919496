import Dispatch
import Foundation
import Synchronization
import Testing
import VLMImage
import VLMTensor
import VLMWire
@testable import VLMDaemon

/// `runStagedSteps`: step i + 1 is staged while step i is processed, and the client still sees what a
/// sequential run gives (order, errors, cancellation).
@Suite struct StagedStepsTests {
    struct Failure: Error, Equatable { let name: String }

    /// Each step's processing waits (up to 20 s) for the next step's staging to start: only a
    /// pipeline that stages ahead lets every wait succeed.
    @Test func theNextStepIsStagedWhileThisOneIsProcessed() async throws {
        let count = 4
        let started = (0..<count).map { _ in DispatchSemaphore(value: 0) }
        let overlapped = Mutex<[Bool]>([])
        var delivered: [Int] = []
        try await runStagedSteps(count: count, compute: ComputeContext(threads: 2), stage: { step, _ in
            started[step].signal()
            return step
        }, process: { step, _ in
            if step + 1 < count {
                let seen = started[step + 1].wait(timeout: .now() + 20) == .success
                overlapped.withLock { $0.append(seen) }
            }
            return 10 * step
        }, deliver: { step, output in
            #expect(output == 10 * step)
            delivered.append(step)
        })
        #expect(delivered == [0, 1, 2, 3])
        #expect(overlapped.withLock { $0 } == [true, true, true])
    }

    /// Four steps where staging step 2 fails, and processing `failingProcess` too when given: the
    /// steps delivered and the error the call threw.
    func runFailing(processFailingAt failingProcess: Int?) async -> (delivered: [Int], error: Failure?) {
        var delivered: [Int] = []
        do {
            try await runStagedSteps(count: 4, compute: ComputeContext(), stage: { step, _ in
                if step == 2 { throw Failure(name: "stage 2") }
                return step
            }, process: { step, _ in
                if step == failingProcess { throw Failure(name: "process \(step)") }
                return step
            }, deliver: { step, _ in delivered.append(step) })
        } catch {
            return (delivered, error as? Failure)
        }
        return (delivered, nil)
    }

    @Test func aStagingErrorSurfacesOnlyAfterTheStepBeforeIsDelivered() async {
        let run = await runFailing(processFailingAt: nil)
        #expect(run.delivered == [0, 1] && run.error == Failure(name: "stage 2"))
    }

    @Test func aProcessingErrorWinsOverTheNextStepsStagingError() async {
        let run = await runFailing(processFailingAt: 1)
        #expect(run.delivered == [0] && run.error == Failure(name: "process 1"))
    }

    /// A cancellation during processing stops the staging running beside it too (it polls the same
    /// token), and nothing of either is still running when the call returns.
    @Test func cancellationStopsStagingAndProcessingAndJoinsBoth() async {
        let token = CancellationToken()
        let images = 2_000
        let staged = Mutex<[Int: Int]>([:])  // step -> images staged
        let running = Atomic<Int>(0)
        await #expect(throws: ComputeCancelled.self) {
            try await runStagedSteps(count: 3, compute: ComputeContext(threads: 2, cancellation: token), stage: { step, compute in
                running.add(1, ordering: .relaxed)
                defer { running.subtract(1, ordering: .relaxed) }
                for image in 0..<images {
                    staged.withLock { $0[step] = image + 1 }
                    try compute.checkCancellation()
                    usleep(1_000)
                }
                return step
            }, process: { step, compute in
                // Let the next step's staging get going (for up to 20 s: a pipeline that does not stage
                // ahead fails below instead of hanging), then cancel as a $/cancelRequest would.
                let deadline = DispatchTime.now() + 20
                while staged.withLock({ $0[step + 1] ?? 0 }) < 5, DispatchTime.now() < deadline { usleep(1_000) }
                token.cancel()
                try compute.checkCancellation()
                return step
            }, deliver: { _, _ in })
        }
        #expect(running.load(ordering: .relaxed) == 0)
        let stagedOfStep1 = staged.withLock { $0[1] ?? 0 }
        #expect(stagedOfStep1 >= 5 && stagedOfStep1 < images)
        #expect(staged.withLock { $0[2] } == nil)
    }

    /// An image staged while the step before is still being encoded is a miss at staging time; if
    /// that step encodes the same picture, it is a cache hit when its own step comes, as it is when
    /// the steps run one after the other, and the tower does not encode it twice.
    @Test func anImageStagedBeforeTheStepThatEncodesItIsStillACacheHit() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let clip = try LoadedCLIP(id: "vit", directory: root.appendingPathComponent("Tests/VLMCLIPTests/Fixtures/vit-tiny"))
        let runtime = CLIPRuntime(imageCacheBytes: 1 << 20, textCacheBytes: 1 << 20)
        let path = root.deletingLastPathComponent().appendingPathComponent("shared/data/images/chelsea.png").path
        let image = try PNGDecoder().decode(contentsOf: path)
        let first = runtime.stage(image, clip: clip)
        let second = runtime.stage(image, clip: clip)  // staged ahead, before `first` is encoded
        #expect(first.hit == nil && second.hit == nil && !second.prepared.pixels.isEmpty)

        let encodedFirst = try runtime.embed(staged: [first], with: clip, compute: ComputeContext())
        let encodedSecond = try runtime.embed(staged: [second], with: clip, compute: ComputeContext())
        #expect(encodedFirst.map(\.cached) == [false] && encodedSecond.map(\.cached) == [true])
        #expect(encodedSecond[0].embedding == encodedFirst[0].embedding)
        #expect(clip.model.imageTowerPasses == 1)

        // Staged once it is cached: a hit straight away, and its pixels are not prepared.
        let third = runtime.stage(image, clip: clip)
        #expect(third.hit?.embedding == encodedFirst[0].embedding && third.prepared.pixels.isEmpty)
    }
}
