// The handler-series table: a key finds its own entry again, another kind under the same key
// is refused, the table and the key length are bounded, and values read back as recorded.
@testable import ShoalCluster
import Testing

@Suite("Handler series table")
struct HandlerSeriesTableTests {
    @Test("the same key finds the same entry; counters, gauges and summaries read back")
    func findAndRecord() throws {
        let (table, owner) = HandlerSeriesTable.detached()
        defer { withExtendedLifetime(owner) {} }
        let hits = try #require(table.entry(kind: .counter, name: "hits_total", labels: "path=\"/a\""))
        let again = try #require(table.entry(kind: .counter, name: "hits_total", labels: "path=\"/a\""))
        table.increment(hits, by: 2)
        table.increment(again, by: 3)
        let level = try #require(table.entry(kind: .gauge, name: "level", labels: ""))
        table.set(level, 1.5)
        table.add(level, -0.25)
        let latency = try #require(table.entry(kind: .summary, name: "latency_seconds", labels: ""))
        table.observe(latency, 0.5)
        table.observe(latency, 0.25)
        #expect(table.series == [
            .init(kind: .counter, name: "hits_total", labels: "path=\"/a\"", value: 5, count: 0),
            .init(kind: .gauge, name: "level", labels: "", value: 1.25, count: 0),
            .init(kind: .summary, name: "latency_seconds", labels: "", value: 0.75, count: 2),
        ])
        table.resetGauges()  // a new worker in the slot
        #expect(table.series.map(\.value) == [5, 0, 0.75], "gauges start again, counters and summaries go on")
    }

    @Test("another kind under a taken key, a key above 96 bytes and a full table are refused")
    func bounds() {
        let (table, owner) = HandlerSeriesTable.detached()
        defer { withExtendedLifetime(owner) {} }
        #expect(table.entry(kind: .counter, name: "x_total", labels: "") != nil)
        #expect(table.entry(kind: .gauge, name: "x_total", labels: "") == nil)
        #expect(table.entry(kind: .counter, name: String(repeating: "n", count: 90), labels: "a=\"bcd\"") == nil)
        #expect(table.entry(kind: .counter, name: String(repeating: "n", count: 89), labels: "a=\"bc\"") != nil, "96 bytes fit")
        for index in 2..<HandlerSeriesTable.capacity {
            #expect(table.entry(kind: .counter, name: "c\(index)", labels: "") != nil)
        }
        #expect(table.entry(kind: .counter, name: "one_too_many", labels: "") == nil)
        #expect(table.entry(kind: .counter, name: "c2", labels: "") != nil, "existing keys are still found when full")
        #expect(table.series.count == HandlerSeriesTable.capacity)
    }
}
