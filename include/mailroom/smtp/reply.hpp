// mailroom::smtp::reply: one SMTP server reply, and its RFC 3463 enhanced status code.
#pragma once

#include <mailroom/config.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// SMTP submission: one ESMTP connection (client) with its options and reports, and the
/// protocol's vocabulary (replies, capabilities, reply codes as error codes, SASL mechanisms).
namespace mailroom::smtp {

/// An RFC 3463 enhanced mail system status code, `class.subject.detail` (e.g. 5.1.1).
struct enhanced_status {
    int cls = 0;     ///< class: 2 success, 4 persistent transient failure, 5 permanent failure
    int subject = 0; ///< 0..999: 1 addressing, 2 mailbox, 3 mail system, 4 network, ...
    int detail = 0;  ///< 0..999

    /// "5.1.1".
    MAILROOM_API std::string to_string() const;

    /// Parses `class.subject.detail` at the start of `text`, followed by a space or the end
    /// (RFC 3463 §2: class 2, 4 or 5; one to three digits each, no leading zeros). Returns
    /// nothing if `text` doesn't start with one.
    MAILROOM_API static std::optional<enhanced_status> parse_prefix(std::string_view text) noexcept;

    friend bool operator==(const enhanced_status&, const enhanced_status&) = default;
};

/// One reply (RFC 5321 §4.2): a three-digit code and one or more lines of text.
///
/// The text is the server's, untrusted: the parser guarantees no control characters other than
/// TAB, but it may hold any other octet (UTF-8 with SMTPUTF8, RFC 6531 §3.7.4).
struct reply {
    int code = 0; ///< 200..559
    /// The enhanced status code the first line starts with, when the server advertised
    /// ENHANCEDSTATUSCODES (RFC 2034) and its class agrees with the reply code.
    std::optional<enhanced_status> status;
    /// The text of each line after the code and separator, without CRLF; an enhanced status
    /// code stays at the start of the text, as sent.
    std::vector<std::string> lines;

    bool positive_completion() const noexcept { return code / 100 == 2; }   ///< 2xx
    bool positive_intermediate() const noexcept { return code / 100 == 3; } ///< 3xx
    bool transient_negative() const noexcept { return code / 100 == 4; }    ///< 4xx
    bool permanent_negative() const noexcept { return code / 100 == 5; }    ///< 5xx

    /// The reply as it was sent, for logs and diagnostics: "250-first\n250 last" (lines joined
    /// by '\n', no CR, no trailing newline).
    MAILROOM_API std::string to_string() const;

    friend bool operator==(const reply&, const reply&) = default;
};

} // namespace mailroom::smtp
