// Reading a message's envelope from its own headers (RFC 5322 §3.6.2, §3.6.3).

#include <mailroom/mime/message.hpp>

#include "encoding.hpp"
#include "message_data.hpp"
#include "recipient_list.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <vector>

namespace mailroom::mime {

namespace {

bool name_is(std::string_view field, std::string_view name)
{
    return field.size() == name.size() &&
           std::equal(field.begin(), field.end(), name.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

// Splits an address-list (RFC 5322 §3.4) into its mailboxes' texts: commas inside quotes,
// comments and angle brackets don't count, and a group's name and ';' are dropped.
std::vector<std::string> split_address_list(std::string_view v)
{
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false;
    int comment = 0;
    bool angle = false;
    auto flush = [&] {
        const auto b = cur.find_first_not_of(' ');
        if (b != std::string::npos)
            out.push_back(cur.substr(b, cur.find_last_not_of(' ') - b + 1));
        cur.clear();
    };
    for (std::size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        if ((quoted || comment) && c == '\\' && i + 1 < v.size()) {
            cur += c;
            cur += v[++i];
            continue;
        }
        if (quoted) {
            quoted = c != '"';
        } else if (comment) {
            comment += c == '(' ? 1 : c == ')' ? -1 : 0;
        } else if (c == '"') {
            quoted = true;
        } else if (c == '(') {
            comment = 1;
        } else if (c == '<') {
            angle = true;
        } else if (c == '>') {
            angle = false;
        } else if (!angle && c == ',') {
            flush();
            continue;
        } else if (!angle && c == ':') {
            cur.clear(); // a group's display name
            continue;
        } else if (!angle && c == ';') {
            flush();
            continue;
        }
        cur += c;
    }
    flush();
    return out;
}

bool has_8bit(std::string_view s)
{
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// What a message's header section says, and its fields without the Bcc ones.
struct head_info {
    explicit head_info(std::size_t max_recipients)
        : rcpts(max_recipients)
    {
    }
    std::string kept;
    std::optional<address> from, sender;
    detail::recipient_list rcpts;
    std::string message_id;
    bool header_8bit = false;
};

// RFC 5322 §2.2: a field name is printable US-ASCII other than ':'.
bool is_ftext(char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

// A field's name as readers take it: the text before the first ':', unfolded, with the white
// space before the colon dropped (RFC 5322 §4.5: obs-optional is `field-name *WSP ":"`, and so is
// each obsolete field; a fold there too, since some readers unfold first). Empty when the field has
// no valid name.
std::string field_name(std::string_view field)
{
    const auto colon = field.find(':');
    if (colon == std::string_view::npos)
        return {};
    std::string name;
    for (const char c : field.substr(0, colon))
        if (c != '\r' && c != '\n')
            name += c;
    name.erase(name.find_last_not_of(" \t") + 1);
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_ftext))
        return {};
    return name;
}

// A control character in a header field: any C0 octet but HTAB, and DEL. The field's CR and LF
// are its line breaks (every one a CRLF, as to_crlf_lines made them) and are not counted.
std::optional<unsigned char> control_in(std::string_view field)
{
    for (const char ch : field) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F)
            return c;
    }
    return std::nullopt;
}

// Reads the header fields of `head` (CRLF lines, each field with its continuation lines).
error_code parse_head(std::string_view head, head_info& h, diagnostics& diag)
{
    h.kept.reserve(head.size());
    // RFC 5322 §2.2.3: a line starting with white space continues the field above it. On the
    // first line there is none: a field with no name, which readers either join to nothing or
    // take as the start of the body. It is refused rather than guessed at.
    if (!head.empty() && (head[0] == ' ' || head[0] == '\t')) {
        diag = {"header", "the header section starts with a continuation line (white space), "
                          "which belongs to no field"};
        return make_error_code(mailroom::error::invalid_header_name);
    }
    std::size_t pos = 0;
    while (pos < head.size()) {
        std::size_t end = pos;
        do {
            end = head.find("\r\n", end) + 2;
        } while (end < head.size() && (head[end] == ' ' || head[end] == '\t'));
        const std::string_view field = head.substr(pos, end - pos);
        // One name for every check below: `Bcc :`, `BCC\t:` and `bcc:` are all Bcc.
        const std::string name = field_name(field);
        if (const auto c = control_in(field)) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(*c));
            diag = {name.empty() ? std::string("header") : name,
                    std::string("control character ") + hex + " in a header field"};
            return make_error_code(mailroom::error::control_character);
        }
        if (name.empty()) {
            // The line's start, so the user can find it (an mbox "From " line, say); only
            // printable ASCII is echoed.
            std::string start;
            for (const char c : field.substr(0, std::min<std::size_t>(field.find('\r'), 40)))
                start += c >= 0x20 && c < 0x7F ? c : '?';
            diag = {"header", "a header line without a field name of printable ASCII and ':': '" +
                                  start + "'"};
            return make_error_code(mailroom::error::invalid_header_name);
        }
        std::string value;
        for (char c : field.substr(field.find(':') + 1))
            if (c != '\r' && c != '\n')
                value += c == '\t' ? ' ' : c;
        const bool is_bcc = name_is(name, "Bcc");
        if (!is_bcc) {
            h.kept.append(field);
            h.header_8bit |= has_8bit(field);
        }
        auto addresses = [&](bool first_only) -> std::optional<mailroom::error> {
            for (const std::string& text : split_address_list(value)) {
                auto m = mailbox::parse(text, diag);
                if (!m) {
                    diag.field = name;
                    return static_cast<mailroom::error>(m.error().value());
                }
                if (first_only) {
                    (name_is(name, "Sender") ? h.sender : h.from) = m->address();
                    break;
                }
                if (h.rcpts.add(m->address()) == detail::recipient_list::outcome::too_many) {
                    diag = {name, "more than " + std::to_string(h.rcpts.max()) +
                                      " distinct recipients, the cap"};
                    return mailroom::error::too_many_recipients;
                }
            }
            return std::nullopt;
        };
        std::optional<mailroom::error> bad;
        if (name_is(name, "From") || name_is(name, "Sender"))
            bad = addresses(true);
        else if (name_is(name, "To") || name_is(name, "Cc") || is_bcc)
            bad = addresses(false);
        else if (name_is(name, "Message-ID"))
            h.message_id = value.substr(std::min(value.find_first_not_of(' '), value.size()));
        if (bad)
            return make_error_code(*bad);
        pos = end;
    }
    return {};
}

// RFC 5322 §2.1.1: no line over 998 octets, counted over CRLF text given in pieces.
struct line_limit {
    std::size_t line = 0;
    bool too_long = false;

    void feed(std::string_view s)
    {
        for (const char c : s) {
            if (c == '\r' || c == '\n')
                line = 0;
            else if (++line > 998)
                too_long = true;
        }
    }
};

// The checks after the headers and the body were read, and the envelope they give.
error_code make_envelope(head_info& h, const line_limit& lines, bool body_8bit,
                         mailroom::envelope& env, diagnostics& diag)
{
    if (lines.too_long) {
        diag = {"message", "a line longer than 998 octets"};
        return make_error_code(mailroom::error::line_too_long);
    }
    if (!h.from && !h.sender) {
        diag = {"From", "the message has no From or Sender header"};
        return make_error_code(mailroom::error::missing_from);
    }
    if (h.rcpts.empty()) {
        diag = {"To", "the message has no To, Cc or Bcc recipient"};
        return make_error_code(mailroom::error::no_recipients);
    }
    env.from = h.sender ? *h.sender : *h.from;
    env.recipients = std::move(h.rcpts).take();
    // UTF-8 in headers is RFC 6532 and needs SMTPUTF8; 8-bit body octets need 8BITMIME.
    env.smtputf8 = h.header_8bit || env.from.needs_smtputf8();
    for (const address& a : env.recipients)
        env.smtputf8 |= a.needs_smtputf8();
    env.eight_bit = body_8bit;
    return {};
}

} // namespace

result<message> message::from_wire(std::string bytes, diagnostics& diag)
{
    return from_wire(std::move(bytes), diag, {});
}

result<message> message::from_wire(std::string bytes, diagnostics& diag,
                                   const from_wire_options& opts)
{
    diag.clear();
    std::string wire = detail::to_crlf_lines(bytes);
    const std::size_t header_end = [&] {
        if (wire.starts_with("\r\n"))
            return std::size_t{0};
        const auto p = wire.find("\r\n\r\n");
        return p == std::string::npos ? wire.size() : p + 2;
    }();

    head_info h(opts.max_recipients);
    if (auto ec = parse_head(std::string_view(wire).substr(0, header_end), h, diag))
        return ec;
    const std::string_view body = std::string_view(wire).substr(header_end);
    line_limit lines;
    lines.feed(h.kept);
    lines.feed(body);
    mailroom::envelope env;
    if (auto ec = make_envelope(h, lines, has_8bit(body), env, diag))
        return ec;
    std::string kept = std::move(h.kept);
    kept.append(body);
    return from_bytes(std::move(kept), std::move(env), std::move(h.message_id));
}

result<message> message::from_wire_file(const std::filesystem::path& path, diagnostics& diag)
{
    return detail::from_wire_file(path, diag, {}, {});
}

result<message> message::from_wire_file(const std::filesystem::path& path, diagnostics& diag,
                                        const from_wire_options& opts)
{
    return detail::from_wire_file(path, diag, {}, opts);
}

result<message> detail::from_wire_file(const std::filesystem::path& path, diagnostics& diag,
                                       const wire_file_limits& limits,
                                       const from_wire_options& opts)
{
    diag.clear();
    auto unreadable = [&] {
        diag = {"", "cannot read '" + path.string() + "'"};
        return make_error_code(mailroom::error::file_unreadable);
    };
    file_chunks file;
    if (file.open(path))
        return unreadable();
    const std::uint64_t size = file.size();
    error_code ec;
    auto whole = [&]() -> result<message> {
        const std::string_view all = file.read(0, static_cast<std::size_t>(size), ec);
        if (ec)
            return unreadable();
        return message::from_wire(std::string(all), diag, opts);
    };
    if (size <= limits.whole)
        return whole();

    // The header section, made CRLF as from_wire does, up to the line break that starts the
    // empty line: that break is where the body starts, in the file and on the wire.
    constexpr std::size_t chunk = 64 * 1024;
    std::string head;
    std::optional<std::uint64_t> body_start;
    bool after_cr = false;
    for (std::uint64_t at = 0; !body_start && at < size;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - at));
        const std::string_view raw = file.read(at, n, ec);
        if (ec)
            return unreadable();
        for (std::size_t i = 0; i < raw.size(); ++i) {
            const char c = raw[i];
            if (c == '\n' && after_cr) { // the LF of a CRLF
                after_cr = false;
                continue;
            }
            after_cr = c == '\r';
            if (c != '\r' && c != '\n') {
                head += c;
            } else if (head.empty() || head.ends_with("\r\n")) {
                body_start = at + i;
                break;
            } else {
                head += "\r\n";
            }
        }
        // A header section this long (or a file with no empty line) is read as from_wire does.
        if (head.size() > limits.header)
            return whole();
        at += n;
    }
    if (!body_start && !head.ends_with("\r\n"))
        head += "\r\n"; // as to_crlf_lines ends the text

    head_info h(opts.max_recipients);
    if (auto e = parse_head(head, h, diag))
        return e;
    line_limit lines;
    lines.feed(h.kept);
    // The body is made CRLF here once, to check it and learn its size; the reader does the
    // same again from the file each time the message is written.
    std::uint64_t body_size = 0;
    bool body_8bit = false;
    if (body_start) {
        crlf_stream crlf;
        std::string buf;
        for (std::uint64_t at = *body_start; at < size;) {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - at));
            const std::string_view raw = file.read(at, n, ec);
            if (ec)
                return unreadable();
            buf.clear();
            crlf.append(buf, raw);
            at += n;
            if (at == size)
                crlf.finish(buf);
            lines.feed(buf);
            body_8bit |= has_8bit(buf);
            body_size += buf.size();
        }
    }
    mailroom::envelope env;
    if (auto e = make_envelope(h, lines, body_8bit, env, diag))
        return e;

    auto d = std::make_shared<message_data>();
    d->env = std::move(env);
    d->message_id = std::move(h.message_id);
    d->append_bytes(h.kept);
    if (body_start) {
        std::error_code fs_ec;
        auto abs = std::filesystem::absolute(path, fs_ec);
        d->append_file_crlf(fs_ec ? path : std::move(abs), size, *body_start, body_size);
    }
    return message(std::move(d));
}

message message::with_envelope(mailroom::envelope env) const
{
    auto d = std::make_shared<detail::message_data>(*data_);
    d->env = std::move(env);
    return message(std::move(d));
}

} // namespace mailroom::mime
