// mailroom::smtp::client: one ESMTP connection, driven by coroutines.
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/mime/message.hpp>
#include <mailroom/smtp/capabilities.hpp>
#include <mailroom/smtp/client_options.hpp>
#include <mailroom/smtp/delivery_report.hpp>
#include <mailroom/smtp/send_options.hpp>
#include <mailroom/with_diagnostics.hpp>

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
/// Every operation takes any completion token and defaults to
/// `with_diagnostics(asio::use_awaitable)` (default_token_t), so `co_await c.async_send(m)`
/// works in an `asio::awaitable` coroutine and a failure throws error_with_diagnostics (a
/// system_error with the step and the server's reply); other tokens (callbacks,
/// `asio::deferred`, `asio::as_tuple`, `asio::use_future`) get the error_code. Handlers run
/// on the token's associated executor (the client's by default), never inside the call.
///
/// Sends may overlap: they are queued and run in order on the one connection; where the server
/// pipelines, each message's envelope is written behind the previous message's final dot, so a
/// message costs one round trip. Each send gets its own report.
///
/// Errors carry a code (`error_code`, see mailroom::error and smtp::reply_category) and, for
/// connect and commands, last_diagnostics(); a send's report has its own diagnostics. After a
/// protocol error, a timeout, a lost connection or a 421 the connection is closed and never
/// reused; queued sends not yet past their final dot then fail with error::connection_lost and
/// may be retried.
///
/// Cancellation, through the handler's cancellation slot, by the operation's state:
/// - async_connect honours terminal cancellation: the connection is closed, operation_aborted.
/// - A send, NOOP, RSET or QUIT still queued, nothing of it written, honours any type
///   (terminal, partial, total): it is removed and completes with operation_aborted.
/// - Once its bytes are on the wire (it is running, or its envelope went out behind the
///   previous message) only terminal cancellation acts, by closing the connection: it completes
///   with operation_aborted, or, for a send whose final dot was already written,
///   error::delivery_status_unknown and an `unknown` outcome; the sends queued behind it then
///   fail with error::connection_lost. Partial and total cancellation are ignored then: what
///   was sent can't be taken back, so the operation runs to its end.
///
/// Thread safety: not thread-safe. Call a client only from the thread or strand that runs its
/// executor (give it a strand on a multi-threaded io_context): its own I/O runs there.
/// Destroying it closes the connection and completes outstanding operations with
/// operation_aborted.
class MAILROOM_API client {
public:
    /// Asio's polymorphic I/O executor.
    using executor_type = asio::any_io_executor;

    /// A client that will connect as `opts` say; nothing happens until async_connect().
    client(executor_type ex, client_options opts);
    /// Takes over the other's connection and queue; the moved-from client may only be
    /// destroyed or assigned to.
    client(client&&) noexcept;
    /// Closes this client's connection (as close()), then takes over the other's.
    client& operator=(client&&) noexcept;
    /// Closes the connection (as close()).
    ~client();

    /// The executor the client's I/O runs on, and its handlers by default.
    executor_type get_executor() const noexcept;
    /// The options given; once connected, `port` holds the port used (587 or 465 for 0).
    const client_options& options() const noexcept;

    /// Resolves and connects, reads the greeting, says EHLO (HELO where EHLO is refused and TLS
    /// isn't required), secures the connection as options().tls asks (then EHLO again), and
    /// authenticates when credentials are set. Handler: void(error_code).
    ///
    /// Errors: error::already_connected (open, connecting, or operations still queued); the
    /// phase's timeout (error::connect_timeout, error::tls_handshake_timeout,
    /// error::greeting_timeout, error::command_timeout); error::starttls_unavailable,
    /// error::starttls_injection, error::tls_handshake_failed, error::certificate_rejected;
    /// error::tls_configuration_invalid (certificate files that can't be loaded: permanent,
    /// found before anything is connected); error::starttls_unavailable too when credentials
    /// are set and opportunistic TLS didn't happen (transient: TLS may have been stripped on
    /// the path); error::plaintext_auth_refused (permanent) when TLS is off (tls_mode::none)
    /// and credentials::allow_plaintext isn't set; error::auth_mechanism_unavailable,
    /// error::invalid_credentials, error::saslprep_unsupported, the SASL errors, and AUTH refusals
    /// (reply_category 535, 454, ...); reply_category for a refused greeting, EHLO or HELO (any 4yz
    /// or 5yz, judged by its first digit, RFC 5321 §4.2.1); error::protocol_error for a 3yz where
    /// none fits; error::invalid_smtp_argument (an EHLO name that isn't a domain or address
    /// literal); malformed replies (error::protocol_error, error::bad_reply_code, ...);
    /// error::connection_lost; resolver and socket errors (host not found, connection
    /// refused, ...); operation_aborted. On failure the connection is closed and
    /// last_diagnostics() says which step failed; the client may connect again.
    /// Cancellation: terminal (see the class).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = default_token_t>
    auto async_connect(Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code)>(
            [](auto handler, std::shared_ptr<impl> i) {
                initiate_connect(std::move(i), std::move(handler));
            },
            token, impl_);
    }

    /// Sends one message to its envelope's recipients, queued behind earlier operations.
    /// Handler: void(error_code, delivery_report).
    ///
    /// The code is empty for `delivered` and `partial` outcomes (per-recipient refusals are in
    /// the report), error::delivery_status_unknown for `unknown`, and otherwise why nothing was
    /// delivered: error::not_connected (the client isn't open: completes at once, nothing
    /// queued); checks made before anything is written: error::no_recipients,
    /// error::size_exceeded, error::smtputf8_unavailable, error::eight_bit_unavailable,
    /// error::invalid_smtp_argument (and error::invalid_address, error::control_character for
    /// envelope paths that can't be sent); the server's refusal (reply_category: MAIL, every RCPT,
    /// DATA or the final reply; a 421 closes the connection); the phase's timeout
    /// (error::mail_timeout, error::rcpt_timeout, error::data_timeout,
    /// error::data_block_timeout); error::connection_lost; malformed or out-of-step replies
    /// (error::protocol_error, ...); the message can't be read (error::file_unreadable,
    /// error::file_changed) or has a line over 998 octets (error::line_too_long): the
    /// connection is then closed; operation_aborted. The report's `diag` says which step.
    /// Cancellation: any type while queued; only terminal once begun (see the class).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, delivery_report))
                  Token = default_token_t>
    auto async_send(mime::message m, Token&& token = {})
    {
        return async_send(std::move(m), send_options{}, std::forward<Token>(token));
    }
    /// As above, with DSN requests (used where the server offers DSN, ignored elsewhere).
    /// Errors also: error::invalid_smtp_argument for an ENVID or NOTIFY combination that can't
    /// be sent.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, delivery_report))
                  Token = default_token_t>
    auto async_send(mime::message m, send_options o, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, delivery_report)>(
            [](auto handler, std::shared_ptr<impl> i, mime::message msg, send_options opts) {
                initiate_send(std::move(i), std::move(msg), std::move(opts), std::move(handler));
            },
            token, impl_, std::move(m), std::move(o));
    }

    /// NOOP, queued behind any sends. Handler: void(error_code).
    ///
    /// Errors: error::not_connected (completes at once); reply_category for a reply other than
    /// 250 (a 421 closes the connection); error::command_timeout, error::connection_lost or a
    /// malformed reply, which close the connection; operation_aborted.
    /// Cancellation: any type while queued; only terminal once begun (see the class).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = default_token_t>
    auto async_noop(Token&& token = {})
    {
        return simple(command::noop, std::forward<Token>(token));
    }
    /// RSET, queued behind any sends. Handler: void(error_code). Errors and cancellation as
    /// for async_noop.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = default_token_t>
    auto async_reset(Token&& token = {})
    {
        return simple(command::rset, std::forward<Token>(token));
    }
    /// QUIT, queued behind any sends; the connection is closed once it is answered, whatever
    /// the answer. Handler: void(error_code).
    ///
    /// Errors: error::not_connected (completes at once); reply_category for a reply other than
    /// 221; error::command_timeout or a malformed reply; operation_aborted. A server that
    /// closes the connection instead of answering is not an error.
    /// Cancellation: any type while queued; only terminal once begun (see the class).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = default_token_t>
    auto async_quit(Token&& token = {})
    {
        return simple(command::quit, std::forward<Token>(token));
    }

    /// Closes the connection at once; outstanding operations complete with operation_aborted,
    /// except a send whose final dot (or last BDAT chunk) was written and not answered:
    /// error::delivery_status_unknown, outcome `unknown`.
    void close() noexcept;

    /// True between a successful connect and a close, QUIT, or an error that broke the
    /// connection.
    bool is_open() const noexcept;
    /// True for an open, idle connection (nothing queued) that the server has closed, or sent
    /// something on unasked (a 421 before closing), though nothing has read it yet: the next
    /// command would fail. A pool asks before lending a connection. One non-blocking peek at
    /// the socket.
    bool peer_closed() const noexcept;
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
            [](auto handler, std::shared_ptr<impl> i, command cmd) {
                initiate_simple(std::move(i), cmd, std::move(handler));
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

/// For with_diagnostics: the diagnostics of a client's connect and commands, as they stand
/// when the operation completes.
MAILROOM_API std::shared_ptr<const diagnostics>
diagnostics_source(const std::shared_ptr<client::impl>& i) noexcept;

} // namespace mailroom::smtp
