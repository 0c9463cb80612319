// The topic table alone: who is subscribed to what, the name and count limits, and leaving everything at close.
import Testing
@testable import Shoal

@Suite struct TopicTableTests {
    @Test func subscribeIsIdempotentAndBothDirectionsAgree() throws {
        var table = TopicTable<Int>(maxTopicsPerMember: 10)
        do { let result = try table.subscribe(1, to: "news"); #expect(result) }
        do { let result = try table.subscribe(1, to: "news"); #expect(!result) }
        do { let result = try table.subscribe(2, to: "news"); #expect(result) }
        do { let result = try table.subscribe(1, to: "sport"); #expect(result) }
        #expect(table.subscribers(of: "news") == [1, 2])
        #expect(table.count(of: "news") == 2)
        #expect(table.topics(of: 1) == ["news", "sport"])
        #expect(table.isSubscribed(2, to: "news"))
        #expect(!table.isSubscribed(2, to: "sport"))
        #expect(table.subscribers(of: "weather").isEmpty)
    }

    @Test func unsubscribeRemovesOnlyThatPairAndForgetsEmptyTopics() throws {
        var table = TopicTable<Int>(maxTopicsPerMember: 10)
        _ = try table.subscribe(1, to: "a")
        _ = try table.subscribe(2, to: "a")
        do { let result = table.unsubscribe(1, from: "a"); #expect(result) }
        do { let result = table.unsubscribe(1, from: "a"); #expect(!result) }
        do { let result = table.unsubscribe(3, from: "zzz"); #expect(!result) }
        #expect(table.subscribers(of: "a") == [2])
        do { let result = table.unsubscribe(2, from: "a"); #expect(result) }
        #expect(table.counts.isEmpty)
        #expect(table.topics(of: 2).isEmpty)
    }

    @Test func removeAllLeavesEveryTopicOfThatMemberOnly() throws {
        var table = TopicTable<Int>(maxTopicsPerMember: 10)
        for topic in ["a", "b", "c"] { _ = try table.subscribe(1, to: topic) }
        _ = try table.subscribe(2, to: "b")
        do { let result = table.removeAll(of: 1); #expect(result == ["a", "b", "c"]) }
        do { let result = table.removeAll(of: 1).isEmpty; #expect(result) }
        #expect(table.counts.map(\.topic) == ["b"])
        #expect(table.subscribers(of: "b") == [2])
    }

    @Test func aNameOfMoreThan256UTF8BytesIsRefusedAnd256IsAccepted() throws {
        var table = TopicTable<Int>(maxTopicsPerMember: 10)
        let longest = String(repeating: "é", count: 128)  // 256 bytes, 128 characters
        do { let result = try table.subscribe(1, to: longest); #expect(result) }
        do { let result = try table.subscribe(1, to: ""); #expect(result) }
        #expect(throws: TopicError.nameTooLong(bytes: 258, limit: 256)) { try table.subscribe(1, to: longest + "é") }
        #expect(throws: TopicError.nameTooLong(bytes: 257, limit: 256)) {
            try TopicTable<Int>.validate(String(repeating: "a", count: 257))
        }
        #expect(table.topics(of: 1).count == 2)
    }

    @Test func theTopicLimitIsPerMemberAndLeavingMakesRoom() throws {
        var table = TopicTable<Int>(maxTopicsPerMember: 3)
        for topic in ["a", "b", "c"] { _ = try table.subscribe(1, to: topic) }
        #expect(throws: TopicError.tooManyTopics(limit: 3)) { try table.subscribe(1, to: "d") }
        // Resubscribing to a held topic is not a new one; another member has its own allowance.
        do { let result = try table.subscribe(1, to: "a"); #expect(!result) }
        do { let result = try table.subscribe(2, to: "d"); #expect(result) }
        do { let result = table.unsubscribe(1, from: "b"); #expect(result) }
        do { let result = try table.subscribe(1, to: "d"); #expect(result) }
        #expect(table.subscribers(of: "d") == [1, 2])
    }
}
