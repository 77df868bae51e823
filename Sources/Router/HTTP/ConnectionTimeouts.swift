import NIOCore

/// Header-read and idle timeouts of one client connection (SPEC §9).
///
/// From accept, and from the first byte after a completed request, the
/// client has `header_timeout_ms` to finish the request head (slowloris);
/// between requests an idle keep-alive connection may wait
/// `idle_timeout_ms`. While a request is being served neither runs (the
/// upstream timeout covers that time).
final class ConnectionTimeouts {
    enum Phase: Equatable {
        case readingHead
        case active
        case idle
        case stopped
    }

    private let eventLoop: any EventLoop
    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    private(set) var phase = Phase.readingHead

    /// Set by the connection guard: what to do when a timer fires.
    var onHeaderTimeout: (() -> Void)?
    var onIdleTimeout: (() -> Void)?

    init(eventLoop: any EventLoop, headerTimeoutMs: Int, idleTimeoutMs: Int) {
        self.eventLoop = eventLoop
        self.headerTimeout = .milliseconds(Int64(headerTimeoutMs))
        self.idleTimeout = .milliseconds(Int64(idleTimeoutMs))
    }

    func start() {
        self.phase = .readingHead
        self.arm(self.headerTimeout, idle: false)
    }

    func bytesReceived() {
        guard self.phase == .idle else { return }
        self.phase = .readingHead
        self.arm(self.headerTimeout, idle: false)
    }

    func headReceived() {
        guard self.phase != .stopped else { return }
        self.phase = .active
        self.timer?.cancel()
        self.timer = nil
    }

    func requestCompleted() {
        guard self.phase == .active else { return }
        self.phase = .idle
        self.arm(self.idleTimeout, idle: true)
    }

    func stop() {
        self.phase = .stopped
        self.timer?.cancel()
        self.timer = nil
    }

    private func arm(_ amount: TimeAmount, idle: Bool) {
        self.timer?.cancel()
        self.timer = self.eventLoop.assumeIsolated().scheduleTask(in: amount) {
            self.timer = nil
            guard self.phase == (idle ? .idle : .readingHead) else { return }
            self.phase = .stopped
            if idle { self.onIdleTimeout?() } else { self.onHeaderTimeout?() }
        }
    }
}
