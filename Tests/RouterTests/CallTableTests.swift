import Testing

@testable import Router

@Suite("Worker link call table")
struct CallTableTests {
    @Test("calls come back by id in any order, once each")
    func anyOrder() {
        var table = CallTable<String>(capacity: 8)
        for id in UInt64(1)...6 { table.insert(id, "call \(id)") }
        #expect(table.count == 6)
        for id in [UInt64(4), 1, 6, 2, 5, 3] {
            #expect(table.remove(id) == "call \(id)")
            #expect(table.remove(id) == nil, "a second answer to \(id) finds nothing")
        }
        #expect(table.isEmpty)
        #expect(table.remove(99) == nil && table.remove(0) == nil)
    }

    @Test("a call whose slot is still taken waits beside the table")
    func overflow() {
        var table = CallTable<UInt64>(capacity: 4)
        // 1 stays in flight while 2...20 come and go: 5, 9, 13 and 17 share its slot.
        table.insert(1, 1)
        for id in UInt64(2)...20 {
            table.insert(id, id)
            if id % 3 == 0 { #expect(table.remove(id) == id) }
        }
        #expect(table.count == 1 + 19 - 6)
        #expect(table.remove(17) == 17)
        #expect(table.remove(5) == 5)
        #expect(table.remove(1) == 1)
        let rest = table.removeAll()
        #expect(rest.map(\.id) == [2, 4, 7, 8, 10, 11, 13, 14, 16, 19, 20])
        #expect(rest.allSatisfy { $0.id == $0.value })
        #expect(table.isEmpty && table.remove(2) == nil)
    }

    @Test("a long run of sequential calls, a few dozen in flight at a time, loses none")
    func sequential() {
        var table = CallTable<UInt64>(capacity: 64)
        var inFlight: [UInt64] = []
        var answered = 0
        for id in UInt64(1)...100_000 {
            table.insert(id, id &* 7)
            inFlight.append(id)
            if inFlight.count > 40 {
                // Answered roughly in order: the oldest or the one after it.
                let pick = inFlight.count > 1 && id % 2 == 0 ? 1 : 0
                let done = inFlight.remove(at: pick)
                #expect(table.remove(done) == done &* 7)
                answered += 1
            }
        }
        #expect(table.count == inFlight.count)
        #expect(table.removeAll().map(\.id) == inFlight.sorted())
        #expect(answered == 100_000 - 40)
    }
}
