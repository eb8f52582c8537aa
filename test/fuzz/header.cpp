// Fuzz target: header fields, folding (RFC 5322 §2.2.3) and encoding (RFC 2047, RFC 2231).
//
// Input: one octet choosing what to write, one octet for the header name's length (so fields
// start at every column), then the text (UTF-8 without controls, as the message builder
// guarantees; other input is skipped). Invariants, for each writer:
// - the field is CRLF-only, ends in CRLF, has no line over 998 octets and, when encoded, none
//   over 78 (but the name's own line); every continuation line starts with white space and none is
//   white space alone;
// - read back (unfolded, encoded-words decoded by an independent reader) it is the text that
//   was written: unstructured text, display names (phrases), quoted-strings, encoded-words,
//   RFC 2231 values; encoded-words are at most 75 characters and never split a character;
// - a display name written before an address parses back with mailbox::parse to the same
//   address, and, when no encoded-word was needed, to the same name.
#include "fuzz.hpp"
#include "rfc2047.hpp"

#include "detail/utf8.hpp"
#include "mime/encoding.hpp"
#include "mime/header.hpp"

#include <mailroom/address.hpp>

#include <string>
#include <vector>

using namespace mailroom::mime::detail;

namespace {

// The checks every written field passes; returns its value, unfolded, without the name's ':'.
std::string check_field(const std::string& out, std::string_view name, bool encoded)
{
    FUZZ_CHECK(out.starts_with(std::string(name) + ":"), "field doesn't start with its name");
    FUZZ_CHECK(out.ends_with("\r\n"), "field doesn't end in CRLF");
    FUZZ_CHECK(fuzz::crlf_only(out), "bare CR or LF in a field");
    FUZZ_CHECK(fuzz::longest_line(out) <= 998, "header line over 998 octets");
    std::size_t pos = 0;
    for (bool first = true; pos < out.size(); first = false) {
        const std::size_t eol = out.find("\r\n", pos);
        const std::string_view line = std::string_view(out).substr(pos, eol - pos);
        if (!first) {
            FUZZ_CHECK(line.starts_with(' '), "continuation line without white space");
            FUZZ_CHECK(line.find_first_not_of(' ') != std::string_view::npos,
                       "continuation line of white space alone");
        }
        // The first word is never folded away from the name: after a long name the first line
        // may hold the name and one encoded-word.
        if (encoded)
            FUZZ_CHECK(line.size() <= 78 || (first && line.size() <= name.size() + 2 + 75),
                       "encoded field line over 78 characters");
        pos = eol + 2;
    }
    const std::string unfolded = fuzz::unfold(out);
    FUZZ_CHECK(unfolded.find("\r\n") == unfolded.size() - 2, "unfolding left a line break");
    return unfolded.substr(name.size() + 1, unfolded.size() - name.size() - 3);
}

void unstructured(std::string_view name, std::string_view text)
{
    std::string out;
    header_writer h(out, name);
    write_unstructured(h, text);
    h.finish();
    const std::string v = check_field(out, name, needs_encoding(text));
    FUZZ_CHECK(v.starts_with(' '), "no space after the colon");
    FUZZ_CHECK(fuzz::decode_unstructured(std::string_view(v).substr(1)) == text,
               "unstructured text doesn't read back");
}

void phrase(std::string_view name, std::string_view text)
{
    if (text.empty())
        return; // the builder writes no phrase for an empty name
    static const auto addr = mailroom::address::parse("user@example.com");
    const mailroom::mailbox mb(*addr, std::string(text));
    std::string out;
    header_writer h(out, name);
    write_mailbox(h, mb, true);
    h.finish();
    const std::string v = check_field(out, name, false);
    std::string_view rest;
    const auto back = fuzz::decode_phrase(v, rest);
    FUZZ_CHECK(back && *back == text, "display name doesn't read back");
    FUZZ_CHECK(rest == "<user@example.com>", "address not after the phrase");

    // mailbox::parse refuses more than 4096 octets (hostile input); encoded-words make a long
    // name longer than it was, so a long one may be written beyond what parse takes back.
    mailroom::diagnostics diag;
    const auto parsed = mailroom::mailbox::parse(v, diag);
    if (v.size() > 4096) {
        FUZZ_CHECK(!parsed && diag.detail == "longer than 4096 octets",
                   "a mailbox over 4096 octets isn't refused as too long");
        return;
    }
    FUZZ_CHECK(parsed.has_value(), "mailbox::parse refuses a written mailbox");
    FUZZ_CHECK(parsed->address() == *addr, "mailbox::parse reads another address");
    if (v.find("=?") == std::string::npos)
        FUZZ_CHECK(parsed->display_name() == text, "mailbox::parse reads another name");
}

void quoted(std::string_view text)
{
    const std::string q = quoted_string(text);
    std::string_view rest;
    const auto back = fuzz::decode_phrase(q, rest);
    FUZZ_CHECK(back && *back == text && rest.empty(), "quoted-string doesn't read back");
}

void words(std::string_view text, std::size_t first_max)
{
    std::vector<std::string> ws;
    encoded_words(text, first_max, [&](std::string_view w) { ws.emplace_back(w); });
    FUZZ_CHECK(!ws.empty(), "no encoded-word");
    std::string all;
    for (std::size_t i = 0; i < ws.size(); ++i) {
        // One character may not fit a small first word; after that, every word fits.
        FUZZ_CHECK(ws[i].size() <= max_encoded_word || (i == 0 && first_max < max_encoded_word),
                   "encoded-word over 75 characters");
        const auto d = fuzz::decode_encoded_word(ws[i]);
        FUZZ_CHECK(d.has_value(), "not an encoded-word");
        FUZZ_CHECK(mailroom::detail::is_valid_utf8(*d), "encoded-word splits a character");
        FUZZ_CHECK(!d->empty() || text.empty(), "empty encoded-word");
        all += *d;
    }
    FUZZ_CHECK(all == text, "encoded-words don't read back");
}

void rfc2231(std::string_view text)
{
    std::string out = "x";
    rfc2231_append(out, text);
    std::string back;
    for (std::size_t i = 1; i < out.size(); ++i) {
        const char c = out[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7F &&
                       std::string_view("*'()<>@,;:\\\"/[]?= ").find(c) == std::string_view::npos,
                   "RFC 2231 value holds a character it may not");
        if (c == '%') {
            FUZZ_CHECK(i + 2 < out.size(), "truncated %XX");
            back += static_cast<char>(std::stoi(out.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            back += c;
        }
    }
    FUZZ_CHECK(back == text, "RFC 2231 value doesn't read back");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::input in(data, size);
    const std::uint8_t which = in.byte();
    const std::string name = "X-" + std::string(in.byte() % 80, 'n');
    const std::string_view text = in.rest();
    if (!mailroom::detail::is_valid_utf8(text) || mailroom::detail::has_control(text))
        return 0; // the builder refuses such text before it reaches the writers
    switch (which % 5) {
    case 0: unstructured(name, text); break;
    case 1: phrase(name, text); break;
    case 2: quoted(text); break;
    case 3: words(text, 1 + which / 5 % 80); break;
    default: rfc2231(text); break;
    }
    return 0;
}
