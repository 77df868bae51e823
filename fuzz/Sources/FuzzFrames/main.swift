import NIOCore
import FuzzSupport
import Shared

/// Frames as a worker or router reads them, through one stream so that
/// decision templates defined by one frame are used by later ones: any
/// bytes either decode to frames or fail with a FrameError, never crash;
/// and whatever decodes re-encodes (whole) to a frame that decodes to the
/// same value.
func fuzzFrames(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    var buffer = ByteBufferAllocator().buffer(capacity: size)
    buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: size))
    var stream = FrameStream(maxFrameBytes: 1 << 20)
    stream.append(buffer)
    let parser = FrameParser(maxFrameBytes: 1 << 20)
    while true {
        let frame: Frame?
        do {
            frame = try stream.next()
        } catch {
            return 0
        }
        guard let frame else { return 0 }
        var again = ByteBufferAllocator().buffer(capacity: 256)
        FrameCodec.encode(frame, into: &again)
        guard let decoded = try? parser.next(from: &again), decoded == frame else {
            fatalError("frame does not survive a round trip: \(frame)")
        }
    }
}

runFuzzer(fuzzFrames)
