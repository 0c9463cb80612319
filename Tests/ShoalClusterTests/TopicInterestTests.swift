// What a worker knows of the other workers' subscribers: where a publish must go and how many subscribe.
import Testing
@testable import ShoalCluster

@Suite struct TopicInterestTests {
    private let news = TopicKey(server: 0, topic: "news")
    private let everyone: (Int) -> Bool = { _ in true }

    @Test func onlySlotsThatReportedSubscribersAreInterested() {
        var interest = TopicInterest()
        interest.apply([TopicCount(topic: "news", count: 3)], server: 0, from: 1)
        interest.apply([TopicCount(topic: "news", count: 2), TopicCount(topic: "sport", count: 1)], server: 0, from: 2)
        interest.apply([TopicCount(topic: "news", count: 5)], server: 1, from: 3)
        #expect(interest.interestedSlots(in: news, among: everyone) == [1, 2])
        #expect(interest.remoteCount(of: news, among: everyone) == 5)
        #expect(interest.interestedSlots(in: TopicKey(server: 1, topic: "news"), among: everyone) == [3])
        #expect(interest.interestedSlots(in: TopicKey(server: 0, topic: "weather"), among: everyone).isEmpty)
    }

    @Test func aLaterCountReplacesTheEarlierAndZeroRemovesTheSlot() {
        var interest = TopicInterest()
        interest.apply([TopicCount(topic: "news", count: 3)], server: 0, from: 1)
        interest.apply([TopicCount(topic: "news", count: 7)], server: 0, from: 1)
        #expect(interest.remoteCount(of: news, among: everyone) == 7)
        interest.apply([TopicCount(topic: "news", count: 0)], server: 0, from: 1)
        #expect(interest.interestedSlots(in: news, among: everyone).isEmpty)
        #expect(interest.topicCount == 0)
    }

    @Test func slotsThatAreNotRunningAreLeftOut() {
        var interest = TopicInterest()
        interest.apply([TopicCount(topic: "news", count: 3)], server: 0, from: 1)
        interest.apply([TopicCount(topic: "news", count: 4)], server: 0, from: 2)
        #expect(interest.interestedSlots(in: news, among: { $0 != 1 }) == [2])
        #expect(interest.remoteCount(of: news, among: { $0 != 1 }) == 4)
    }

    @Test func forgettingASlotDropsEverythingItReportedAndNothingElse() {
        var interest = TopicInterest()
        interest.apply([TopicCount(topic: "news", count: 3), TopicCount(topic: "sport", count: 1)], server: 0, from: 1)
        interest.apply([TopicCount(topic: "news", count: 4)], server: 0, from: 2)
        interest.forget(slot: 1)
        #expect(interest.interestedSlots(in: news, among: everyone) == [2])
        #expect(interest.interestedSlots(in: TopicKey(server: 0, topic: "sport"), among: everyone).isEmpty)
        #expect(interest.topicCount == 1)
    }
}
