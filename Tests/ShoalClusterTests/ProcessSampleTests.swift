// Reading /proc: the fields parsed from sample lines (a command name with spaces and parentheses
// must not shift them), and this test process's own figures read for real.
import Glibc
import ShoalPosix
import Testing

@Suite("Process sample")
struct ProcessSampleTests {
    @Test("starttime is field 22 even when the command name holds ') ('")
    func startTicksAfterTheLastParenthesis() {
        let stat = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 987654 1000 200 18446744073709551615\n"
        #expect(ProcessSample.startTicks(stat: stat) == 987_654)
        #expect(ProcessSample.startTicks(stat: "no parenthesis") == nil)
        #expect(ProcessSample.startTicks(stat: "1 (x) S 1 2") == nil, "too few fields")
    }

    @Test("resident pages from statm, boot time from /proc/stat, the descriptor table size from status")
    func statmAndBootTime() {
        #expect(ProcessSample.residentPages(statm: "5000 1234 300 10 0 400 0\n") == 1234)
        #expect(ProcessSample.residentPages(statm: "") == nil)
        #expect(ProcessSample.bootSeconds(procStat: "cpu  1 2 3\nintr 5 6\nbtime 1796000000\nprocesses 9\n") == 1_796_000_000)
        #expect(ProcessSample.bootSeconds(procStat: "cpu 1\n") == nil)
        #expect(ProcessSample.fdTableSize(status: "Name:\tshoal\nFDSize:\t16384\nGroups:\t\n") == 16384)
        #expect(ProcessSample.fdTableSize(status: "Name:\tshoal\n") == nil)
    }

    @Test("this process: some CPU, resident memory, the descriptors it just opened, a start in the past")
    func currentProcess() throws {
        var burn: UInt64 = 0
        for i in 0..<3_000_000 { burn = burn &* 31 &+ UInt64(i) }
        #expect(burn != 1)
        let before = ProcessSample.current()
        let opened = (0..<200).map { _ in open("/dev/null", O_RDONLY) }
        defer { for fd in opened { close(fd) } }
        let after = ProcessSample.current()
        #expect(before.cpuMicroseconds > 0 && before.residentBytes > 1 << 20)
        // Tests running beside this one open and close descriptors too: a margin, not equality.
        let grown = Int(after.openDescriptors) - Int(before.openDescriptors)
        #expect((150...250).contains(grown), "200 opened, count grew by \(grown)")
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nowMilliseconds = UInt64(now.tv_sec) * 1000
        #expect(after.startMilliseconds > 1_600_000_000_000 && after.startMilliseconds <= nowMilliseconds + 1000)
    }
}
