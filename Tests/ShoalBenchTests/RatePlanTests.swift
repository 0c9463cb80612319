// The open model's schedule (RatePlan): messages due over time, and when each message is due.
import Testing

@testable import shoal_bench

@Suite struct RatePlanTests {
    @Test func flatRateIsEvenlySpaced() {
        let plan = RatePlan(rate: 1000, seconds: 2)
        #expect(plan.messages(at: 1) == 1000)
        #expect(plan.time(ofMessage: 0) == 0)
        #expect(abs(plan.time(ofMessage: 250)! - 0.25) < 1e-12)
        #expect(plan.time(ofMessage: 2000) == nil)
    }

    @Test func stagesRampFromTheRateBefore() throws {
        let plan = try RatePlan(stages: "1s:200, 1s:200,500ms:0")
        #expect(plan.segments == [.init(seconds: 1, from: 0, to: 200), .init(seconds: 1, from: 200, to: 200), .init(seconds: 0.5, from: 200, to: 0)])
        #expect(plan.messages(at: 1) == 100)
        #expect(plan.messages(at: 2) == 300)
        #expect(plan.messages(at: 2.5) == 350)
        #expect(plan.stagesText == "1s:200,1s:200,0.5s:0")
    }

    @Test func timeOfMessageInvertsMessagesAt() throws {
        let plan = try RatePlan(stages: "2s:1000,3s:5000,1s:0,1s:0,2s:300")
        var m = 0.0
        while let t = plan.time(ofMessage: m) {
            #expect(abs(plan.messages(at: t) - m) < 1e-6, "message \(m) at \(t)")
            m += 17
        }
        #expect(m >= plan.messages(at: plan.seconds) - 17)
    }

    @Test func scaledPlanIsAShare() {
        let plan = RatePlan(rate: 900, seconds: 1).scaled(by: 1.0 / 3)
        #expect(abs(plan.messages(at: 1) - 300) < 1e-9)
    }

    @Test(arguments: ["10s", "10s:abc", "0s:5", "-1s:5", "1x:5", "1s:0,2s:0", "1s:5,,2s:1"])
    func badStagesAreRefused(_ text: String) {
        #expect(throws: RatePlan.ParseError.self) { try RatePlan(stages: text) }
    }
}
