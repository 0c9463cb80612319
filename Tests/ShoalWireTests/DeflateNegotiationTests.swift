// permessage-deflate negotiation (RFC 7692 §5, §7.1): header syntax, which offers are declined, and the
// exact answers of the shared and dedicated policies.

@testable import ShoalWire
import Testing

/// The response header for `headers` under `policy`, or nil when compression is declined.
private func answer(_ headers: [String], _ policy: DeflatePolicy = .dedicated()) -> String? {
    PerMessageDeflate.negotiate(headerValues: headers, policy: policy)?.responseHeaderValue
}

private func answer(_ header: String, _ policy: DeflatePolicy = .dedicated()) -> String? {
    answer([header], policy)
}

@Suite struct ExtensionHeaderSyntax {
    @Test func splitsOffersAndParametersAcrossLines() {
        let offers = ExtensionOffer.parse([
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate",
            "x-webkit-deflate-frame",
        ])
        #expect(
            offers == [
                ExtensionOffer(
                    name: "permessage-deflate",
                    parameters: [.init(name: "client_max_window_bits", value: nil), .init(name: "server_max_window_bits", value: "10")]),
                ExtensionOffer(name: "permessage-deflate", parameters: []),
                ExtensionOffer(name: "x-webkit-deflate-frame", parameters: []),
            ])
    }

    @Test func allowsWhitespaceAroundSeparatorsAndEmptyListElements() {
        let offers = ExtensionOffer.parse([" , permessage-deflate ;\tserver_max_window_bits = 10 ,, ,"])
        #expect(offers == [ExtensionOffer(name: "permessage-deflate", parameters: [.init(name: "server_max_window_bits", value: "10")])])
    }

    @Test func unescapesQuotedValues() {
        #expect(ExtensionOffer.parse([#"e; a="10"; b="1\0""#]).first?.parameters.map(\.value) == ["10", "10"])
    }

    @Test(arguments: [
        #"e; a="""#,  // empty once unescaped: not a token
        #"e; a="1 0""#,  // a space is not a token character
        #"e; a="10"#,  // unterminated
        "e; a=",  // no value after "="
        "e; a=1 0",  // two tokens
        "e; =1",  // no parameter name
        "e;; a",  // empty parameter
        "e a",  // a second token where ";" or "," belongs
        "; a",  // no extension name
        "e; a=(1)",  // delimiters are not token characters
        "e; a=\u{1}",  // control character
    ])
    func dropsAnOfferWithASyntaxError(_ header: String) {
        #expect(ExtensionOffer.parse([header]).isEmpty)
    }

    @Test func resumesAfterTheNextCommaOutsideQuotes() {
        let offers = ExtensionOffer.parse([#"a; x="1,2", b; y=1 2, c, d; z="q, e"#, "f"])
        // a's quoted value is not a token; b has two tokens; d's unterminated quote swallows the line.
        #expect(offers.map(\.name) == ["c", "f"])
    }
}

@Suite struct DeflateNegotiationDecline {
    @Test func declinesWithoutAPermessageDeflateOffer() {
        #expect(answer([]) == nil)
        #expect(answer("") == nil)
        #expect(answer("x-webkit-deflate-frame, permessage-bzip2") == nil)
    }

    @Test(arguments: [
        "permessage-deflate; foo",  // unknown parameter
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  // duplicate
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",  // duplicate, different form
        "permessage-deflate; Server_No_Context_Takeover; server_no_context_takeover",  // duplicate, other case
        "permessage-deflate; server_no_context_takeover=1",  // takes no value
        "permessage-deflate; client_no_context_takeover=\"x\"",  // takes no value
        "permessage-deflate; server_max_window_bits",  // needs a value
        "permessage-deflate; server_max_window_bits=7",  // below 8
        "permessage-deflate; server_max_window_bits=16",  // above 15
        "permessage-deflate; server_max_window_bits=010",  // leading zero
        "permessage-deflate; server_max_window_bits=08",  // leading zero
        "permessage-deflate; client_max_window_bits=1a",  // not decimal
        "permessage-deflate; client_max_window_bits=\"0x0F\"",  // not decimal once unquoted
        "permessage-deflate; client_max_window_bits=100",  // too long
        "permessage-deflate; server_max_window_bits=10 11",  // syntax
    ])
    func declinesAnInvalidOffer(_ header: String) {
        #expect(answer(header) == nil)
        #expect(answer(header, .shared) == nil)
    }

    @Test func triesEveryOfferInOrderAndAcceptsOnlyOne() {
        let headers = [
            "permessage-deflate; server_max_window_bits=16, x-foo, permessage-deflate; foo=1",
            "permessage-deflate; client_no_context_takeover, permessage-deflate; server_max_window_bits=9",
        ]
        #expect(answer(headers) == "permessage-deflate; client_no_context_takeover")
    }

    @Test func skipsAMalformedOfferAndTakesTheNext() {
        #expect(
            answer(#"permessage-deflate; server_max_window_bits="10, permessage-deflate"#) == nil,
            "an unterminated quote makes the rest of the line unusable")
        #expect(
            answer(#"permessage-deflate; server_max_window_bits="1,0", permessage-deflate; server_max_window_bits=11"#)
                == "permessage-deflate; server_max_window_bits=11")
    }
}

@Suite struct DeflateNegotiationDedicated {
    @Test func acceptsThePlainOfferWithContextTakeover() {
        let agreement = PerMessageDeflate.negotiate(headerValues: ["permessage-deflate"], policy: .dedicated())
        #expect(
            agreement
                == DeflateAgreement(
                    serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15,
                    clientMaxWindowBits: 15, memoryLevel: 8, responseHeaderValue: "permessage-deflate"))
    }

    /// RFC 7692 §5.2's example: a preferred offer with window parameters and a plainer fallback.
    @Test func acceptsThePreferredOfferOfTheRFCExample() {
        let header = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits"
        #expect(answer(header) == "permessage-deflate; server_max_window_bits=10")
        let agreement = PerMessageDeflate.negotiate(headerValues: [header], policy: .dedicated(windowBits: 10, memoryLevel: 4))
        #expect(agreement?.responseHeaderValue == "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10")
        #expect(agreement?.serverMaxWindowBits == 10)
        #expect(agreement?.clientMaxWindowBits == 10)
        #expect(agreement?.memoryLevel == 4)
    }

    @Test func echoesTheContextTakeoverParametersOffered() {
        #expect(
            answer("permessage-deflate; client_no_context_takeover; server_no_context_takeover")
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        let agreement = PerMessageDeflate.negotiate(
            headerValues: ["permessage-deflate; server_no_context_takeover"], policy: .dedicated())
        #expect(agreement?.serverNoContextTakeover == true)
        #expect(agreement?.clientNoContextTakeover == false)
    }

    @Test func answersServerMaxWindowBitsWithAtMostTheOfferedValue() {
        #expect(answer("permessage-deflate; server_max_window_bits=12") == "permessage-deflate; server_max_window_bits=12")
        #expect(
            answer("permessage-deflate; server_max_window_bits=12", .dedicated(windowBits: 9, memoryLevel: 8))
                == "permessage-deflate; server_max_window_bits=9")
        #expect(answer("permessage-deflate; server_max_window_bits=\"8\"") == "permessage-deflate; server_max_window_bits=8")
    }

    @Test func keepsASmallerServerWindowToItselfWhenNotOffered() {
        let agreement = PerMessageDeflate.negotiate(
            headerValues: ["permessage-deflate"], policy: .dedicated(windowBits: 10, memoryLevel: 4))
        #expect(agreement?.responseHeaderValue == "permessage-deflate")
        #expect(agreement?.serverMaxWindowBits == 10)
        // The client did not offer client_max_window_bits, so it may use 32 KiB and the response may not limit it.
        #expect(agreement?.clientMaxWindowBits == 15)
    }

    @Test func limitsTheClientWindowOnlyWhenOfferedAndSmallerThan15() {
        #expect(answer("permessage-deflate; client_max_window_bits") == "permessage-deflate")
        #expect(answer("permessage-deflate; client_max_window_bits=11") == "permessage-deflate; client_max_window_bits=11")
        let policy = DeflatePolicy.dedicated(windowBits: 12, memoryLevel: 8)
        #expect(answer("permessage-deflate; client_max_window_bits", policy) == "permessage-deflate; client_max_window_bits=12")
        #expect(answer("permessage-deflate; client_max_window_bits=9", policy) == "permessage-deflate; client_max_window_bits=9")
        #expect(
            PerMessageDeflate.negotiate(headerValues: ["permessage-deflate; client_max_window_bits=9"], policy: policy)?
                .clientMaxWindowBits == 9)
    }

    @Test func announces8AndCompressesWithinIt() {
        let agreement = PerMessageDeflate.negotiate(
            headerValues: ["permessage-deflate; server_max_window_bits=8; client_max_window_bits"],
            policy: .dedicated(windowBits: 8, memoryLevel: 1))
        #expect(agreement?.responseHeaderValue == "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8")
        #expect(agreement?.makeDeflater().windowBits == 8)
        #expect(agreement?.makeInflater().windowBits == 8)
    }

    @Test func comparesNamesCaseInsensitively() {
        #expect(
            answer("PerMessage-Deflate; Server_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=10")
                == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
    }
}

@Suite struct DeflateNegotiationShared {
    @Test func alwaysAnswersNoContextTakeoverInBothDirections() {
        let agreement = PerMessageDeflate.negotiate(headerValues: ["permessage-deflate"], policy: .shared)
        #expect(agreement?.responseHeaderValue == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        #expect(agreement?.serverNoContextTakeover == true)
        #expect(agreement?.clientNoContextTakeover == true)
        #expect(agreement?.serverMaxWindowBits == 15)
        #expect(agreement?.clientMaxWindowBits == 15)
    }

    @Test func leavesTheClientWindowAloneAndHonoursTheServerWindow() {
        #expect(
            answer("permessage-deflate; client_max_window_bits=10; server_max_window_bits=9", .shared)
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9")
        #expect(
            answer("permessage-deflate; client_max_window_bits; client_no_context_takeover", .shared)
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    }

    @Test func sharesOneCompressorPerServerWindow() {
        let codecs = SharedDeflateCodecs()
        let plain = PerMessageDeflate.negotiate(headerValues: ["permessage-deflate"], policy: .shared)!
        let small = PerMessageDeflate.negotiate(headerValues: ["permessage-deflate; server_max_window_bits=9"], policy: .shared)!
        #expect(codecs.codecs(for: plain) === codecs.codecs(for: plain))
        #expect(codecs.codecs(for: small).deflater !== codecs.codecs(for: plain).deflater)
        #expect(codecs.codecs(for: small).deflater?.windowBits == 9)
        #expect(codecs.codecs(for: small).inflater === codecs.inflater, "one decompressor for every window")
        #expect(codecs.deflater(for: small) === codecs.codecs(for: small).deflater)
        #expect(codecs.inflater.noContextTakeover)
        #expect(codecs.memoryHeld == 0, "nothing is allocated before the first message")
    }
}
