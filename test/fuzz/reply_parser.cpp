// Fuzz target: the SMTP reply parser (RFC 5321 §4.2) and EHLO capabilities (§4.1.1.1).
//
// Input: one octet of settings (enhanced status codes on or off; small or default limits),
// one octet that seeds how the bytes are cut, then the bytes a server sends. Invariants:
// - fed in pieces cut anywhere, the parser gives the same replies and the same error as fed
//   whole (a reply must not depend on how TCP split it);
// - every reply it gives is well formed: a 2xx-5xx code (any second digit), within the
//   limits, text without control characters but TAB, an enhanced status only when asked for
//   and of the code's class;
// - capabilities::parse of any reply keeps to its own contract: upper-case keywords and AUTH
//   mechanisms, each mechanism once, has()/find()/has_auth() agree with the fields.
#include "fuzz.hpp"

#include "smtp/reply_parser.hpp"

#include <mailroom/smtp/capabilities.hpp>

#include <string>
#include <vector>

using mailroom::error_code;
using mailroom::smtp::capabilities;
using mailroom::smtp::reply;
using mailroom::smtp::detail::reply_limits;
using mailroom::smtp::detail::reply_parser;

namespace {

struct outcome {
    std::vector<reply> replies;
    error_code ec;
    bool idle = true;
};

// Feeds `data` through `p` in the given pieces, taking each reply as it completes.
outcome run(reply_parser& p, const std::vector<std::string_view>& pieces)
{
    outcome o;
    for (std::string_view piece : pieces) {
        while (!o.ec) {
            const std::size_t n = p.feed(piece, o.ec);
            FUZZ_CHECK(n <= piece.size(), "feed consumed more than it was given");
            piece.remove_prefix(n);
            if (p.has_reply()) {
                FUZZ_CHECK(!o.ec, "a reply and an error at once");
                o.replies.push_back(p.take());
                FUZZ_CHECK(!p.has_reply(), "take() left a reply");
                continue;
            }
            FUZZ_CHECK(o.ec || piece.empty(), "feed stopped early without a reply or error");
            break;
        }
        if (o.ec)
            break;
    }
    if (o.ec) {
        FUZZ_CHECK(p.last_error() == o.ec, "the error is not sticky");
        error_code again;
        FUZZ_CHECK(p.feed("250 OK\r\n", again) == 0 && again == o.ec, "a failed parser went on");
    }
    o.idle = p.idle();
    return o;
}

bool is_upper_token(std::string_view s)
{
    for (char c : s)
        if (c >= 'a' && c <= 'z')
            return false;
    return !s.empty();
}

void check_reply(const reply& r, const reply_limits& lim, bool enhanced)
{
    // Any second digit: an unknown code is judged by its first (RFC 5321 §4.2.1).
    FUZZ_CHECK(r.code >= 200 && r.code <= 599, "reply code out of range");
    FUZZ_CHECK(!r.lines.empty() && r.lines.size() <= lim.max_lines, "reply line count");
    std::size_t text = 0;
    for (const std::string& l : r.lines) {
        FUZZ_CHECK(l.size() + 4 <= lim.max_line || (l.empty() && lim.max_line >= 3),
                   "reply line over the limit");
        for (char c : l)
            FUZZ_CHECK(c == '\t' || static_cast<unsigned char>(c) >= 0x20 && c != 0x7F,
                       "control character in reply text");
        text += l.size();
    }
    FUZZ_CHECK(text <= lim.max_text, "reply text over the limit");
    if (r.status) {
        FUZZ_CHECK(enhanced, "enhanced status without ENHANCEDSTATUSCODES");
        FUZZ_CHECK(r.status->cls == r.code / 100, "enhanced status of another class");
        FUZZ_CHECK(r.lines.front().starts_with(r.status->to_string()),
                   "enhanced status not at the start of the text");
    }
    const std::string s = r.to_string();
    FUZZ_CHECK(s.find('\r') == std::string::npos, "CR in reply::to_string");

    const capabilities caps = capabilities::parse(r);
    FUZZ_CHECK(caps.greeting == r.lines.front(), "greeting is not the first line");
    FUZZ_CHECK(caps.extensions.size() < r.lines.size(), "more extensions than lines");
    FUZZ_CHECK(caps == capabilities::parse(r), "parse is not deterministic");
    for (const auto& e : caps.extensions) {
        FUZZ_CHECK(is_upper_token(e.keyword), "extension keyword not upper-case");
        FUZZ_CHECK(caps.has(e.keyword), "has() misses an advertised keyword");
        FUZZ_CHECK(caps.find(e.keyword) != nullptr, "find() misses an advertised keyword");
        for (const std::string& p : e.params)
            FUZZ_CHECK(!p.empty() && p.find_first_of(" \t") == std::string::npos,
                       "extension parameter with white space");
    }
    for (std::size_t i = 0; i < caps.auth.size(); ++i) {
        FUZZ_CHECK(is_upper_token(caps.auth[i]) && caps.auth[i].size() <= 20,
                   "AUTH mechanism not an upper-case sasl-mech");
        FUZZ_CHECK(caps.has_auth(caps.auth[i]), "has_auth() misses an advertised mechanism");
        for (std::size_t j = 0; j < i; ++j)
            FUZZ_CHECK(caps.auth[i] != caps.auth[j], "AUTH mechanism listed twice");
    }
    FUZZ_CHECK(caps.auth.empty() || caps.has("AUTH") || caps.has("AUTH="),
               "AUTH mechanisms without an AUTH line");
    FUZZ_CHECK(caps.pipelining == caps.has("PIPELINING"), "pipelining flag");
    FUZZ_CHECK(caps.starttls == caps.has("STARTTLS"), "starttls flag");
    FUZZ_CHECK(caps.chunking == caps.has("CHUNKING"), "chunking flag");
    FUZZ_CHECK(caps.smtputf8 == caps.has("SMTPUTF8"), "smtputf8 flag");
    FUZZ_CHECK(caps.size.has_value() == caps.has("SIZE"), "SIZE value");
}

bool same(const outcome& a, const outcome& b)
{
    return a.replies == b.replies && a.ec == b.ec && (a.ec || a.idle == b.idle);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::input in(data, size);
    const std::uint8_t flags = in.byte();
    const std::uint8_t seed = in.byte();
    const std::string_view bytes = in.rest();

    const bool enhanced = flags & 1;
    reply_limits lim;
    if (flags & 2) // small limits, so the fuzzer reaches them
        lim = {.max_line = 4u + (flags >> 4u), .max_lines = 1u + (flags >> 6u), .max_text = 24};

    reply_parser whole(lim);
    whole.set_enhanced_status_codes(enhanced);
    const outcome a = run(whole, {bytes});

    reply_parser pieces(lim);
    pieces.set_enhanced_status_codes(enhanced);
    const outcome b = run(pieces, fuzz::split(bytes, seed));
    FUZZ_CHECK(same(a, b), "split feeds differ from the whole feed");

    // Octet by octet: the smallest pieces a slow server can send.
    reply_parser octets(lim);
    octets.set_enhanced_status_codes(enhanced);
    std::vector<std::string_view> ones;
    for (std::size_t i = 0; i < bytes.size(); ++i)
        ones.push_back(bytes.substr(i, 1));
    FUZZ_CHECK(same(a, run(octets, ones)), "octet-by-octet feed differs from the whole feed");

    for (const reply& r : a.replies)
        check_reply(r, lim, enhanced);

    // After reset() the parser reads the same bytes the same way.
    whole.reset();
    FUZZ_CHECK(same(a, run(whole, {bytes})), "reset() left state behind");
    return 0;
}
