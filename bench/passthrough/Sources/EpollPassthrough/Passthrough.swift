import CEpoll
import Glibc

/// One epoll loop per thread. Writes are assumed to complete (a benchmark
/// of small request/response pairs on loopback; a short write closes the
/// pair rather than being queued).
enum Passthrough {
    nonisolated(unsafe) static var port: UInt16 = 0
    nonisolated(unsafe) static var upstreamPort: UInt16 = 0

    static func run(port: UInt16, upstreamPort: UInt16, threads: Int) {
        self.port = port
        self.upstreamPort = upstreamPort
        var ids: [pthread_t] = []
        for _ in 0..<max(1, threads) {
            var id = pthread_t()
            pthread_create(&id, nil, { _ in Passthrough.loop(); return nil }, nil)
            ids.append(id)
        }
        for id in ids { pthread_join(id, nil) }
    }

    static func address(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func listener() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, 4)
        var address = self.address(self.port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1024) == 0 else { fatalError("cannot listen on 127.0.0.1:\(self.port)") }
        return fd
    }

    static func connectUpstream() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = self.address(self.upstreamPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return -1
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    static func watch(_ epoll: Int32, _ fd: Int32) {
        var event = epoll_event()
        event.events = UInt32(EPOLLIN.rawValue)
        event.data.fd = fd
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    static func loop() {
        let listenFD = self.listener()
        let epoll = epoll_create1(0)
        self.watch(epoll, listenFD)
        var peer = [Int32](repeating: -1, count: 65536)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        func closePair(_ fd: Int32) {
            let other = peer[Int(fd)]
            peer[Int(fd)] = -1
            close(fd)
            if other >= 0 {
                peer[Int(other)] = -1
                close(other)
            }
        }
        while true {
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, 256, -1) }
            guard count > 0 else { continue }
            for index in 0..<Int(count) {
                let fd = events[index].data.fd
                if fd == listenFD {
                    while true {
                        let client = cepoll_accept(listenFD)
                        guard client >= 0, client < 65536 else { break }
                        var one: Int32 = 1
                        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
                        let upstream = self.connectUpstream()
                        guard upstream >= 0, upstream < 65536 else {
                            close(client)
                            if upstream >= 0 { close(upstream) }
                            continue
                        }
                        peer[Int(client)] = upstream
                        peer[Int(upstream)] = client
                        self.watch(epoll, client)
                        self.watch(epoll, upstream)
                    }
                    continue
                }
                let got = read(fd, buffer, 65536)
                if got < 0 && errno == EAGAIN { continue }
                guard got > 0, peer[Int(fd)] >= 0, write(peer[Int(fd)], buffer, got) == got else {
                    closePair(fd)
                    continue
                }
            }
        }
    }
}
