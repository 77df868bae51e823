import NIOCore
import NIOPosix

/// Keep-alive connections to upstreams, per event loop, so a request and
/// its upstream exchange never change threads. Idle connections are reused
/// last-in-first-out (the warmest first); one the upstream closed while
/// idle is dropped when noticed.
final class UpstreamPool {
    struct Key: Hashable {
        let host: String
        let port: Int
    }

    static let maxIdlePerKey = 512

    /// A class, so that taking and returning a connection mutates the list
    /// in place instead of going through the dictionary's copy-on-write
    /// subscript (three allocations per request, measured).
    private final class IdleList {
        var connections: [UpstreamConnection] = []
    }

    private let eventLoop: any EventLoop
    private var idle: [Key: IdleList] = [:]
    /// The list used last: nearly every request goes where the one before
    /// went, and comparing keys is cheaper than hashing the host name.
    private var recent: (key: Key, list: IdleList)?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private func list(_ key: Key) -> IdleList? {
        if let recent = self.recent, recent.key == key { return recent.list }
        guard let list = self.idle[key] else { return nil }
        self.recent = (key, list)
        return list
    }

    func takeIdle(_ key: Key) -> UpstreamConnection? {
        guard let list = self.list(key) else { return nil }
        while let connection = list.connections.popLast() {
            connection.isIdle = false
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    func connect(_ key: Key, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        ClientBootstrap(group: self.eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnectionHandler())
                }
            }
            .connect(host: key.host, port: key.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self)
                let connection = UpstreamConnection(key: key, channel: channel, handler: handler)
                handler.pool = self
                return connection
            }
            .nonisolated()
    }

    /// Back to the pool if it can carry another request; closed otherwise.
    func release(_ connection: UpstreamConnection) {
        connection.handler.detach()
        let list: IdleList
        if let existing = self.list(connection.key) {
            list = existing
        } else {
            list = IdleList()
            self.idle[connection.key] = list
        }
        guard connection.channel.isActive, list.connections.count < Self.maxIdlePerKey else {
            connection.channel.close(promise: nil)
            return
        }
        connection.isIdle = true
        list.connections.append(connection)
    }

    /// The upstream closed a pooled connection; a connection in use reports
    /// its close to its request instead.
    func idleConnectionClosed(_ handler: UpstreamConnectionHandler) {
        for list in self.idle.values {
            if let index = list.connections.firstIndex(where: { $0.handler === handler }) {
                list.connections[index].isIdle = false
                list.connections.remove(at: index)
                return
            }
        }
    }

    var idleCount: Int { self.idle.values.reduce(0) { $0 + $1.connections.count } }
}

final class UpstreamConnection {
    let key: UpstreamPool.Key
    let channel: any Channel
    let handler: UpstreamConnectionHandler
    var isIdle = false

    init(key: UpstreamPool.Key, channel: any Channel, handler: UpstreamConnectionHandler) {
        self.key = key
        self.channel = channel
        self.handler = handler
    }
}

/// The request that currently owns an upstream connection.
protocol UpstreamDelegate: AnyObject {
    func upstreamResponseHead(_ head: HTTPHead, framing: BodyFraming)
    func upstreamResponseBody(_ body: ByteBufferSlice)
    /// `reusable`: the response was framed so the connection can carry another.
    func upstreamResponseEnd(reusable: Bool)
    func upstreamReadComplete()
    func upstreamFailed(_ failure: UpstreamFailure)
    func upstreamWritabilityChanged(isWritable: Bool)
}

enum UpstreamFailure: Error, Equatable {
    case closed
    case malformed(String)
    case other(String)
}
