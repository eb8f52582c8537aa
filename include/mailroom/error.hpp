// mailroom: errors shared by every module.
//
// Every operation reports failure as a boost::system::error_code. Codes the library makes
// belong to mailroom::library_category(); callers test them against the conditions below
// (`ec == mailroom::condition::invalid_input`) rather than against single values. Text that
// explains a failure (which field, what was wrong) goes in a `diagnostics` object beside the
// code, never in the code itself.
#pragma once

#include <mailroom/config.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <type_traits>

/// Email submission for C++ services. Addresses, errors, the logger and the mailer facade are
/// here; the modules have their own namespaces: mime (messages), smtp (one connection), pool
/// (connection pools), limit (rate limits).
namespace mailroom {

/// Every operation reports failure as a Boost.System error code.
using boost::system::error_code;
/// A value or an error_code (Boost.System), returned by the synchronous operations.
using boost::system::result;

/// Errors made by mailroom itself, in library_category(). Compare codes against a condition
/// (`ec == condition::transient`) rather than single values where you can.
enum class error {
    // Bad input: nothing was sent or written.
    invalid_address = 1,  ///< not an RFC 5322 mailbox / RFC 5321 path
    address_too_long,     ///< local part > 64 octets, domain > 255, path > 256 (RFC 5321 §4.5.3.1)
    invalid_domain,       ///< domain is not a host name, IDN or address literal
    control_character,    ///< CR, LF, NUL or another control character where text is expected
    invalid_utf8,         ///< text is not well-formed UTF-8
    invalid_header_name,  ///< header field name is empty or not printable ASCII without ':'
    reserved_header,      ///< header is set by the builder itself (From, Bcc, Content-Type, ...)
    invalid_message_id,   ///< not an RFC 5322 msg-id `<left@right>`
    invalid_content_id,   ///< inline part's Content-ID is empty or not `dot-atom@dot-atom`
    invalid_uri,          ///< List-Unsubscribe URI with spaces, controls or '<' '>'
    invalid_filename,     ///< attachment name is empty or holds '/' or '\\'
    invalid_content_type, ///< not a `type/subtype` media type
    missing_from,         ///< a message needs a From mailbox
    no_recipients,        ///< a message needs at least one To, Cc or Bcc recipient
    file_unreadable,      ///< an attachment file can't be opened or read
    file_changed,         ///< an attachment file changed size between build and write
    line_too_long,        ///< a line over 998 octets where it can't be encoded

    // SMTP: the server (or something between) broke the protocol. The connection is out of step
    // and must be closed; a later attempt, maybe to another host, may work.
    protocol_error,      ///< a reply that breaks RFC 5321 §4.2: bare LF, control characters, ...
    bad_reply_code,      ///< a reply line that doesn't start with a 2xx-5xx code and ' ' or '-'
    reply_code_mismatch, ///< the lines of one multi-line reply carry different codes
    reply_line_too_long, ///< a reply line longer than the parser accepts
    reply_too_long,      ///< a reply with more lines or octets than the parser accepts

    // SMTP: bad input for a command line; nothing was sent.
    invalid_smtp_argument, ///< EHLO name, ESMTP parameter, SASL mechanism name not valid there
    invalid_credentials,   ///< credentials the mechanism can't carry (NUL, empty, bad token)
    saslprep_unsupported,  ///< non-ASCII SCRAM username or password: SASLprep is not implemented

    // SMTP authentication.
    auth_mechanism_unavailable,      ///< no mechanism both sides allow for the credentials given
    sasl_bad_challenge,              ///< challenge not base64, or not what the mechanism expects
    sasl_server_error,               ///< the SASL exchange carried a server error (SCRAM `e=`)
    sasl_incomplete,                 ///< the server accepted before the mechanism finished
    scram_server_signature_mismatch, ///< SCRAM server failed to prove it knows the password

    // SMTP connection and transport security.
    not_connected,          ///< the client has no open connection
    already_connected,      ///< connect on a client that is connected or connecting
    connection_lost,        ///< the server closed or reset the connection, or it broke
    starttls_unavailable,   ///< TLS required, but STARTTLS is not offered or was refused
    starttls_injection,     ///< data arrived after the 220 to STARTTLS, before TLS (RFC 3207 §5)
    tls_handshake_failed,   ///< the TLS handshake failed (protocol, cipher, certificate files)
    certificate_rejected,   ///< the server's certificate failed verification (chain or name)
    plaintext_auth_refused, ///< credentials would be sent without TLS, and that isn't allowed

    // SMTP: a message the server can't take as it is; nothing was sent.
    size_exceeded,         ///< larger than the server's SIZE limit (RFC 1870)
    smtputf8_unavailable,  ///< the message needs SMTPUTF8, which the server lacks (RFC 6531)
    eight_bit_unavailable, ///< the message has 8-bit parts; the server lacks 8BITMIME

    // SMTP: after the final dot, the reply never came: the message may have been delivered.
    delivery_status_unknown, ///< the final dot was written, its reply never came: maybe delivered

    // SMTP: deadlines, one per phase (RFC 5321 §4.5.3.2 and connect, TLS).
    connect_timeout,       ///< the TCP connect (timeouts::connect)
    tls_handshake_timeout, ///< the TLS handshake (timeouts::tls_handshake)
    greeting_timeout,      ///< the server's 220 greeting
    command_timeout,       ///< EHLO, STARTTLS, AUTH, NOOP, RSET, QUIT
    mail_timeout,          ///< MAIL FROM and its reply
    rcpt_timeout,          ///< the reply to a RCPT TO
    data_timeout,          ///< the reply to DATA
    data_block_timeout,    ///< writing message data
    data_end_timeout,      ///< the reply after the final dot

    // Rate limiting (mailroom::limit).
    invalid_limit,       ///< limiter options out of range: a zero rate, period or burst, ...
    cost_exceeds_burst,  ///< an acquisition costs more than a bucket can ever hold
    limit_wait_too_long, ///< the wait for the limiter would be longer than allowed

    // Connection pool (mailroom::pool) and mailer.
    invalid_pool_options,   ///< pool options out of range: no connections, a zero timeout, ...
    checkout_timeout,       ///< no connection became free within the pool's checkout timeout
    pool_closed,            ///< the pool is draining or closed: it takes no new checkouts
    invalid_mailer_options, ///< no providers, two with one name, a default that isn't there, ...
    unknown_provider,       ///< a send names a provider the mailer doesn't have
    no_route,               ///< no provider for the sender's domain, and no default

    // Configuration (appended, so earlier values keep their numbers).
    /// The TLS set-up can't load what tls_options names (CA file or directory, client
    /// certificate or key): permanent, a reconnect would fail the same way.
    tls_configuration_invalid,

    // Reliability (appended).
    /// More recipients than the message's or the builder's cap allows (a hostile or runaway
    /// To/Cc/Bcc list): invalid input.
    too_many_recipients,
    /// The endpoint's circuit breaker is open: its last connects failed (refused, timed out,
    /// no greeting), so sends fail at once until a probe connects. Transient.
    circuit_open,
    /// The send's own deadline passed while it waited (rate limiter, pool checkout, retry
    /// backoff) before it could start: a timeout, so transient too.
    send_deadline_exceeded,

    // Shared limit store (mailroom::redis), appended.
    /// A limit store's address can't be used: a malformed redis:// URL, a database number out
    /// of range, options out of range. Invalid input.
    invalid_redis_options,
    /// The Redis server can't be reached, or the connection to it was lost before the reply
    /// came. Transient: it reconnects with backoff.
    redis_unavailable,
    /// No reply from Redis within the connect or per-request deadline. A timeout.
    redis_timeout,
    /// Redis refused the credentials (WRONGPASS, NOAUTH, NOPERM on AUTH or SELECT): permanent,
    /// a reconnect fails the same way.
    redis_auth_failed,
    /// Redis answered with an error, or with a reply of a shape the caller can't use (a script
    /// that fails, a wrong type): permanent. The diagnostics carry the server's text.
    redis_error_reply,

    // HTTPS requests (mailroom::http) and OAuth2 tokens (mailroom::auth), appended.
    /// An http(s) URL that can't be used: not https (http only to a loopback address), no
    /// host, a bad port, characters a request line can't carry. Invalid input.
    invalid_url,
    /// No complete HTTP response within the request's deadline. A timeout.
    http_timeout,
    /// The server answered with a redirect (3xx), which is never followed: a token endpoint
    /// that moves is a configuration to fix, and following it could send secrets elsewhere.
    /// Permanent.
    http_redirect_refused,
    /// The response (head and body) is larger than the request allows. Permanent.
    http_response_too_large,
    /// The response is not HTTP/1.1 a parser accepts. Transient, like a malformed SMTP reply.
    http_protocol_error,
    /// A token source couldn't get an access token: the token endpoint failed (5xx, a
    /// network error, a timeout, a response that isn't a token) or the callback did. Transient:
    /// the source retries with backoff. The diagnostics carry the endpoint's `error` and
    /// `error_description` (never a secret).
    token_refresh_failed,
    /// The token endpoint refused the grant for good (`invalid_grant`, `invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, ... or another 4xx): a revoked refresh token,
    /// a wrong secret or key. Permanent: retrying sends the same credentials.
    token_refresh_refused,
    /// A token source's configuration can't be used: no token URL, a grant without its
    /// secret, a service-account key file that isn't JSON with an RSA private key. Permanent.
    invalid_token_source,

    // DKIM signing and delivery-status reports (mime)
    /// A DKIM key that can't be used: not a PEM private key, encrypted, neither RSA nor Ed25519,
    /// or an RSA key under 1024 bits (RFC 8301 §3.2). diag.detail says which. Invalid input.
    invalid_dkim_key,
    /// DKIM options that can't be used: a domain or selector that isn't a DNS name, a header
    /// list without From or with a name that isn't a field name. Invalid input.
    invalid_dkim_options,
    /// A message that can't be signed: no header section, or the signature couldn't be made.
    dkim_signing_failed,
    /// The input is not a delivery-status report (RFC 3464 / RFC 6522: multipart/report with
    /// a message/delivery-status part), or is one too broken to read. Invalid input.
    not_a_delivery_status,
    /// A delivery-status report larger, more deeply nested or with more parts or recipients
    /// than the parser accepts. Invalid input.
    delivery_status_too_large,
};

/// The category of `mailroom::error`, named "mailroom". One instance, comparable across
/// shared-library copies (a fixed id).
MAILROOM_API const boost::system::error_category& library_category() noexcept;

/// The error_code for `e`, in library_category(); makes `error_code ec = error::...` work.
inline error_code make_error_code(error e) noexcept
{
    return {static_cast<int>(e), library_category()};
}

/// What a caller usually wants to know about an error.
enum class condition {
    invalid_input = 1, ///< the caller's data is at fault: fix it, don't retry
    transient,         ///< may succeed if retried later
    permanent,         ///< will fail again the same way
    timeout,           ///< a deadline passed
    /// The message may have been delivered: the reply to the final dot (or last BDAT) never
    /// came. Never transient: retrying could deliver it twice (RFC 5321 §4.5.3.2, §6.1).
    unknown,
};

/// The category of `mailroom::condition`, named "mailroom.condition". A code matches its own
/// default condition (mailroom's codes; smtp::reply_category(): 4xx transient, 5xx permanent);
/// condition::transient also matches every timeout and the system's network errors
/// (connection refused, reset or aborted, unreachable, timed out, broken pipe, ...).
MAILROOM_API const boost::system::error_category& condition_category() noexcept;

/// The error_condition for `c`, in condition_category(); makes `ec == condition::...` work.
inline boost::system::error_condition make_error_condition(condition c) noexcept
{
    return {static_cast<int>(c), condition_category()};
}

/// Text beside an error code: which field or command failed and why. Safe to log: it never holds
/// credentials or message bodies.
struct diagnostics {
    std::string field;  ///< e.g. "To", "Subject", "attachment report.pdf"
    std::string detail; ///< e.g. "more than one '@'"

    /// Empties both fields.
    void clear()
    {
        field.clear();
        detail.clear();
    }
    /// "field: detail" or whichever of the two is set.
    MAILROOM_API std::string to_string() const;
};

} // namespace mailroom

/// @cond
// Boost.System opt-ins, not part of the API reference.
template <> struct boost::system::is_error_code_enum<mailroom::error> : std::true_type {
};
template <> struct boost::system::is_error_condition_enum<mailroom::condition> : std::true_type {
};
/// @endcond
