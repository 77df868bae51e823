import FuzzSupport
import Shared

/// The YAML config as an operator (or a bad deploy) writes it: parse and
/// validate either succeed or name the problem, never crash.
func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let model = try? ConfigLoader.parse(yaml: text) else { return 0 }
    _ = try? ConfigLoader.validate(model, environment: ["K": "v"])
    return 0
}

runFuzzer(fuzzConfig)
