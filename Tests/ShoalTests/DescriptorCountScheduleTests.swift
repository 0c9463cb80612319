// When a worker counts its open descriptors again: at its first sample, then after a thousand times
// what the last count took, so a small table is counted at every once-a-second sample and a table of
// many thousand sockets only every few seconds.
@testable import Shoal
import Testing

@Suite("Descriptor count schedule")
struct DescriptorCountScheduleTests {
    private let second: UInt64 = 1_000_000_000

    /// Which of the once-a-second samples count, when each count takes `cost` nanoseconds.
    private func counting(samples: Int, cost: UInt64) -> [Int] {
        var schedule = DescriptorCountSchedule()
        var counted: [Int] = []
        for i in 0..<samples {
            let now = 5 * second + UInt64(i) * second
            guard schedule.isDue(at: now) else { continue }
            counted.append(i)
            schedule.counted(from: now, to: now + cost)
        }
        return counted
    }

    @Test func aSmallTableIsCountedAtEverySample() {
        // 100 descriptors: microseconds
        #expect(counting(samples: 6, cost: 20_000) == [0, 1, 2, 3, 4, 5])
    }

    @Test func aLargeTableWaitsAThousandTimesItsCost() {
        // 10,000 sockets at 3 ms: every third second at most (the count ends 3 ms after the sample)
        #expect(counting(samples: 10, cost: 3_000_000) == [0, 4, 8])
        // a worker of a million-client cluster, 18,500 sockets at 7 ms
        #expect(counting(samples: 20, cost: 7_000_000) == [0, 8, 16])
    }

    @Test func theFirstSampleAlwaysCounts() {
        #expect(DescriptorCountSchedule().isDue(at: 0))
    }

    @Test func aClockThatSeemsToGoBackCostsNothing() {
        var schedule = DescriptorCountSchedule()
        schedule.counted(from: 10 * second, to: 9 * second)
        #expect(schedule.isDue(at: 9 * second))
    }
}
