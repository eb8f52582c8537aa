// Fuzz target: base64 (RFC 4648 §4) as MIME bodies, encoded-words and SASL use it.
//
// Invariants: decode(encode(x)) == x; the encoded sizes are what base64_size and
// base64_lines_size say; line-wrapped output has CRLF-only lines of at most 76 characters and
// equals the unwrapped text with the line breaks taken out; encoding in 57-octet pieces gives
// the encoding of the whole; and the decoder is canonical: whatever it accepts encodes back to
// exactly the same text (RFC 4954 §4, RFC 4648 §3.5: one string has one meaning).
#include "fuzz.hpp"

#include "detail/base64.hpp"

#include <string>

using namespace mailroom::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    std::string flat;
    base64_append(flat, in);
    FUZZ_CHECK(flat.size() == base64_size(in.size()), "base64_size is not the encoded size");
    FUZZ_CHECK(flat.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789+/=") == std::string::npos,
               "encoded text outside the alphabet");
    const auto back = base64_decode(flat);
    FUZZ_CHECK(back && *back == in, "decode(encode(x)) != x");

    std::string prefixed = "xyz";
    base64_append(prefixed, in);
    FUZZ_CHECK(prefixed == "xyz" + flat, "base64_append doesn't append");

    std::string lines;
    base64_lines_append(lines, in);
    FUZZ_CHECK(lines.size() == base64_lines_size(in.size()), "base64_lines_size is wrong");
    FUZZ_CHECK(fuzz::crlf_only(lines), "bare CR or LF in wrapped base64");
    FUZZ_CHECK(fuzz::longest_line(lines) <= 76, "wrapped base64 line over 76 characters");
    FUZZ_CHECK(!lines.ends_with("\r\n"), "CRLF after the last line");
    std::string unwrapped;
    for (char c : lines)
        if (c != '\r' && c != '\n')
            unwrapped += c;
    FUZZ_CHECK(unwrapped == flat, "wrapped base64 is not the flat encoding");

    // 57-octet pieces joined by CRLF: how a large body is encoded chunk by chunk.
    std::string joined;
    for (std::size_t pos = 0; pos < in.size(); pos += base64_line_input * 3) {
        if (pos)
            joined += "\r\n";
        base64_lines_append(joined, in.substr(pos, base64_line_input * 3));
    }
    FUZZ_CHECK(joined == lines, "pieces of 3 x 57 octets don't join to the whole");

    // The input itself as base64: accepted only when canonical.
    if (const auto d = base64_decode(in)) {
        std::string again;
        base64_append(again, *d);
        FUZZ_CHECK(again == in, "the decoder accepted a non-canonical encoding");
        FUZZ_CHECK(in.size() % 4 == 0, "the decoder accepted a length not a multiple of 4");
    }
    return 0;
}
