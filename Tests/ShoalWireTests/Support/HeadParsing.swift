// Drives HTTPHeadParser over chunked input, feeding what follows each head back in (pipelining), and
// records where in the whole input each head ended.

import ShoalWire
import Testing

/// A parsed head, flattened so outcomes compare with ==.
struct HeadSummary: Equatable {
    var method: String
    var target: String
    var version: [Int]
    var headers: [[String]]
    /// Offset in the whole input just after the head.
    var end: Int

    init(_ head: HTTPRequestHead, end: Int) {
        method = head.method
        target = head.target
        version = [head.versionMajor, head.versionMinor]
        headers = head.headers.map { [$0.name, $0.value] }
        self.end = end
    }
}

struct HeadOutcome: Equatable {
    var heads: [HeadSummary] = []
    var error: HTTPError?
}

func parseHeads(
    _ chunks: [[UInt8]], maxHeadSize: Int = Limits.defaultMaxHeadSize,
    maxHeaderCount: Int = Limits.defaultMaxHeaderCount
) -> HeadOutcome {
    var parser = HTTPHeadParser(maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
    var outcome = HeadOutcome()
    var chunkStart = 0
    for chunk in chunks {
        var start = 0
        while start < chunk.count {
            let fed: Result<HTTPHeadParser.Result, HTTPError> = chunk.withUnsafeBytes { raw in
                do throws(HTTPError) {
                    return .success(try parser.feed(UnsafeRawBufferPointer(rebasing: raw[start...])))
                } catch {
                    return .failure(error)
                }
            }
            switch fed {
            case .failure(let error):
                outcome.error = error
                return outcome
            case .success(.needMore):
                start = chunk.count
            case .success(.complete(let head, let consumed)):
                precondition(consumed > 0 && start + consumed <= chunk.count)
                start += consumed
                outcome.heads.append(HeadSummary(head, end: chunkStart + start))
            }
        }
        chunkStart += chunk.count
    }
    return outcome
}

func parseHeadsEverySplit(
    _ text: String, maxHeadSize: Int = Limits.defaultMaxHeadSize, maxHeaderCount: Int = Limits.defaultMaxHeaderCount,
    sourceLocation: SourceLocation = #_sourceLocation
) -> HeadOutcome {
    expectSameOutcomeForEverySplit(Array(text.utf8), sourceLocation: sourceLocation) {
        parseHeads($0, maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
    }
}

/// The single head of an outcome, or nil (recording an issue) when there is not exactly one.
func onlyHead(_ outcome: HeadOutcome, sourceLocation: SourceLocation = #_sourceLocation) -> HeadSummary? {
    guard outcome.error == nil, outcome.heads.count == 1 else {
        Issue.record("expected one head, got \(outcome)", sourceLocation: sourceLocation)
        return nil
    }
    return outcome.heads[0]
}

/// The head at the start of `text`, fed in one piece, or nil (recording an issue) when it is not
/// complete; throws the parser's error.
func parseFirstHead(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> HTTPRequestHead? {
    var parser = HTTPHeadParser()
    let result = try Array(text.utf8).withUnsafeBytes { raw throws(HTTPError) in try parser.feed(raw) }
    guard case .complete(let head, _) = result else {
        Issue.record("expected a complete head in \(text.debugDescription)", sourceLocation: sourceLocation)
        return nil
    }
    return head
}
