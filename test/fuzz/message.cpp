// Fuzz target: message::from_wire (an .eml read as `sendmail -t` does) and the message's wire
// form; the same bytes through from_wire_file's streaming path.
//
// Input: the message's bytes. Invariants for what from_wire accepts:
// - the wire form (serialize(), and the reader's chunks, which must agree) is CRLF-only, ends
//   in CRLF, has no line over 998 octets, and is exactly size() octets;
// - no Bcc field is left in it, however the name is written (`Bcc:`, `BCC :`, `bcc\t:`, a fold
//   before the colon: RFC 5322 §4.5.8); the header section holds no control character but TAB
//   and doesn't start with a continuation line;
// - the envelope has a sender and distinct recipients;
// - it is a fixed point: from_wire of the wire form gives the same wire form, the same sender
//   and recipients that are a subset of the first (the Bcc ones are gone), or no_recipients;
// - from_wire_file with the body streamed from the file agrees with from_wire: the same error,
//   or the same wire form, size, envelope and Message-ID.
#include "fuzz.hpp"

#include "mime/message_data.hpp"

#include <mailroom/mime/message.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

using mailroom::diagnostics;
using mailroom::error_code;
using mailroom::mime::message;

namespace {

bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

std::string serialize(const message& m)
{
    const auto s = m.serialize();
    FUZZ_CHECK(s.has_value(), "serialize() of an in-memory message failed");
    std::string chunks;
    auto r = m.open();
    FUZZ_CHECK(r.remaining() == m.size(), "a new reader's remaining() isn't size()");
    for (;;) {
        error_code ec;
        const std::string_view c = r.next(ec);
        FUZZ_CHECK(!ec, "the reader failed");
        if (c.empty())
            break;
        chunks.append(c);
        FUZZ_CHECK(r.remaining() == m.size() - chunks.size(), "reader's remaining() is off");
    }
    FUZZ_CHECK(chunks == *s, "the reader's chunks differ from serialize()");
    return *s;
}

// The header section of a wire form: up to the empty line, or all of it.
std::string_view header_section(std::string_view wire)
{
    if (wire.starts_with("\r\n"))
        return {};
    const auto p = wire.find("\r\n\r\n");
    return p == std::string_view::npos ? wire : wire.substr(0, p + 2);
}

void check_wire(const message& m, std::string_view wire)
{
    FUZZ_CHECK(wire.size() == m.size(), "size() isn't the wire form's length");
    FUZZ_CHECK(fuzz::crlf_only(wire), "bare CR or LF in the wire form");
    FUZZ_CHECK(wire.empty() || wire.ends_with("\r\n"), "the wire form doesn't end in CRLF");
    FUZZ_CHECK(fuzz::longest_line(wire) <= 998, "a line over 998 octets");

    const std::string_view head = header_section(wire);
    FUZZ_CHECK(head.empty() || (head[0] != ' ' && head[0] != '\t'),
               "the header section starts with a continuation line");
    for (const char ch : head) {
        const auto c = static_cast<unsigned char>(ch);
        FUZZ_CHECK(c >= 0x20 || c == '\t' || c == '\r' || c == '\n', "control in a header");
        FUZZ_CHECK(c != 0x7F, "DEL in a header");
    }
    // Each field with its continuation lines; its name is what precedes the first ':' once
    // unfolded, white space before the colon dropped.
    std::size_t pos = 0;
    while (pos < head.size()) {
        std::size_t end = pos;
        do {
            end = head.find("\r\n", end) + 2;
        } while (end < head.size() && (head[end] == ' ' || head[end] == '\t'));
        std::string name;
        for (const char c : head.substr(pos, end - pos)) {
            if (c == ':')
                break;
            if (c != '\r' && c != '\n')
                name += c;
        }
        name.erase(name.find_last_not_of(" \t") + 1);
        FUZZ_CHECK(!iequals(name, "bcc"), "a Bcc field left in the wire form");
        pos = end;
    }

    const auto& env = m.envelope();
    FUZZ_CHECK(!env.from.empty(), "no sender");
    FUZZ_CHECK(!env.recipients.empty(), "no recipients");
    for (std::size_t i = 0; i < env.recipients.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            FUZZ_CHECK(!(env.recipients[i] == env.recipients[j]), "a recipient twice");
    FUZZ_CHECK(m.message_id().find_first_of("\r\n") == std::string::npos, "CR/LF in Message-ID");
}

// An in-memory file (memfd) holding `bytes`, named by its /proc/self/fd path: from_wire_file
// opens files by name, and a file system write per run would be most of the run's time.
const std::filesystem::path& scratch(std::string_view bytes)
{
    static const int fd = memfd_create("mailroom-fuzz-message", 0);
    static const std::filesystem::path path = "/proc/self/fd/" + std::to_string(fd);
    FUZZ_CHECK(fd >= 0 && ftruncate(fd, 0) == 0 &&
                   pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()),
               "can't write the scratch file");
    return path;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    diagnostics diag;
    const auto m = message::from_wire(bytes, diag);

    // The streaming path of from_wire_file, whatever the file's size.
    {
        diagnostics fdiag;
        const auto fm = mailroom::mime::detail::from_wire_file(scratch(bytes), fdiag,
                                                               {.whole = 0, .header = 4096});
        FUZZ_CHECK(m.has_value() == fm.has_value(),
                   "from_wire_file accepts what from_wire doesn't, "
                   "or the other way round");
        if (!m) {
            FUZZ_CHECK(m.error() == fm.error(), "from_wire_file fails otherwise than from_wire");
        } else {
            const std::string a = serialize(*m);
            FUZZ_CHECK(serialize(*fm) == a, "from_wire_file's wire form differs");
            FUZZ_CHECK(fm->size() == m->size(), "from_wire_file's size() differs");
            FUZZ_CHECK(fm->envelope().from == m->envelope().from &&
                           fm->envelope().recipients == m->envelope().recipients &&
                           fm->envelope().smtputf8 == m->envelope().smtputf8 &&
                           fm->envelope().eight_bit == m->envelope().eight_bit,
                       "from_wire_file's envelope differs");
            FUZZ_CHECK(fm->message_id() == m->message_id(), "from_wire_file's Message-ID differs");
        }
    }
    if (!m)
        return 0;

    const std::string wire = serialize(*m);
    check_wire(*m, wire);

    const auto again = message::from_wire(wire, diag);
    if (!again) {
        FUZZ_CHECK(again.error() == mailroom::error::no_recipients,
                   "the wire form doesn't read back");
        return 0;
    }
    FUZZ_CHECK(serialize(*again) == wire, "from_wire of the wire form changes it");
    FUZZ_CHECK(again->envelope().from == m->envelope().from, "the sender changes on re-reading");
    for (const auto& r : again->envelope().recipients)
        FUZZ_CHECK(std::find(m->envelope().recipients.begin(), m->envelope().recipients.end(), r) !=
                       m->envelope().recipients.end(),
                   "a recipient appears on re-reading");
    return 0;
}
