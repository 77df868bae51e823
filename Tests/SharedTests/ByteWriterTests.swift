import NIOCore
import Testing

@testable import Shared

@Suite("Byte writer")
struct ByteWriterTests {
    private func build(reserving room: Int, _ body: (inout ByteWriter) -> Void) -> String {
        var buffer = ByteBuffer(string: "pre:")
        buffer.writeBytes(reserving: room, body)
        return String(buffer: buffer)
    }

    @Test func writesEveryKindOfPieceInOrder() {
        let text = self.build(reserving: 128) { out in
            out.write("static ")
            out.write(String(repeating: "ü", count: 3))
            out.write(byte: UInt8(ascii: " "))
            out.write([UInt8(ascii: "a"), UInt8(ascii: "b")])
            out.write(byte: UInt8(ascii: " "))
            out.write(decimal: 0)
            out.write(byte: UInt8(ascii: ","))
            out.write(decimal: 42)
            out.write(byte: UInt8(ascii: ","))
            out.write(decimal: Int.max)
            out.write(byte: UInt8(ascii: ","))
            out.write(decimal: -5)
        }
        #expect(text == "pre:static üüü ab 0,42,\(Int.max),0")
    }

    @Test func aTooSmallReservationIsRetriedNotTruncated() {
        let long = String(repeating: "x", count: 1000)
        var runs = 0
        let text = self.build(reserving: 16) { out in
            runs += 1
            out.write("head:")
            out.write(long)
            out.write(decimal: 7)
        }
        #expect(text == "pre:head:" + long + "7")
        #expect(runs > 1)
    }

    @Test func overflowDropsThePieceAndSaysSo() {
        var buffer = ByteBuffer()
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 8) { raw in
            var writer = ByteWriter(base: raw.baseAddress!, capacity: 8)
            writer.write("12345")
            #expect(!writer.overflowed)
            writer.write("6789")
            #expect(writer.overflowed)
            #expect(writer.count == 5)
            return writer.count
        }
        #expect(String(buffer: buffer) == "12345")
    }
}
