// Re-export of the syscall error under the loop's own name, so backend protocol users need not
// import ShoalPosix themselves.
public import ShoalPosix

public typealias SystemErrorValue = SystemError
