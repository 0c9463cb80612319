// The rule that turns a turn's sends to remote connections into bus messages: one payload to many connections of a
// worker crosses once, and the order of messages to each connection is the order they were sent in.
import ShoalCluster
import ShoalTestSupport
import Testing

@Suite("Send coalescer")
struct SendCoalescerTests {
    private func add(_ c: inout SendCoalescer, slot: Int, _ id: Int64, _ text: String, opcode: UInt8 = 1) -> BusMessage? {
        var text = text
        return text.withUTF8 { c.add(slot: slot, connection: id, opcode: opcode, payload: UnsafeRawBufferPointer($0)) }
    }

    @Test func theChatLoopBecomesOneMessagePerWorker() {
        var c = SendCoalescer(slotCount: 4)
        for id in 1...300 as ClosedRange<Int64> {
            #expect(add(&c, slot: Int(id % 3) + 1, id, "New client connected") == nil)
        }
        let sent = c.takeAll()
        #expect(sent.map(\.slot) == [2, 3, 1])
        for (slot, message) in sent {
            guard case .sendMany(let ids, let opcode, let payload) = message else {
                Issue.record("slot \(slot): \(message)")
                continue
            }
            let expected: [Int64] = (1...300).map { Int64($0) }.filter { Int($0 % 3) + 1 == slot }
            #expect(ids == expected)
            #expect(opcode == 1 && payload == Array("New client connected".utf8))
        }
        #expect(c.isEmpty && c.takeAll().isEmpty)
    }

    @Test func aLoneSendStaysASend() {
        var c = SendCoalescer(slotCount: 2)
        _ = add(&c, slot: 1, 7, "hi")
        #expect(c.take(slot: 1) == .send(connection: 7, opcode: 1, payload: Array("hi".utf8)))
        #expect(c.take(slot: 1) == nil)
    }

    @Test func anotherPayloadOrOpcodeTakesOutWhatWasGatheredFirst() {
        var c = SendCoalescer(slotCount: 2)
        _ = add(&c, slot: 1, 1, "a")
        _ = add(&c, slot: 1, 2, "a")
        #expect(add(&c, slot: 1, 1, "b") == .sendMany(connections: [1, 2], opcode: 1, payload: Array("a".utf8)))
        #expect(add(&c, slot: 1, 1, "b", opcode: 2) == .send(connection: 1, opcode: 1, payload: Array("b".utf8)))
        #expect(c.takeAll().map(\.message) == [.send(connection: 1, opcode: 2, payload: Array("b".utf8))])
    }

    @Test func payloadsThatDifferInAnyOneByteAreNotGathered() {
        for length in 1...40 {
            let base = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            for position in 0..<length {
                var other = base
                other[position] ^= 0x80
                var c = SendCoalescer(slotCount: 2)
                _ = base.withUnsafeBytes { c.add(slot: 1, connection: 1, opcode: 2, payload: $0) }
                let same = base.withUnsafeBytes { c.add(slot: 1, connection: 2, opcode: 2, payload: $0) }
                let before = other.withUnsafeBytes { c.add(slot: 1, connection: 3, opcode: 2, payload: $0) }
                #expect(same == nil)
                #expect(before == .sendMany(connections: [1, 2], opcode: 2, payload: base), "length \(length), byte \(position)")
            }
        }
    }

    @Test func aFullListLeavesAndANewOneStarts() {
        var c = SendCoalescer(slotCount: 2)
        let max = BusEncoder.maxConnectionsPerMessage
        for id in 0..<max { #expect(add(&c, slot: 1, Int64(id), "x") == nil) }
        guard case .sendMany(let ids, _, _)? = add(&c, slot: 1, Int64(max), "x") else {
            Issue.record("a full list did not leave")
            return
        }
        #expect(ids.count == max)
        #expect(c.take(slot: 1) == .send(connection: Int64(max), opcode: 1, payload: Array("x".utf8)))
    }

    /// Random sends of a few payloads to a few slots: replaying what the coalescer emits, in emission order, gives
    /// every connection exactly the messages sent to it, in the order they were sent.
    @Test func randomSendsKeepEveryConnectionsOrderAndLoseNothing() {
        var rng = SplitMix64(seed: 0xC0A1)
        for _ in 0..<500 {
            var c = SendCoalescer(slotCount: 5)
            var sent: [Int64: [String]] = [:]
            var received: [Int64: [String]] = [:]
            func deliver(_ message: BusMessage?) {
                switch message {
                case .send(let id, _, let payload)?: received[id, default: []].append(String(decoding: payload, as: UTF8.self))
                case .sendMany(let ids, _, let payload)?:
                    for id in ids { received[id, default: []].append(String(decoding: payload, as: UTF8.self)) }
                case nil: break
                default: Issue.record("unexpected \(message!)")
                }
            }
            for _ in 0..<Int.random(in: 1...200, using: &rng) {
                let slot = Int.random(in: 0..<5, using: &rng)
                // Connection ids belong to one slot each, as in the registry.
                let id = Int64(slot * 100 + Int.random(in: 0..<4, using: &rng))
                let text = ["a", "b", "cc"].randomElement(using: &rng)!
                sent[id, default: []].append(text)
                if Int.random(in: 0..<10, using: &rng) == 0 {
                    deliver(c.take(slot: slot))
                }
                deliver(add(&c, slot: slot, id, text))
            }
            for (_, message) in c.takeAll() { deliver(message) }
            #expect(received == sent)
        }
    }
}
