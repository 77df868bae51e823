import CoreMetrics
import Logging
import NIOCore
import Shared

/// Whoever waits for a decision: the HTTP handler of one client connection.
protocol DecisionWaiter: AnyObject {
    func decisionArrived(_ response: DecisionResponse, callID: UInt64)
    func decisionFailed(_ error: GatewayError, callID: UInt64)
}

/// One event loop's connection to one worker. Many decisions are in flight
/// at once, matched by frame id. Frames requested during one loop tick are
/// written with a single flush at the end of the tick, so a burst of
/// requests across many client connections costs one write(2).
///
/// Confined to its event loop; the supervisor reaches it via `execute`.
final class WorkerLink {
    let slot: Int
    private let eventLoop: any EventLoop
    private var channel: (any Channel)?
    private(set) var generation = 0
    private(set) var isReady = false
    private var nextCallID: UInt64 = 0
    private var pending = CallTable<any DecisionWaiter>()
    private var outbound: ByteBuffer
    private var flushScheduled = false
    /// `portcullis_worker_in_flight`, shared by every loop's link to this worker.
    private let inFlightMeter: CoreMetrics.Meter?

    init(slot: Int, eventLoop: any EventLoop, inFlight: CoreMetrics.Meter? = nil) {
        self.slot = slot
        self.eventLoop = eventLoop
        self.outbound = ByteBufferAllocator().buffer(capacity: 0)
        self.inFlightMeter = inFlight
    }

    var inFlight: Int { self.pending.count }

    /// Sends a decision request; nil when the worker is not up, which the
    /// caller answers with 503 at once rather than queueing behind a restart.
    func decide(_ request: DecisionRequestBytes, waiter: any DecisionWaiter) -> UInt64? {
        guard self.isReady, self.channel != nil else { return nil }
        self.nextCallID &+= 1
        if self.nextCallID == 0 { self.nextCallID = 1 }  // 0 means none (CallTable, Exchange.callID)
        let id = self.nextCallID
        self.pending.insert(id, waiter)
        self.inFlightMeter?.increment()
        if self.outbound.capacity == 0 { self.outbound = ByteBufferAllocator().buffer(capacity: 4096) }
        FrameCodec.encodeDecide(id: id, request, into: &self.outbound)
        self.scheduleFlush()
        return id
    }

    /// The waiter went away (its client disconnected); a late answer is dropped.
    func cancel(_ callID: UInt64) {
        if self.pending.remove(callID) != nil { self.inFlightMeter?.decrement() }
    }

    func sendControl(_ frame: Frame) {
        guard let channel = self.channel else { return }
        var buffer = channel.allocator.buffer(capacity: 256)
        FrameCodec.encode(frame, into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
    }

    private func scheduleFlush() {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        self.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.flush()
        }
    }

    private func flush() {
        guard self.outbound.readableBytes > 0, let channel = self.channel else { return }
        let buffer = self.outbound
        self.outbound = ByteBufferAllocator().buffer(capacity: 0)
        channel.writeAndFlush(buffer, promise: nil)
    }

    // MARK: from the link's channel

    func decisionReceived(callID: UInt64, _ response: DecisionResponse) {
        guard let waiter = self.pending.remove(callID) else { return }
        self.inFlightMeter?.decrement()
        waiter.decisionArrived(response, callID: callID)
    }

    // MARK: from the supervisor

    func attach(_ channel: any Channel, generation: Int) {
        self.failAll()
        self.channel = channel
        self.generation = generation
        self.isReady = false
    }

    func markReady(generation: Int) {
        guard generation == self.generation, self.channel != nil else { return }
        self.isReady = true
    }

    /// The worker of `generation` is gone: everything in flight to it is
    /// answered 503 now, never left hanging.
    func detach(generation: Int) {
        guard generation == self.generation else { return }
        self.isReady = false
        let channel = self.channel
        self.channel = nil
        self.outbound = ByteBufferAllocator().buffer(capacity: 0)
        self.failAll()
        channel?.close(promise: nil)
    }

    private func failAll() {
        guard !self.pending.isEmpty else { return }
        let waiters = self.pending.removeAll()
        self.inFlightMeter?.decrement(by: Double(waiters.count))
        let error = GatewayError.workerUnavailable()
        for (id, waiter) in waiters { waiter.decisionFailed(error, callID: id) }
    }
}
