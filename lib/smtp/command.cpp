// SMTP command lines, checked before they are written.
#include "command.hpp"

#include "detail/base64.hpp"
#include "text.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace mailroom::smtp::detail {

namespace {

constexpr std::string_view crlf = "\r\n";

// RFC 5321 §4.1.2: Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
// Labels up to 63 octets and the name up to 255 (RFC 1035 §2.3.4, RFC 5321 §4.5.3.1.2).
bool is_domain(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 255)
        return false;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = s.find('.', start);
        const std::size_t end = dot == std::string_view::npos ? s.size() : dot;
        const std::string_view label = s.substr(start, end - start);
        if (label.empty() || label.size() > 63 || !is_alnum(label.front()) ||
            !is_alnum(label.back()))
            return false;
        if (!std::all_of(label.begin(), label.end(),
                         [](char c) { return is_alnum(c) || c == '-'; }))
            return false;
        if (dot == std::string_view::npos)
            return true;
        start = dot + 1;
    }
}

// RFC 5321 §4.1.3: address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
// General-address-literal ) "]". General literals have no use from a client; not accepted.
bool is_address_literal(std::string_view s)
{
    if (s.size() < 3 || s.front() != '[' || s.back() != ']')
        return false;
    const std::string inner(s.substr(1, s.size() - 2));
    unsigned char buf[16];
    if (inner.size() > 5 && iequals(std::string_view(inner).substr(0, 5), "IPv6:"))
        return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
    return inet_pton(AF_INET, inner.c_str(), buf) == 1;
}

error_code format_greeting(std::string& out, std::string_view verb, std::string_view name)
{
    if (has_ascii_control(name))
        return error::control_character;
    if (!is_domain(name) && !is_address_literal(name))
        return error::invalid_smtp_argument;
    out.reserve(out.size() + verb.size() + 1 + name.size() + 2);
    out += verb;
    out += ' ';
    out += name;
    out += crlf;
    return {};
}

// The checks every path gets, whatever parsed it: a default-constructed or future-constructed
// address must not be able to smuggle a line end either.
error_code check_path(std::string_view path)
{
    if (has_ascii_control(path))
        return error::control_character;
    if (path.find_first_of("<>") != std::string_view::npos)
        return error::invalid_smtp_argument;
    return {};
}

// RFC 3461 §4.2, §4.4: ENVID and ORCPT values are printable US-ASCII (and SP) before xtext.
error_code check_dsn_text(std::string_view s)
{
    if (has_ascii_control(s))
        return error::control_character;
    if (!is_ascii(s))
        return error::invalid_smtp_argument;
    return {};
}

std::size_t xtext_size(std::string_view in) noexcept
{
    std::size_t n = 0;
    for (char c : in)
        n += (c > ' ' && c <= '~' && c != '+' && c != '=') ? 1 : 3;
    return n;
}

} // namespace

void xtext_append(std::string& out, std::string_view in)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    for (char c : in) {
        const auto u = static_cast<unsigned char>(c);
        if (u > ' ' && u <= '~' && c != '+' && c != '=') {
            out += c;
        } else {
            out += '+';
            out += hex[u >> 4];
            out += hex[u & 15];
        }
    }
}

error_code format_ehlo(std::string& out, std::string_view name)
{
    return format_greeting(out, "EHLO", name);
}

error_code format_helo(std::string& out, std::string_view name)
{
    return format_greeting(out, "HELO", name);
}

error_code format_mail_from(std::string& out, const address& from, const mail_parameters& p)
{
    const std::string path = from.empty() ? std::string() : from.str();
    if (auto ec = check_path(path))
        return ec;
    // RFC 6531 §3.4: a non-ASCII mailbox may only be sent in a transaction that declared
    // SMTPUTF8; without it the server would have to guess the charset.
    if (!is_ascii(path) && !p.smtputf8)
        return error::invalid_smtp_argument;
    if (auto ec = check_dsn_text(p.envid))
        return ec;
    if (xtext_size(p.envid) > max_envid)
        return error::invalid_smtp_argument;

    std::string line = "MAIL FROM:<";
    line += path;
    line += '>';
    if (p.size) {
        line += " SIZE=";
        line += std::to_string(*p.size);
    }
    switch (p.body) {
    case body_type::unspecified: break;
    case body_type::seven_bit: line += " BODY=7BIT"; break;
    case body_type::eight_bit_mime: line += " BODY=8BITMIME"; break;
    case body_type::binary_mime: line += " BODY=BINARYMIME"; break;
    }
    if (p.smtputf8)
        line += " SMTPUTF8";
    switch (p.ret) {
    case dsn_ret::unspecified: break;
    case dsn_ret::full: line += " RET=FULL"; break;
    case dsn_ret::headers: line += " RET=HDRS"; break;
    }
    if (!p.envid.empty()) {
        line += " ENVID=";
        xtext_append(line, p.envid);
    }
    line += crlf;
    out += line;
    return {};
}

error_code format_rcpt_to(std::string& out, const address& to, const rcpt_parameters& p)
{
    if (to.empty())
        return error::invalid_address;
    const std::string path = to.str();
    if (auto ec = check_path(path))
        return ec;
    if (has_flag(p.notify, dsn_notify::never) && p.notify != dsn_notify::never)
        return error::invalid_smtp_argument; // RFC 3461 §4.1: NEVER stands alone
    if (auto ec = check_dsn_text(p.orcpt))
        return ec;
    if (!p.orcpt.empty() && 7 + xtext_size(p.orcpt) > max_orcpt)
        return error::invalid_smtp_argument;

    std::string line = "RCPT TO:<";
    line += path;
    line += '>';
    if (p.notify != dsn_notify::unspecified) {
        line += " NOTIFY=";
        if (p.notify == dsn_notify::never) {
            line += "NEVER";
        } else {
            bool first = true;
            auto add = [&](dsn_notify f, std::string_view name) {
                if (!has_flag(p.notify, f))
                    return;
                if (!first)
                    line += ',';
                line += name;
                first = false;
            };
            add(dsn_notify::success, "SUCCESS");
            add(dsn_notify::failure, "FAILURE");
            add(dsn_notify::delay, "DELAY");
        }
    }
    if (!p.orcpt.empty()) {
        line += " ORCPT=rfc822;";
        xtext_append(line, p.orcpt);
    }
    line += crlf;
    out += line;
    return {};
}

void format_rset(std::string& out)
{
    out += "RSET\r\n";
}
void format_noop(std::string& out)
{
    out += "NOOP\r\n";
}
void format_quit(std::string& out)
{
    out += "QUIT\r\n";
}
void format_data(std::string& out)
{
    out += "DATA\r\n";
}
void format_starttls(std::string& out)
{
    out += "STARTTLS\r\n";
}

void format_bdat(std::string& out, std::uint64_t size, bool last)
{
    out += "BDAT ";
    out += std::to_string(size);
    if (last)
        out += " LAST";
    out += crlf;
}

namespace {

// RFC 4422 §3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / HYPHEN /
// UNDERSCORE.
bool is_sasl_mech(std::string_view s) noexcept
{
    return !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_';
    });
}

std::size_t auth_line_size(std::string_view mechanism, std::size_t raw_size) noexcept
{
    // "AUTH " mech " " (base64 or "=") CRLF
    const std::size_t ir = raw_size ? mailroom::detail::base64_size(raw_size) : 1;
    return 5 + mechanism.size() + 1 + ir + 2;
}

} // namespace

bool auth_initial_response_fits(std::string_view mechanism, std::size_t raw_size) noexcept
{
    return auth_line_size(mechanism, raw_size) <= max_command_line;
}

error_code format_auth(std::string& out, std::string_view mechanism,
                       std::optional<std::string_view> initial_response)
{
    if (has_ascii_control(mechanism))
        return error::control_character;
    if (!is_sasl_mech(mechanism))
        return error::invalid_smtp_argument;
    if (initial_response && !auth_initial_response_fits(mechanism, initial_response->size()))
        return error::invalid_smtp_argument;
    out += "AUTH ";
    out += mechanism;
    if (initial_response) {
        out += ' ';
        // RFC 4954 §4: a zero-length initial response is sent as "=".
        if (initial_response->empty())
            out += '=';
        else
            mailroom::detail::base64_append(out, *initial_response);
    }
    out += crlf;
    return {};
}

void format_auth_response(std::string& out, std::string_view response)
{
    mailroom::detail::base64_append(out, response);
    out += crlf;
}

void format_auth_cancel(std::string& out)
{
    out += "*\r\n";
}

} // namespace mailroom::smtp::detail
