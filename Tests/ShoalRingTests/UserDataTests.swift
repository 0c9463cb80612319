// The 64-bit operation tag: bit layout, round trips at the field limits, generation wrap.
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct UserDataTests {
    @Test func encodesOperationGenerationAndIndexInTheDocumentedBits() {
        let tag = UserData(.send, generation: 0xAB_CDEF, index: 0x1234_5678)
        #expect(tag.raw == 0x03AB_CDEF_1234_5678)
    }

    @Test func decodesWhatItEncodesForEveryOperationAtTheFieldLimits() {
        let operations: [UserData.Operation] = [.accept, .receive, .send, .wakeup, .cancel]
        let generations: [UInt32] = [0, 1, 0x7F_FFFF, 0xFF_FFFF]
        let indices: [UInt32] = [0, 1, 0xFFFF, 0x8000_0000, .max]
        for operation in operations {
            for generation in generations {
                for index in indices {
                    let tag = UserData(operation, generation: generation, index: index)
                    #expect(UserData(raw: tag.raw) == tag)
                    #expect(tag.operation == operation && tag.generation == generation && tag.index == index)
                }
            }
        }
    }

    @Test func keepsOnlyTheLow24BitsOfAGeneration() {
        let tag = UserData(.receive, generation: 0x0123_4567, index: 9)
        #expect(tag.generation == 0x23_4567)
        #expect(UserData(raw: tag.raw)?.generation == 0x23_4567)
        #expect(UserData(raw: tag.raw)?.operation == .receive)
    }

    @Test func wrapsTheGenerationTheWayTheLoopAdvancesIt() {
        let last = UserData.generationMask
        let next = (last &+ 1) & UserData.generationMask
        #expect(next == 0)
        // A handle from before the wrap and one after it tag differently.
        #expect(UserData(.receive, generation: last, index: 3).raw != UserData(.receive, generation: next, index: 3).raw)
        #expect(UserData(raw: UserData(.receive, generation: next, index: 3).raw)?.generation == 0)
    }

    @Test func rejectsTagsWithAnUnknownOperation() {
        #expect(UserData(raw: 0) == nil)
        #expect(UserData(raw: 0x0800_0000_0000_0001) == nil, "the first number after the last operation (connect, 7)")
        #expect(UserData(raw: 0xFF00_0000_0000_0000) == nil)
    }
}
