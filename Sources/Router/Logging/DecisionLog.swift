import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The decision log sink. Event loops append lines to a shared buffer and
/// a background thread writes them out, so a slow disk or a full stdout pipe
/// never stalls request handling. If the backlog passes `maxBacklogBytes`
/// (the sink is stuck) lines are dropped and counted rather than growing
/// memory without bound; the count is reported on the next write.
final class DecisionLog: @unchecked Sendable {
    enum Target: Equatable {
        case off
        case stdout
        case file(String)

        init(_ setting: String) {
            switch setting {
            case "off": self = .off
            case "stdout", "-": self = .stdout
            default: self = .file(setting)
            }
        }
    }

    static let maxBacklogBytes = 16 << 20

    private struct Buffer {
        var pending: [UInt8] = []
        var dropped = 0
        var stopped = false
    }

    private let fd: CInt
    private let ownsFD: Bool
    private let state = NIOLockedValueBox(Buffer())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    let isEnabled: Bool

    init(target: Target) throws {
        switch target {
        case .off:
            self.fd = -1
            self.ownsFD = false
            self.isEnabled = false
        case .stdout:
            self.fd = 1
            self.ownsFD = false
            self.isEnabled = true
        case .file(let path):
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard fd >= 0 else {
                throw DecisionLogError(path: path, message: String(cString: strerror(errno)))
            }
            self.fd = fd
            self.ownsFD = true
            self.isEnabled = true
        }
        if self.isEnabled {
            let thread = Thread { [self] in self.run() }
            thread.name = "decision-log"
            thread.start()
        }
    }

    func append(_ record: DecisionRecord) {
        guard self.isEnabled else { return }
        let line = record.jsonLine()
        let shouldWake = self.state.withLockedValue { buffer -> Bool in
            guard !buffer.stopped else { return false }
            if buffer.pending.count + line.utf8.count > Self.maxBacklogBytes {
                buffer.dropped += 1
                return false
            }
            let wasEmpty = buffer.pending.isEmpty
            buffer.pending.append(contentsOf: line.utf8)
            return wasEmpty
        }
        if shouldWake { self.wake.signal() }
    }

    /// Writes what is buffered and stops the writer thread.
    func close() {
        guard self.isEnabled else { return }
        self.state.withLockedValue { $0.stopped = true }
        self.wake.signal()
        _ = self.finished.wait(timeout: .now() + 5)
        if self.ownsFD { Glibc.close(self.fd) }
    }

    private func run() {
        while true {
            // Wake on the first line of a batch, then give the loops a moment
            // to add more so each write(2) carries many lines.
            _ = self.wake.wait(timeout: .now() + .milliseconds(200))
            usleep(2_000)
            let (bytes, dropped, stopped) = self.state.withLockedValue { buffer -> ([UInt8], Int, Bool) in
                let out = buffer.pending
                buffer.pending.removeAll(keepingCapacity: true)
                let dropped = buffer.dropped
                buffer.dropped = 0
                return (out, dropped, buffer.stopped)
            }
            if dropped > 0 {
                let note = "{\"decision_log\":\"dropped\",\"lines\":\(dropped)}\n"
                self.writeAll(Array(note.utf8))
            }
            if !bytes.isEmpty { self.writeAll(bytes) }
            if stopped {
                self.finished.signal()
                return
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(self.fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return  // EPIPE or a full disk: nothing sensible left to do with the line
                }
                offset += n
            }
        }
    }
}

struct DecisionLogError: Error, CustomStringConvertible {
    let path: String
    let message: String
    var description: String { "server.decision_log: cannot open \(self.path): \(self.message)" }
}
