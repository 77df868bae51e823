import NIOCore
import Shared

/// One header field: byte offsets of its name and value inside the head.
struct HTTPField: Equatable {
    let nameStart: Int32
    let nameEnd: Int32
    let valueStart: Int32
    let valueEnd: Int32
    /// What the parser recognised the name as (`FieldName.of`).
    let name: FieldName
}

/// A parsed request or response head. The fields point into `bytes`, the
/// head exactly as received, so forwarding a header copies its bytes once
/// and nothing is turned into a `String` unless the gateway reads it.
struct HTTPHead {
    enum StartLine: Equatable {
        /// Offsets of the method and the request target.
        case request(method: Range<Int>, target: Range<Int>)
        /// Status code and the offsets of the reason phrase.
        case response(status: Int, reason: Range<Int>)
    }

    let bytes: ByteBuffer
    let startLine: StartLine
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    let minorVersion: Int
    let fields: [HTTPField]

    func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    func name(_ field: HTTPField) -> String { self.string(Int(field.nameStart)..<Int(field.nameEnd)) }
    func value(_ field: HTTPField) -> String { self.string(Int(field.valueStart)..<Int(field.valueEnd)) }

    var method: String {
        guard case .request(let method, _) = self.startLine else { return "" }
        return self.string(method)
    }

    var target: String {
        guard case .request(_, let target) = self.startLine else { return "" }
        return self.string(target)
    }

    var status: Int {
        guard case .response(let status, _) = self.startLine else { return 0 }
        return status
    }

    /// Case-insensitive comparison of a whole field value with a lower-case literal.
    @inline(__always)
    func valueIs(_ field: HTTPField, _ lower: StaticString) -> Bool {
        self.bytes(Int(field.valueStart)..<Int(field.valueEnd), equalFolded: lower)
    }

    /// ASCII case-insensitive comparison of bytes of the head with a literal.
    @inline(__always)
    private func bytes(_ range: Range<Int>, equalFolded lower: StaticString) -> Bool {
        guard range.count == lower.utf8CodeUnitCount else { return false }
        return self.bytes.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress, range.lowerBound >= 0, range.upperBound <= raw.count else { return false }
            return FieldName.equalFolded(base + range.lowerBound, lower)
        }
    }

    /// Case-insensitive comparison of a field name with any lower-case name.
    func nameIs(_ field: HTTPField, lowercased name: [UInt8]) -> Bool {
        let length = Int(field.nameEnd - field.nameStart)
        guard length == name.count else { return false }
        return self.bytes.withUnsafeReadableBytes { raw in
            let base = Int(field.nameStart)
            for index in 0..<length where raw[base + index] | 0x20 != name[index] | 0x20 {
                return false
            }
            return true
        }
    }

    /// Whether the field's value, split on commas, holds `token` (case-insensitive).
    func valueHasToken(_ field: HTTPField, _ lower: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { raw in
            let expected = UnsafeRawBufferPointer(start: lower.utf8Start, count: lower.utf8CodeUnitCount)
            var index = Int(field.valueStart)
            let end = Int(field.valueEnd)
            while index < end {
                while index < end && (raw[index] == 0x20 || raw[index] == 0x09 || raw[index] == UInt8(ascii: ",")) { index += 1 }
                let start = index
                while index < end && raw[index] != UInt8(ascii: ",") { index += 1 }
                var stop = index
                while stop > start && (raw[stop - 1] == 0x20 || raw[stop - 1] == 0x09) { stop -= 1 }
                if stop - start == expected.count {
                    var equal = true
                    for offset in 0..<expected.count where raw[start + offset] | 0x20 != expected[offset] | 0x20 {
                        equal = false
                        break
                    }
                    if equal { return true }
                }
            }
            return false
        }
    }

    /// Copies bytes of the head (offsets as in `startLine`) straight from
    /// its storage: no slices, so no reference counting (this runs for
    /// every header of every proxied response).
    func write(_ range: Range<Int>, into out: inout ByteWriter) {
        self.bytes.withUnsafeReadableBytes { raw in
            guard range.lowerBound >= 0, range.upperBound <= raw.count else { return }
            out.write(UnsafeRawBufferPointer(rebasing: raw[range]))
        }
    }

    /// The most a head writer can emit for this head's own bytes: kept
    /// field lines are copied as received, so the head's size, with a
    /// byte per field to spare.
    var rewrittenBound: Int { self.bytes.readableBytes + self.fields.count }
}
