// mailroom::mime::parse_delivery_status: bounces and other delivery-status notifications
// (RFC 3464, RFC 6522 multipart/report, RFC 6533 for internationalized addresses) read into data
// a service can match against what it sent.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailroom::mime {

/// What an MTA did with a recipient: a DSN's `Action` field (RFC 3464 §2.3.3).
enum class dsn_action {
    failed,    ///< could not be delivered, and the MTA gave up: a bounce
    delayed,   ///< not delivered yet; the MTA keeps trying (see will_retry_until)
    delivered, ///< delivered to the recipient's mailbox
    relayed,   ///< handed on to a system that sends no DSNs
    expanded,  ///< delivered, and forwarded to more recipients (a list or alias)
};

/// The action's name as RFC 3464 writes it: "failed", "delayed", ...
MAILROOM_API std::string_view to_string(dsn_action a) noexcept;

/// A typed field value, `type; text` (RFC 3464 §2.1.2): the address type of a recipient
/// (`rfc822`, `utf-8`), the name type of an MTA (`dns`, `x-local-hostname`) or the diagnostic
/// type (`smtp`, `x-unix`, `x-postfix`).
struct typed_value {
    /// The type before the ';', lower-cased and without comments; empty when the field had no
    /// ';' (some MTAs write the bare text).
    std::string type;
    /// The text after the ';', unfolded and trimmed. Addresses and MTA names lose their
    /// comments and the angle brackets some MTAs put around an address; diagnostic text is kept
    /// as written (its parentheses are text, not comments).
    std::string value;

    /// Equal type and value.
    friend bool operator==(const typed_value&, const typed_value&) = default;
};

/// An RFC 3463 enhanced status code, `class.subject.detail`, from a DSN's `Status` field.
struct enhanced_status {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    unsigned klass = 0;
    /// The subject: 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network and routing,
    /// 5 mail delivery protocol, 6 message content, 7 security (RFC 3463 §3).
    unsigned subject = 0;
    /// The detail within the subject (e.g. 1 in 5.1.1, bad destination mailbox address).
    unsigned detail = 0;
    /// The code as written, e.g. "5.1.1".
    std::string code;
    /// Text the MTA wrote after the code (its comment, without the parentheses), e.g.
    /// "permanent failure"; usually empty.
    std::string text;

    /// A permanent failure (class 5).
    bool permanent() const noexcept { return klass == 5; }
    /// A transient failure (class 4): the MTA may still deliver.
    bool transient() const noexcept { return klass == 4; }
};

/// One recipient's fields: a per-recipient group of the report (RFC 3464 §2.3). Each member is
/// empty when the report didn't have the field (or had it in a form that couldn't be read;
/// the parser's error then says which).
struct dsn_recipient {
    /// `Original-Recipient`: the address as the sender gave it (the ORCPT parameter).
    std::optional<typed_value> original_recipient;
    /// `Final-Recipient` (required): the address the MTA tried to deliver to.
    std::optional<typed_value> final_recipient;
    /// `Action` (required).
    std::optional<dsn_action> action;
    /// `Status` (required).
    std::optional<enhanced_status> status;
    /// `Remote-MTA`: the server that reported the problem, e.g. {"dns", "mx.example.com"}.
    std::optional<typed_value> remote_mta;
    /// `Diagnostic-Code`, e.g. {"smtp", "550 5.1.1 <bob@example.com>: user unknown"}.
    std::optional<typed_value> diagnostic_code;
    /// `Last-Attempt-Date`, an RFC 5322 date-time as written (unfolded).
    std::optional<std::string> last_attempt_date;
    /// `Will-Retry-Until` (with action delayed), an RFC 5322 date-time as written.
    std::optional<std::string> will_retry_until;
    /// `Final-Log-ID`: the reporting MTA's own id for the delivery attempt.
    std::optional<std::string> final_log_id;
    /// Every other field of the group (extensions such as `X-Postfix-Sender`), name and
    /// unfolded value, in order.
    std::vector<std::pair<std::string, std::string>> other_fields;
};

/// The header fields of the message the report is about, from its returned part
/// (message/rfc822, message/global, text/rfc822-headers or message/global-headers), so a
/// bounce can be matched to what was sent. Values are unfolded and trimmed, otherwise as
/// written (RFC 2047 encoded-words are not decoded).
struct returned_headers {
    /// `Message-ID`, as written, e.g. "<1234.abcd@example.com>".
    std::optional<std::string> message_id;
    /// `Subject`.
    std::optional<std::string> subject;
    /// `From`.
    std::optional<std::string> from;
    /// `To`.
    std::optional<std::string> to;
    /// `Date`.
    std::optional<std::string> date;
    /// True when the part held only the header section (text/rfc822-headers,
    /// message/global-headers), false when it held the whole message.
    bool headers_only = false;
};

/// A delivery-status report as parse_delivery_status read it. After an error it holds
/// whatever could be read before and around the problem, and `complete` is false.
struct delivery_status {
    /// `Reporting-MTA` (required): the MTA that wrote the report, e.g. {"dns", "mx.example"}.
    std::optional<typed_value> reporting_mta;
    /// `DSN-Gateway`: the gateway that turned a foreign report into this one.
    std::optional<typed_value> dsn_gateway;
    /// `Received-From-MTA`: the MTA the reporting MTA got the message from.
    std::optional<typed_value> received_from_mta;
    /// `Original-Envelope-Id`: the ENVID the sender gave (RFC 3461), xtext-decoded.
    std::optional<std::string> original_envelope_id;
    /// `Arrival-Date`: when the reporting MTA got the message, an RFC 5322 date-time as
    /// written.
    std::optional<std::string> arrival_date;
    /// Every other per-message field (extensions such as `X-Postfix-Queue-ID`), name and
    /// unfolded value, in order.
    std::vector<std::pair<std::string, std::string>> other_fields;
    /// The per-recipient groups, in order.
    std::vector<dsn_recipient> recipients;
    /// The returned message's headers, when the report had a returned part.
    std::optional<returned_headers> original;
    /// The report's status part is message/global-delivery-status (RFC 6533): addresses and
    /// text may be UTF-8.
    bool global = false;
    /// The whole report was read and every required field was there: parse_delivery_status
    /// returned no error.
    bool complete = false;
};

/// Bounds on what parse_delivery_status reads; past one it stops with
/// error::delivery_status_too_large, keeping what it read.
struct delivery_status_options {
    /// The most octets read; a longer input is read up to this many. Bounces usually return
    /// the whole message, so this is the size of the largest message sent plus a little.
    std::size_t max_size = std::size_t{10} * 1024 * 1024;
    /// The deepest MIME nesting of multiparts and returned messages (the top level is 1).
    std::size_t max_depth = 8;
    /// The most MIME body parts, counted over every multipart.
    std::size_t max_parts = 100;
    /// The most per-recipient groups.
    std::size_t max_recipients = 1000;
    /// The most fields in the status part, per-message and per-recipient together.
    std::size_t max_fields = 20000;
};

/// Reads the delivery-status report in `bytes` (a whole message in wire form, CRLF or LF line
/// ends; an mbox "From " line at its start is skipped) into `report`, replacing what it held.
///
/// The report is a multipart/report with report-type delivery-status (RFC 6522) holding a
/// message/delivery-status part (RFC 3464) or message/global-delivery-status (RFC 6533), and
/// usually the returned message or its headers. It may be nested in other multiparts (a
/// forwarded bounce). Fields are read case-insensitively, unfolded, with comments removed
/// where RFC 3464 allows them; the status part may be base64 or quoted-printable encoded.
/// Time and memory are linear in the input's size.
///
/// Returns no error when the report was read whole with every required field (then
/// `report.complete` is true), and otherwise, with `report` holding whatever could be read
/// (every field read before and after the problem) and `diag` saying what was wrong:
/// - error::not_a_delivery_status: not a multipart/report of delivery-status, no status part,
///   a status part outside a multipart/report, a missing closing boundary, a missing or
///   unreadable required field (Reporting-MTA; Final-Recipient, Action or Status of a
///   recipient: diag.field names it, e.g. "recipient 2 Status"), a status part whose
///   transfer encoding can't be decoded.
/// - error::delivery_status_too_large: more than `opts` allows (size, depth, parts,
///   recipients, fields); what was read within the bounds is kept.
///
/// Thread safety: a pure function; concurrent calls with different arguments are safe.
[[nodiscard]] MAILROOM_API error_code
parse_delivery_status(std::string_view bytes, delivery_status& report, diagnostics& diag,
                      const delivery_status_options& opts = {});

} // namespace mailroom::mime
