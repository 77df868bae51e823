/// Request-target checks done before a worker is asked anything.
enum RequestTarget {
    /// The head's target in origin form: its own bytes when it is one
    /// already (the common case, so no String), else the path of an
    /// absolute-form target. nil when it is neither.
    static func originForm(of head: HTTPHead) -> HeadText? {
        guard case .request(_, let target) = head.startLine else { return nil }
        let isOriginForm = head.withBytes(.head(target)) { $0.first == UInt8(ascii: "/") }
        if isOriginForm { return .head(target) }
        return self.originForm(head.string(target)).map { .text($0) }
    }

    /// Origin-form path and query; absolute-form (`http://host/path`) is
    /// reduced to its path. nil when the target is neither (`*`, authority-form).
    static func originForm(_ uri: String) -> String? {
        if uri.hasPrefix("/") { return uri }
        let lowered = uri.prefix(8).lowercased()
        for scheme in ["http://", "https://"] where lowered.hasPrefix(scheme) {
            let rest = uri.dropFirst(scheme.count)
            guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
            let target = rest[slash...]
            return target.first == "?" ? "/" + target : String(target)
        }
        return nil
    }

    /// True when the path holds a `.` or `..` segment (also percent-encoded).
    /// Such paths are refused: routes match prefixes of the raw path, and an
    /// upstream that resolves `/orders/../admin` would otherwise be reached
    /// through the `/orders` route.
    static func hasDotSegment(_ target: String) -> Bool {
        var target = target
        return target.withUTF8 { self.hasDotSegment(UnsafeRawBufferPointer($0)) }
    }

    /// The same on bytes. Most paths hold neither `.` nor `%` before the
    /// query, which one scan finds; only those that do are split.
    static func hasDotSegment(_ target: UnsafeRawBufferPointer) -> Bool {
        let pathEnd = target.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? target.count
        let path = UnsafeRawBufferPointer(rebasing: target[0..<pathEnd])
        guard path.contains(UInt8(ascii: ".")) || path.contains(UInt8(ascii: "%")) else { return false }
        for segment in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            let lowered = String(decoding: segment, as: UTF8.self).lowercased()
            if lowered == "." || lowered == ".." || lowered == "%2e" || lowered == "%2e%2e" || lowered == ".%2e" || lowered == "%2e." {
                return true
            }
        }
        return false
    }
}
