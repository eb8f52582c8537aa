// Fuzz target: the DATA / BDAT body canonicaliser (RFC 5321 §4.5.2, §2.3.8).
//
// Input: one octet of settings (DATA or BDAT mode, a small line limit or the default), one
// octet that seeds how the body is cut, then the body. Invariants:
// - the wire form is CRLF-only and no line is over the limit (plus a stuffed dot);
// - in DATA mode nothing ends the data early: the only line that is "." is the last one, so
//   "\r\n.\r\n" appears only at the very end (SMTP smuggling);
// - un-stuffing the wire form gives back the body with its line ends made CRLF;
// - a body cut into pieces anywhere gives the same wire form, or the same error;
// - line_too_long exactly when a line of the body is over the limit, and `out` is then left
//   as it was;
// - fed() counts the octets given.
#include "fuzz.hpp"

#include "smtp/dot_stuffer.hpp"

#include <string>
#include <vector>

using mailroom::error_code;
using mailroom::smtp::detail::dot_stuffer;
using mode = dot_stuffer::dot_stuffing;

namespace {

// The body's lines, split at CRLF, bare CR or bare LF (a reference model, written plainly).
std::vector<std::string_view> lines_of(std::string_view in)
{
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\r' || in[i] == '\n') {
            lines.push_back(in.substr(start, i - start));
            if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')
                ++i;
            start = i + 1;
        }
    }
    if (start < in.size())
        lines.push_back(in.substr(start));
    return lines;
}

struct result {
    std::string out;
    error_code ec;
};

result stuff(const std::vector<std::string_view>& pieces, mode m, std::size_t max_line)
{
    dot_stuffer d(m, max_line);
    result r;
    std::size_t fed = 0;
    for (std::string_view p : pieces) {
        const std::string before = r.out;
        r.ec = d.feed(p, r.out);
        if (r.ec) {
            FUZZ_CHECK(r.out == before, "a failed feed changed the output");
            return r;
        }
        fed += p.size();
        FUZZ_CHECK(d.fed() == fed, "fed() doesn't count the octets given");
    }
    d.finish(r.out);
    FUZZ_CHECK(d.fed() == 0, "finish() didn't reset fed()");
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::input in(data, size);
    const std::uint8_t flags = in.byte();
    const std::uint8_t seed = in.byte();
    const std::string_view body = in.rest();
    const mode m = flags & 1 ? mode::off : mode::on;
    const std::size_t max_line = flags & 2 ? flags >> 2 : dot_stuffer::default_max_line;

    const result whole = stuff({body}, m, max_line);
    const result cut = stuff(fuzz::split(body, seed), m, max_line);
    FUZZ_CHECK(whole.ec == cut.ec, "a cut body fails differently from the whole");

    const auto lines = lines_of(body);
    bool too_long = false;
    for (std::string_view l : lines)
        too_long |= l.size() > max_line;
    FUZZ_CHECK(too_long == (whole.ec == mailroom::error::line_too_long),
               "line_too_long doesn't match the body's longest line");
    FUZZ_CHECK(!whole.ec || whole.ec == mailroom::error::line_too_long, "unexpected error");
    if (whole.ec)
        return 0;
    FUZZ_CHECK(whole.out == cut.out, "a cut body gives another wire form");

    const std::string_view wire = whole.out;
    FUZZ_CHECK(fuzz::crlf_only(wire), "bare CR or LF on the wire");
    FUZZ_CHECK(wire.empty() || wire.ends_with("\r\n"), "wire form doesn't end in CRLF");

    // Un-stuff the wire form as a receiver does (RFC 5321 §4.5.2) and compare.
    std::string unstuffed;
    std::size_t pos = 0;
    bool ended = false;
    while (pos < wire.size()) {
        const std::size_t eol = wire.find("\r\n", pos);
        std::string_view line = wire.substr(pos, eol - pos);
        pos = eol + 2;
        if (m == mode::on) {
            FUZZ_CHECK(!ended, "data after the end-of-data line");
            if (line == ".") {
                ended = true;
                continue;
            }
            if (line.starts_with('.'))
                line.remove_prefix(1);
            else
                FUZZ_CHECK(line.empty() || line.front() != '.', "unstuffed dot");
        }
        FUZZ_CHECK(line.size() <= max_line, "wire line over the limit");
        unstuffed += line;
        unstuffed += "\r\n";
    }
    FUZZ_CHECK(m == mode::off || ended, "DATA without its end-of-data line");
    FUZZ_CHECK(m == mode::off || wire.find("\r\n.\r\n") == std::string_view::npos ||
                   wire.find("\r\n.\r\n") == wire.size() - 5,
               "end-of-data before the end");

    std::string expected;
    for (std::string_view l : lines) {
        expected += l;
        expected += "\r\n";
    }
    FUZZ_CHECK(unstuffed == expected, "un-stuffing doesn't give the body back");
    return 0;
}
