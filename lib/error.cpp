#include <mailroom/error.hpp>
#include <mailroom/error_with_diagnostics.hpp>

#include <boost/system/errc.hpp>

#include <string_view>

namespace mailroom {

namespace {

class library_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps categories equal across shared-library copies.
    constexpr library_category_impl() noexcept
        : error_category(0x6d61696c726f6f6dULL)
    {
    }
    const char* name() const noexcept override { return "mailroom"; }

    std::string message(int ev) const override
    {
        switch (static_cast<error>(ev)) {
        case error::invalid_address: return "invalid email address";
        case error::address_too_long: return "email address too long";
        case error::invalid_domain: return "invalid domain";
        case error::control_character: return "control character in text";
        case error::invalid_utf8: return "text is not valid UTF-8";
        case error::invalid_header_name: return "invalid header field name";
        case error::reserved_header: return "header is set by the message builder";
        case error::invalid_message_id: return "invalid Message-ID";
        case error::invalid_content_id: return "invalid Content-ID";
        case error::invalid_uri: return "invalid URI";
        case error::invalid_filename: return "invalid attachment file name";
        case error::invalid_content_type: return "invalid media type";
        case error::missing_from: return "message has no From address";
        case error::no_recipients: return "message has no recipients";
        case error::file_unreadable: return "file cannot be read";
        case error::file_changed: return "file changed while the message was written";
        case error::line_too_long: return "line longer than 998 octets";
        case error::protocol_error: return "SMTP protocol error";
        case error::bad_reply_code: return "malformed SMTP reply code";
        case error::reply_code_mismatch: return "SMTP reply code changed within a reply";
        case error::reply_line_too_long: return "SMTP reply line too long";
        case error::reply_too_long: return "SMTP reply too long";
        case error::invalid_smtp_argument: return "invalid SMTP command argument";
        case error::invalid_credentials: return "credentials not usable with this mechanism";
        case error::saslprep_unsupported:
            return "non-ASCII SCRAM credentials are not supported (no SASLprep)";
        case error::auth_mechanism_unavailable: return "no usable authentication mechanism";
        case error::sasl_bad_challenge: return "malformed or unexpected SASL challenge";
        case error::sasl_server_error: return "SASL exchange failed at the server";
        case error::sasl_incomplete: return "server accepted authentication before it finished";
        case error::scram_server_signature_mismatch: return "SCRAM server signature mismatch";
        case error::not_connected: return "not connected";
        case error::already_connected: return "already connected";
        case error::connection_lost: return "connection lost";
        case error::starttls_unavailable: return "TLS required but STARTTLS is unavailable";
        case error::starttls_injection: return "data injected before the TLS handshake";
        case error::tls_handshake_failed: return "TLS handshake failed";
        case error::certificate_rejected: return "server certificate rejected";
        case error::plaintext_auth_refused: return "authentication without TLS refused";
        case error::size_exceeded: return "message exceeds the server's size limit";
        case error::smtputf8_unavailable: return "message needs SMTPUTF8, which the server lacks";
        case error::eight_bit_unavailable: return "message needs 8BITMIME, which the server lacks";
        case error::delivery_status_unknown:
            return "delivery status unknown: the connection failed after the message was sent";
        case error::connect_timeout: return "timed out connecting";
        case error::tls_handshake_timeout: return "timed out in the TLS handshake";
        case error::greeting_timeout: return "timed out waiting for the greeting";
        case error::command_timeout: return "timed out waiting for a reply";
        case error::mail_timeout: return "timed out in MAIL FROM";
        case error::rcpt_timeout: return "timed out in RCPT TO";
        case error::data_timeout: return "timed out waiting for the reply to DATA";
        case error::data_block_timeout: return "timed out sending message data";
        case error::data_end_timeout: return "timed out waiting for the final reply";
        case error::invalid_limit: return "invalid rate limit options";
        case error::cost_exceeds_burst: return "cost exceeds what a rate limit bucket can hold";
        case error::limit_wait_too_long: return "the wait for the rate limiter would be too long";
        case error::invalid_pool_options: return "invalid connection pool options";
        case error::checkout_timeout: return "timed out waiting for a pooled connection";
        case error::pool_closed: return "the connection pool is closed";
        case error::invalid_mailer_options: return "invalid mailer options";
        case error::unknown_provider: return "no provider by that name";
        case error::no_route: return "no provider for the sender's domain";
        case error::tls_configuration_invalid: return "TLS certificate files can't be loaded";
        case error::too_many_recipients: return "too many recipients";
        case error::circuit_open:
            return "the server's recent connects failed; sends fail fast until it answers again";
        case error::send_deadline_exceeded: return "the send's deadline passed while it waited";
        case error::invalid_redis_options: return "invalid Redis store options";
        case error::redis_unavailable: return "the Redis store can't be reached";
        case error::redis_timeout: return "timed out waiting for Redis";
        case error::redis_auth_failed: return "Redis refused the credentials";
        case error::redis_error_reply: return "Redis answered with an error";
        case error::invalid_url: return "the URL can't be used";
        case error::http_timeout: return "timed out waiting for the HTTP response";
        case error::http_redirect_refused:
            return "the HTTP server redirected; redirects are not followed";
        case error::http_response_too_large: return "the HTTP response is larger than allowed";
        case error::http_protocol_error: return "the HTTP response is malformed";
        case error::token_refresh_failed: return "the access token could not be refreshed";
        case error::token_refresh_refused: return "the token endpoint refused the grant";
        case error::invalid_token_source: return "the token source's configuration can't be used";
        case error::invalid_dkim_key: return "the DKIM key can't be used";
        case error::invalid_dkim_options: return "the DKIM options can't be used";
        case error::dkim_signing_failed: return "the message can't be DKIM-signed";
        case error::not_a_delivery_status: return "not a delivery-status report";
        case error::delivery_status_too_large:
            return "the delivery-status report is larger than the parser accepts";
        }
        return "unknown mailroom error";
    }

    boost::system::error_condition default_error_condition(int ev) const noexcept override
    {
        switch (static_cast<error>(ev)) {
        case error::file_unreadable:
        case error::file_changed: return make_error_condition(condition::permanent);
        // A server that breaks the protocol or fails the SASL exchange may be fixed or replaced
        // (another MX, a restarted process); like Postfix, which defers on malformed replies
        // and, by default, on SASL failures (smtp_sasl_auth_soft_bounce), we call it transient.
        // A server signature mismatch is a security failure, but retrying later is still the
        // safe outcome: nothing was sent, and bouncing the message would let an attacker on
        // the path destroy mail.
        case error::protocol_error:
        case error::bad_reply_code:
        case error::reply_code_mismatch:
        case error::reply_line_too_long:
        case error::reply_too_long:
        case error::sasl_bad_challenge:
        case error::sasl_server_error:
        case error::sasl_incomplete:
        case error::scram_server_signature_mismatch:
            return make_error_condition(condition::transient);
        case error::not_connected:
        case error::connection_lost: return make_error_condition(condition::transient);
        case error::delivery_status_unknown: return make_error_condition(condition::unknown);
        // TLS that was required and didn't happen: like Postfix with a TLS policy, defer
        // rather than bounce, so an attacker who strips STARTTLS can't destroy mail either.
        case error::starttls_unavailable:
        case error::starttls_injection:
        case error::tls_handshake_failed:
        case error::certificate_rejected: return make_error_condition(condition::transient);
        case error::connect_timeout:
        case error::tls_handshake_timeout:
        case error::greeting_timeout:
        case error::command_timeout:
        case error::mail_timeout:
        case error::rcpt_timeout:
        case error::data_timeout:
        case error::data_block_timeout:
        case error::data_end_timeout: return make_error_condition(condition::timeout);
        // Neither side can fix these without a configuration change. plaintext_auth_refused
        // is only the caller's own choice (tls_mode::none without allow_plaintext): TLS that
        // an attacker could have stripped (opportunistic STARTTLS not offered, with
        // credentials to send) is starttls_unavailable, transient above.
        case error::auth_mechanism_unavailable:
        case error::plaintext_auth_refused:
        case error::size_exceeded:
        case error::smtputf8_unavailable:
        case error::eight_bit_unavailable:
        case error::already_connected:
        // A certificate file that can't be loaded fails every connection the same way.
        case error::tls_configuration_invalid: return make_error_condition(condition::permanent);
        // A request larger than a bucket's burst fails the same way every time, like a message
        // over the server's SIZE; a wait that would be too long may fit later.
        case error::cost_exceeds_burst: return make_error_condition(condition::permanent);
        case error::limit_wait_too_long: return make_error_condition(condition::transient);
        // A pool that closes is shutting down; the message may go later or through another.
        case error::pool_closed: return make_error_condition(condition::transient);
        case error::checkout_timeout: return make_error_condition(condition::timeout);
        // An open breaker closes again once a probe connects.
        case error::circuit_open: return make_error_condition(condition::transient);
        case error::send_deadline_exceeded: return make_error_condition(condition::timeout);
        case error::redis_unavailable: return make_error_condition(condition::transient);
        case error::redis_timeout: return make_error_condition(condition::timeout);
        case error::redis_auth_failed:
        case error::redis_error_reply: return make_error_condition(condition::permanent);
        case error::http_timeout: return make_error_condition(condition::timeout);
        case error::http_protocol_error:
        case error::token_refresh_failed: return make_error_condition(condition::transient);
        case error::http_redirect_refused:
        case error::http_response_too_large:
        case error::token_refresh_refused:
        case error::invalid_token_source:
        case error::dkim_signing_failed: return make_error_condition(condition::permanent);
        default: return make_error_condition(condition::invalid_input);
        }
    }
};

class condition_category_impl final : public boost::system::error_category {
public:
    constexpr condition_category_impl() noexcept
        : error_category(0x6d61696c726f6f6eULL)
    {
    }
    const char* name() const noexcept override { return "mailroom.condition"; }

    // Beyond each code's default condition: a timeout is also transient (retrying may work),
    // and the operating system's network errors are transient.
    bool equivalent(const boost::system::error_code& ec, int cond) const noexcept override
    {
        if (ec.default_error_condition() == boost::system::error_condition(cond, *this))
            return true;
        if (static_cast<condition>(cond) != condition::transient)
            return false;
        if (ec.default_error_condition() ==
            boost::system::error_condition(static_cast<int>(condition::timeout), *this))
            return true;
        if (ec.category() == boost::system::system_category() ||
            ec.category() == boost::system::generic_category()) {
            using boost::system::errc::errc_t;
            switch (static_cast<errc_t>(ec.default_error_condition().value())) {
            case errc_t::connection_refused:
            case errc_t::connection_reset:
            case errc_t::connection_aborted:
            case errc_t::host_unreachable:
            case errc_t::network_unreachable:
            case errc_t::network_down:
            case errc_t::network_reset:
            case errc_t::timed_out:
            case errc_t::broken_pipe:
            case errc_t::not_connected: return true;
            default: return false;
            }
        }
        // The resolver's "host not found" and "try again" (Asio's netdb category, matched by
        // name: a program that compiles Asio itself has its own copy of the category). Both
        // the pool and the mailer retry them, with backoff: DNS answers change, and a retry is
        // bounded by the mailer's attempts and deadline.
        if (std::string_view(ec.category().name()) == "asio.netdb")
            return ec.value() == 1 /* HOST_NOT_FOUND */ || ec.value() == 2 /* TRY_AGAIN */;
        return false;
    }
    std::string message(int ev) const override
    {
        switch (static_cast<condition>(ev)) {
        case condition::invalid_input: return "invalid input";
        case condition::transient: return "transient failure";
        case condition::permanent: return "permanent failure";
        case condition::timeout: return "timed out";
        case condition::unknown: return "outcome unknown (the message may have been delivered)";
        }
        return "unknown condition";
    }
};

constexpr library_category_impl library_instance;
constexpr condition_category_impl condition_instance;

} // namespace

const boost::system::error_category& library_category() noexcept
{
    return library_instance;
}
const boost::system::error_category& condition_category() noexcept
{
    return condition_instance;
}

error_with_diagnostics::error_with_diagnostics(error_code ec, diagnostics d)
    : boost::system::system_error(ec, d.to_string())
    , diag_(std::move(d))
{
}

error_with_diagnostics::~error_with_diagnostics() = default;

std::string diagnostics::to_string() const
{
    if (field.empty())
        return detail;
    if (detail.empty())
        return field;
    return field + ": " + detail;
}

} // namespace mailroom
