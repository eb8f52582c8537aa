// Fuzz target: address and mailbox parsing (RFC 5321 §4.1.2, RFC 5322 §3.4, IDNA 2008).
//
// Input: one octet choosing address::parse or mailbox::parse, then the text. Invariants for
// what parses:
// - the address is in its own canonical form: str() is local@domain_ascii, parses again to an
//   equal address with the same str(), also with spaces around it (TAB is refused as a control
//   character); the ASCII domain is ASCII, the local part fits RFC 5321's 64 octets and the
//   path its 256; SMTPUTF8 is needed exactly when the local part isn't ASCII; nothing holds a
//   control character or bad UTF-8;
// - a mailbox's display name is one the message builder accepts (UTF-8, no controls), and the
//   mailbox written as a header field (To:) is CRLF-only with no line over 998 octets, and
//   parses back to the same address, and to the same name when it needed no encoded-word.
#include "fuzz.hpp"
#include "rfc2047.hpp"

#include "detail/utf8.hpp"
#include "mime/header.hpp"

#include <mailroom/address.hpp>

#include <string>

using mailroom::address;
using mailroom::mailbox;

namespace {

bool ascii(std::string_view s)
{
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    return true;
}

void check_address(const address& a)
{
    using namespace mailroom::detail;
    FUZZ_CHECK(!a.empty(), "a parsed address is empty");
    FUZZ_CHECK(a.str() == a.local_part() + "@" + a.domain_ascii(), "str() isn't local@domain");
    FUZZ_CHECK(ascii(a.domain_ascii()), "A-label domain isn't ASCII");
    FUZZ_CHECK(a.local_part().size() <= 64, "local part over 64 octets");
    FUZZ_CHECK(a.str().size() + 2 <= 256, "path over 256 octets");
    FUZZ_CHECK(a.needs_smtputf8() == !ascii(a.local_part()), "SMTPUTF8 flag");
    FUZZ_CHECK(is_valid_utf8(a.str()) && is_valid_utf8(a.domain()), "bad UTF-8 in an address");
    FUZZ_CHECK(!has_control(a.str()) && !has_control(a.domain()), "control in an address");

    const auto again = address::parse(a.str());
    FUZZ_CHECK(again.has_value(), "str() doesn't parse");
    FUZZ_CHECK(*again == a && again->str() == a.str(), "str() parses to another address");
    const auto spaced = address::parse("  " + a.str() + " ");
    FUZZ_CHECK(spaced.has_value() && *spaced == a, "white space around str() changes it");
}

void check_mailbox(const mailbox& m)
{
    using namespace mailroom::detail;
    check_address(m.address());
    const std::string& name = m.display_name();
    FUZZ_CHECK(is_valid_utf8(name) && !has_control(name), "display name the builder refuses");

    std::string out;
    mailroom::mime::detail::write_mailbox_header(out, "To", {&m, 1});
    FUZZ_CHECK(fuzz::crlf_only(out) && out.ends_with("\r\n"), "To: field isn't CRLF lines");
    FUZZ_CHECK(fuzz::longest_line(out) <= 998, "To: line over 998 octets");
    const std::string unfolded = fuzz::unfold(out);
    const std::string v = unfolded.substr(3, unfolded.size() - 5);
    // mailbox::parse refuses more than 4096 octets (hostile input); encoded-words make a long
    // name longer than it was, so a long one may be written beyond what parse takes back.
    mailroom::diagnostics diag;
    const auto back = mailbox::parse(v, diag);
    if (v.size() > 4096) {
        FUZZ_CHECK(!back && diag.detail == "longer than 4096 octets",
                   "a mailbox over 4096 octets isn't refused as too long");
        return;
    }
    FUZZ_CHECK(back.has_value(), "a written mailbox doesn't parse");
    FUZZ_CHECK(back->address() == m.address(), "a written mailbox parses to another address");
    if (v.find("=?") == std::string::npos)
        FUZZ_CHECK(back->display_name() == name, "a written mailbox parses to another name");
    if (!name.empty()) {
        std::string_view rest;
        const auto decoded = fuzz::decode_phrase(v, rest);
        FUZZ_CHECK(decoded && *decoded == name, "the written display name doesn't read back");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::input in(data, size);
    const bool as_mailbox = in.byte() & 1;
    const std::string_view text = in.rest();
    mailroom::diagnostics diag;
    if (as_mailbox) {
        if (const auto m = mailbox::parse(text, diag))
            check_mailbox(*m);
        else
            FUZZ_CHECK(!diag.detail.empty(), "an error without a detail");
    } else {
        if (const auto a = address::parse(text, diag))
            check_address(*a);
        else
            FUZZ_CHECK(!diag.detail.empty(), "an error without a detail");
    }
    return 0;
}
