// mailroom::smtp::client: one ESMTP connection, driven by coroutines.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/mime/message.hpp>
#include <mailroom/smtp/capabilities.hpp>
#include <mailroom/smtp/client_options.hpp>
#include <mailroom/smtp/delivery_report.hpp>
#include <mailroom/smtp/send_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <memory>

namespace mailroom::smtp {

namespace asio = boost::asio;

/// One SMTP submission connection (RFC 5321, RFC 6409) over TCP, with TLS (STARTTLS or
/// implicit), SMTP AUTH, PIPELINING, CHUNKING, SIZE, 8BITMIME, SMTPUTF8 and DSN.
///
/// Every operation takes any completion token and defaults to `asio::deferred`, so
/// `co_await c.async_send(m)` works, and so do callbacks and `asio::use_future`. Handlers run
/// on the token's associated executor (the client's by default), never inside the call.
///
/// Sends may overlap: they are queued and run in order on the one connection; where the server
/// pipelines, each message's envelope is written behind the previous message's final dot, so a
/// message costs one round trip. Each send gets its own report.
///
/// Errors carry a code (`error_code`, see mailroom::error and smtp::reply_category) and, for
/// connect, diagnostics(); a send's report has its own diagnostics. After a protocol error, a
/// timeout, a lost connection or a 421 the connection is closed and never reused; queued sends
/// not yet past their final dot then fail with error::connection_lost and may be retried.
///
/// Cancellation: every operation supports terminal cancellation (its handler's cancellation
/// slot). A queued send that hasn't started is simply removed. Cancelling one in progress
/// closes the connection; the send then reports operation_aborted, or an `unknown` outcome if
/// its final dot was already written.
///
/// Thread safety: use a client from one thread or strand at a time. Destroying it closes the
/// connection and completes outstanding operations with operation_aborted.
class MAILROOM_API client {
public:
    using executor_type = asio::any_io_executor;

    client(executor_type ex, client_options opts);
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;
    ~client();

    executor_type get_executor() const noexcept;
    const client_options& options() const noexcept;

    /// Resolves and connects, reads the greeting, says EHLO, secures the connection as
    /// options().tls asks (then EHLO again), and authenticates when credentials are set.
    /// Handler: void(error_code). Errors: the phase's timeout (error::connect_timeout, ...),
    /// error::starttls_unavailable, error::tls_handshake_failed, error::certificate_rejected,
    /// error::starttls_injection, error::plaintext_auth_refused, AUTH failures (reply_category
    /// 535, 454, ... or the SASL errors), reply_category for a refused greeting or EHLO, and
    /// system errors (connection refused, ...). diagnostics() says which step failed.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = asio::deferred_t>
    auto async_connect(Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code)>(
            [](auto handler, std::shared_ptr<impl> i) {
                initiate_connect(std::move(i), std::move(handler));
            },
            token, impl_);
    }

    /// Sends one message to its envelope's recipients. Handler:
    /// void(error_code, delivery_report). The code is empty for `delivered` and `partial`
    /// outcomes (per-recipient refusals are in the report), error::delivery_status_unknown for
    /// `unknown`, and otherwise why nothing was delivered: the server's reply
    /// (reply_category), error::size_exceeded, error::smtputf8_unavailable,
    /// error::eight_bit_unavailable, error::connection_lost, a timeout, ...
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, delivery_report))
                  Token = asio::deferred_t>
    auto async_send(mime::message m, Token&& token = {})
    {
        return async_send(std::move(m), send_options{}, std::forward<Token>(token));
    }
    /// As above, with DSN requests (used where the server offers DSN, ignored elsewhere).
    /// Errors also: invalid_smtp_argument for an ENVID that can't be sent.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, delivery_report))
                  Token = asio::deferred_t>
    auto async_send(mime::message m, send_options o, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, delivery_report)>(
            [](auto handler, std::shared_ptr<impl> i, mime::message m, send_options o) {
                initiate_send(std::move(i), std::move(m), std::move(o), std::move(handler));
            },
            token, impl_, std::move(m), std::move(o));
    }

    /// NOOP, RSET and QUIT, queued behind any sends. QUIT closes the connection once answered
    /// (a connection reset in place of the answer is not an error). Handler: void(error_code).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = asio::deferred_t>
    auto async_noop(Token&& token = {})
    {
        return simple(command::noop, std::forward<Token>(token));
    }
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = asio::deferred_t>
    auto async_reset(Token&& token = {})
    {
        return simple(command::rset, std::forward<Token>(token));
    }
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = asio::deferred_t>
    auto async_quit(Token&& token = {})
    {
        return simple(command::quit, std::forward<Token>(token));
    }

    /// Closes the connection at once; outstanding operations complete with operation_aborted.
    void close() noexcept;

    /// True between a successful connect and a close, QUIT, or an error that broke the
    /// connection.
    bool is_open() const noexcept;
    /// True when the connection is TLS-protected.
    bool is_secure() const noexcept;
    /// What the server advertised in its last EHLO reply.
    const capabilities& server_capabilities() const noexcept;
    /// The mechanism used for AUTH, if the client authenticated.
    std::optional<auth_mechanism> authenticated_with() const noexcept;
    /// About the last failed connect or command: the step and the server's reply or the TLS
    /// error. Server text is untrusted.
    const diagnostics& last_diagnostics() const noexcept;

    struct impl;

private:
    enum class command { noop, rset, quit };

    template <class Token> auto simple(command c, Token&& token)
    {
        return asio::async_initiate<Token, void(error_code)>(
            [](auto handler, std::shared_ptr<impl> i, command c) {
                initiate_simple(std::move(i), c, std::move(handler));
            },
            token, impl_, c);
    }

    static void initiate_connect(std::shared_ptr<impl> i,
                                 asio::any_completion_handler<void(error_code)> h);
    static void initiate_send(std::shared_ptr<impl> i, mime::message m, send_options o,
                              asio::any_completion_handler<void(error_code, delivery_report)> h);
    static void initiate_simple(std::shared_ptr<impl> i, command c,
                                asio::any_completion_handler<void(error_code)> h);

    std::shared_ptr<impl> impl_;
};

} // namespace mailroom::smtp
