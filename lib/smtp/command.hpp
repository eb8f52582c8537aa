// Private: SMTP command lines (RFC 5321 §4.1) with their extension parameters. Pure, no I/O.
//
// Each function appends one complete command line, CRLF included, to `out`, or appends nothing
// and returns an error. Every argument is checked before anything is written: a CR or LF in an
// argument would end the command early and let the rest of the argument be read as a second
// command (command injection), so controls are refused here rather than escaped, and a '<' or
// '>' can't reach a path, where a lenient server might end the path early and read the rest as
// parameters.
#pragma once

#include <mailroom/address.hpp>
#include <mailroom/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. RFC 4954 §4 holds
/// AUTH to it too: an initial response that doesn't fit is sent after an empty challenge.
inline constexpr std::size_t max_command_line = 512;
/// RFC 3461 §4.4: the ENVID value, xtext-encoded, is at most 100 characters.
inline constexpr std::size_t max_envid = 100;
/// RFC 3461 §4.2: the ORCPT value (`rfc822;` and the xtext) is at most 500 characters.
inline constexpr std::size_t max_orcpt = 500;

/// BODY= of MAIL FROM (RFC 6152 §2; RFC 3030 §3 for BINARYMIME, which needs BDAT).
enum class body_type { unspecified, seven_bit, eight_bit_mime, binary_mime };

/// RET= of MAIL FROM (RFC 3461 §4.3): what a failure DSN returns of the message.
enum class dsn_ret { unspecified, full, headers };

/// NOTIFY= of RCPT TO (RFC 3461 §4.1): a set of flags; `never` can't be combined with others.
enum class dsn_notify : unsigned {
    unspecified = 0,
    success = 1,
    failure = 2,
    delay = 4,
    never = 8,
};
constexpr dsn_notify operator|(dsn_notify a, dsn_notify b) noexcept
{
    return static_cast<dsn_notify>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr bool has_flag(dsn_notify set, dsn_notify flag) noexcept
{
    return (static_cast<unsigned>(set) & static_cast<unsigned>(flag)) != 0;
}

/// Parameters of MAIL FROM. The caller sends only those the server advertised.
struct mail_parameters {
    std::optional<std::uint64_t> size; ///< SIZE= (RFC 1870): the message size estimate
    body_type body = body_type::unspecified;
    bool smtputf8 = false; ///< SMTPUTF8 (RFC 6531 §3.4); required for a non-ASCII reverse-path
    dsn_ret ret = dsn_ret::unspecified;
    /// ENVID= (RFC 3461 §4.4), raw: printable ASCII, xtext-encoded here; empty for none.
    std::string envid;
};

/// Parameters of RCPT TO.
struct rcpt_parameters {
    dsn_notify notify = dsn_notify::unspecified;
    /// ORCPT= (RFC 3461 §4.2) as the original recipient's address, raw: printable ASCII, sent
    /// as `rfc822;` + xtext. Empty for none. (A UTF-8 address would need RFC 6533's "utf-8"
    /// address type, which this doesn't write.)
    std::string orcpt;
};

/// Appends `in` as RFC 3461 §4 xtext: '!'..'~' except '+' and '=' as themselves, every other
/// octet as "+XX" (upper-case hex).
void xtext_append(std::string& out, std::string_view in);

/// `EHLO name` / `HELO name` (RFC 5321 §4.1.1.1). `name` is a domain (letters, digits,
/// hyphens, dots; labels of at most 63, at most 255 in all) or an address literal
/// (`[192.0.2.1]`, `[IPv6:2001:db8::1]`). Errors: control_character, invalid_smtp_argument.
error_code format_ehlo(std::string& out, std::string_view name);
error_code format_helo(std::string& out, std::string_view name);

/// `MAIL FROM:<path> params` (RFC 5321 §4.1.1.2). An empty `from` is the null reverse-path
/// `<>`. Errors: control_character (a control character anywhere), invalid_smtp_argument ('<'
/// or '>' in the path, a non-ASCII path without SMTPUTF8, an ENVID that isn't printable ASCII
/// or is too long).
error_code format_mail_from(std::string& out, const address& from, const mail_parameters& p = {});

/// `RCPT TO:<path> params` (RFC 5321 §4.1.1.3). Errors: invalid_address for an empty address,
/// control_character, invalid_smtp_argument (angle brackets, NEVER with other NOTIFY flags,
/// ORCPT not printable ASCII or too long).
error_code format_rcpt_to(std::string& out, const address& to, const rcpt_parameters& p = {});

void format_rset(std::string& out);     ///< RSET
void format_noop(std::string& out);     ///< NOOP
void format_quit(std::string& out);     ///< QUIT
void format_data(std::string& out);     ///< DATA
void format_starttls(std::string& out); ///< STARTTLS (RFC 3207)

/// `BDAT size` or `BDAT size LAST` (RFC 3030 §2). The chunk itself follows, unchanged.
void format_bdat(std::string& out, std::uint64_t size, bool last);

/// True when `AUTH mechanism initial-response` fits in max_command_line for an initial
/// response of `raw_size` octets before base64 (RFC 4954 §4).
bool auth_initial_response_fits(std::string_view mechanism, std::size_t raw_size) noexcept;

/// `AUTH mechanism [initial-response]` (RFC 4954 §4). `initial_response` is raw and sent as
/// base64, "=" when empty; nullopt sends none. Errors: invalid_smtp_argument for a mechanism
/// name that isn't an RFC 4422 sasl-mech, or when the line would exceed max_command_line (send
/// without an initial response instead).
error_code format_auth(std::string& out, std::string_view mechanism,
                       std::optional<std::string_view> initial_response);

/// A response to a 334 challenge: `response` as base64 (an empty line when empty).
void format_auth_response(std::string& out, std::string_view response);

/// `*`: cancels an AUTH exchange (RFC 4954 §4); the server answers 501.
void format_auth_cancel(std::string& out);

} // namespace mailroom::smtp::detail
