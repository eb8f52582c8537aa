// Reading a message's envelope from its own headers (RFC 5322 §3.6.2, §3.6.3).

#include <mailroom/mime/message.hpp>

#include "encoding.hpp"
#include "message_data.hpp"

#include <algorithm>
#include <cctype>
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

} // namespace

result<message> message::from_wire(std::string bytes, diagnostics& diag)
{
    diag.clear();
    std::string wire = detail::to_crlf_lines(bytes);
    const std::size_t header_end = [&] {
        if (wire.starts_with("\r\n"))
            return std::size_t{0};
        const auto p = wire.find("\r\n\r\n");
        return p == std::string::npos ? wire.size() : p + 2;
    }();

    // Each field with its continuation lines; Bcc fields are cut out of the bytes.
    std::string kept;
    kept.reserve(wire.size());
    mailroom::envelope env;
    std::optional<address> from, sender;
    std::string message_id;
    std::vector<address> rcpts;
    bool header_8bit = false;
    std::size_t pos = 0;
    while (pos < header_end) {
        std::size_t end = pos;
        do {
            end = wire.find("\r\n", end) + 2;
        } while (end < header_end && (wire[end] == ' ' || wire[end] == '\t'));
        const std::string_view field(wire.data() + pos, end - pos);
        const auto colon = field.find(':');
        const std::string_view name = field.substr(0, colon == std::string_view::npos ? 0 : colon);
        std::string value;
        if (colon != std::string_view::npos)
            for (char c : field.substr(colon + 1))
                if (c != '\r' && c != '\n')
                    value += c == '\t' ? ' ' : c;
        const bool is_bcc = name_is(name, "Bcc");
        if (!is_bcc) {
            kept.append(field);
            header_8bit |= has_8bit(field);
        }
        auto addresses = [&](bool first_only) -> std::optional<mailroom::error> {
            for (const std::string& text : split_address_list(value)) {
                auto m = mailbox::parse(text, diag);
                if (!m) {
                    diag.field = std::string(name);
                    return static_cast<mailroom::error>(m.error().value());
                }
                if (first_only) {
                    (name_is(name, "Sender") ? sender : from) = m->address();
                    break;
                }
                if (std::find(rcpts.begin(), rcpts.end(), m->address()) == rcpts.end())
                    rcpts.push_back(m->address());
            }
            return std::nullopt;
        };
        std::optional<mailroom::error> bad;
        if (name_is(name, "From") || name_is(name, "Sender"))
            bad = addresses(true);
        else if (name_is(name, "To") || name_is(name, "Cc") || is_bcc)
            bad = addresses(false);
        else if (name_is(name, "Message-ID"))
            message_id = value.substr(std::min(value.find_first_not_of(' '), value.size()));
        if (bad)
            return make_error_code(*bad);
        pos = end;
    }
    kept.append(wire, header_end, std::string::npos);

    std::size_t line = 0;
    for (std::size_t i = 0; i < kept.size(); ++i) {
        if (kept[i] == '\r') {
            ++i;
            line = 0;
        } else if (++line > 998) {
            diag = {"message", "a line longer than 998 octets"};
            return make_error_code(mailroom::error::line_too_long);
        }
    }
    if (!from && !sender) {
        diag = {"From", "the message has no From or Sender header"};
        return make_error_code(mailroom::error::missing_from);
    }
    if (rcpts.empty()) {
        diag = {"To", "the message has no To, Cc or Bcc recipient"};
        return make_error_code(mailroom::error::no_recipients);
    }
    env.from = sender ? *sender : *from;
    env.recipients = std::move(rcpts);
    // UTF-8 in headers is RFC 6532 and needs SMTPUTF8; 8-bit body octets need 8BITMIME.
    env.smtputf8 = header_8bit || env.from.needs_smtputf8();
    for (const address& a : env.recipients)
        env.smtputf8 |= a.needs_smtputf8();
    env.eight_bit = has_8bit(std::string_view(wire).substr(header_end));
    return from_bytes(std::move(kept), std::move(env), std::move(message_id));
}

message message::with_envelope(mailroom::envelope env) const
{
    auto d = std::make_shared<detail::message_data>(*data_);
    d->env = std::move(env);
    return message(std::move(d));
}

} // namespace mailroom::mime
