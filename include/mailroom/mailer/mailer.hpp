// mailroom::mailer: send mail through pooled, rate-limited providers, with retries.
#pragma once

#include <mailroom/address.hpp>
#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/mailer/mailer_options.hpp>
#include <mailroom/mailer/mailer_snapshot.hpp>
#include <mailroom/mailer/send_report.hpp>
#include <mailroom/mime/message.hpp>
#include <mailroom/with_diagnostics.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <memory>

namespace mailroom {

namespace asio = boost::asio;

namespace detail {
struct mailer_impl;
}

/// The facade a service uses: `co_await m.async_send(message)` from any number of coroutines.
/// Each send is routed to a provider (by its sender's domain, or as the request names), takes
/// its tokens from the provider's rate limiter before MAIL FROM, borrows a warm connection
/// from the provider's pool, and is retried on failures that happened before the final dot.
///
///     mailroom::mailer m(ex, {.providers = {{.name = "ses", .server = ses_options,
///                                            .pool = {.max_connections = 8},
///                                            .limits = {.buckets = {{.rate = 14}}}}}});
///     auto [ec, report] = co_await m.async_send(msg, asio::as_tuple(asio::deferred));
///
/// What is retried: a transient reply (4xx) to MAIL, RCPT (every recipient) or DATA or the
/// final dot, a lost connection or timeout before the final dot, a failed connect or checkout.
/// Never: permanent replies (5xx), bad input, an `unknown` outcome (the final dot was written
/// but its reply never came) unless retry_options::retry_unknown, a partial delivery. The
/// message, and so its Message-ID, is the same on every attempt. Replies that say "slow down"
/// or "quota exhausted" also go to the provider's limiter.
///
/// A server that isn't there: the provider's pool opens its circuit breaker
/// (pool::breaker_options), and the sends waiting for a connection fail at once with the last
/// connect's error, later ones with error::circuit_open. Such a send is retried (within
/// max_attempts and the deadline) no sooner than the breaker lets a probe through: the retry
/// waits for the longer of its backoff and the rest of the open period, and if that would end
/// past retry_options::deadline the send fails at once with its error, the diagnostics saying
/// "the circuit breaker stays open past the deadline". Every wait (rate limiter, connection,
/// backoff) ends by the send's deadline.
///
/// Thread safety: every member function may be called from any thread; each provider's work
/// runs on its own strand (unless its pool_options::single_threaded), so a multi-threaded
/// io_context is safe and one provider's backlog never holds up another. Handlers run on their
/// associated executor (the mailer's by default), never inside the call. Destroying the mailer
/// closes every connection and completes outstanding sends with operation_aborted (or
/// error::delivery_status_unknown where the final dot was already written).
class MAILROOM_API mailer {
public:
    /// Asio's polymorphic I/O executor.
    using executor_type = asio::any_io_executor;

    /// Makes each provider's pool and limiter; no connection is opened before a send needs one
    /// (or pool_options::min_idle asks). Throws system_error(error::invalid_mailer_options,
    /// error::invalid_domain for a sender_domains pattern, or the pool's or limiter's option
    /// error) saying which provider and field is wrong.
    mailer(executor_type ex, mailer_options options);
    /// Takes over the other's providers; the moved-from mailer may only be destroyed or
    /// assigned to.
    mailer(mailer&&) noexcept;
    /// Closes this mailer (as close()), then takes over the other's providers.
    mailer& operator=(mailer&&) noexcept;
    /// Closes the mailer (as close()).
    ~mailer();

    /// The executor given; handlers run there unless they have their own.
    executor_type get_executor() const noexcept;

    /// Sends `m` to its envelope's recipients, routed by its sender (MAIL FROM) domain.
    /// Handler: void(error_code, send_report).
    ///
    /// The code is empty when the message was delivered to every recipient or some (partial:
    /// the report says which were refused), error::delivery_status_unknown for an unknown
    /// outcome, and otherwise the last attempt's error: a server reply (smtp::reply_category),
    /// a connection or TLS error, a timeout, the limiter's (error::cost_exceeds_burst,
    /// error::limit_wait_too_long) and the pool's (error::checkout_timeout, a failed
    /// connect's error, error::circuit_open), error::send_deadline_exceeded (the deadline
    /// passed while the first attempt waited for the limiter or a connection; once an attempt
    /// has failed, its error is kept instead), and at once, nothing attempted: error::no_route,
    /// error::unknown_provider, error::pool_closed (after async_shutdown() or close()). When
    /// retry_options::deadline or max_attempts stops the retries, the code is the last
    /// attempt's and the report's diagnostics say so.
    /// Cancellation: while the send waits (rate limiter, pool checkout, retry backoff), any
    /// type: it takes nothing (its rate-limiter tokens are given back), sends nothing, and
    /// completes with operation_aborted. Once an SMTP transaction is under way, only terminal
    /// cancellation, which closes its connection: operation_aborted, or
    /// error::delivery_status_unknown (outcome `unknown`) when the final dot was written;
    /// partial and total cancellation then let the transaction end as it will, with no retry
    /// after it. A send that completed before the cancellation reached it keeps its result.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, send_report))
                  Token = default_token_t>
    auto async_send(mime::message m, Token&& token = {})
    {
        return async_send(std::move(m), send_request{}, std::forward<Token>(token));
    }
    /// As above, with per-call choices (send_request): a provider to use whatever the routing
    /// (error::unknown_provider when there is none by that name), DSN requests, retries.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, send_report))
                  Token = default_token_t>
    auto async_send(mime::message m, send_request r, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, send_report)>(
            [](auto handler, std::shared_ptr<detail::mailer_impl> i, mime::message msg,
               send_request req) {
                initiate_send(std::move(i), std::move(msg), std::move(req), std::move(handler));
            },
            token, impl_, std::move(m), std::move(r));
    }

    /// Graceful shutdown: new sends fail with error::pool_closed; sends waiting for a
    /// connection or using one finish; then every connection says QUIT. Handler:
    /// void(error_code), with an empty code once every pool is drained. A send that asks for a
    /// connection after the shutdown began (one waiting for the rate limiter, or between
    /// attempts) fails with error::pool_closed, possibly after the handler has run.
    /// Cancellation: not supported.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = asio::deferred_t>
    auto async_shutdown(Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code)>(
            [](auto handler, std::shared_ptr<detail::mailer_impl> i) {
                initiate_shutdown(std::move(i), std::move(handler));
            },
            token, impl_);
    }

    /// Closes every connection now; sends waiting or in progress complete with
    /// operation_aborted (or error::delivery_status_unknown, an unknown outcome), and new ones
    /// fail with error::pool_closed.
    void close() noexcept;

    /// The provider a message from `sender` would be routed to (its name), or error::no_route
    /// (only with mailer_options::require_route).
    result<std::string> route(const mailroom::address& sender) const;

    /// Counters, gauges and histograms now, per provider.
    mailer_snapshot snapshot() const;

private:
    static void initiate_send(std::shared_ptr<detail::mailer_impl> i, mime::message m,
                              send_request r,
                              asio::any_completion_handler<void(error_code, send_report)> h);
    static void initiate_shutdown(std::shared_ptr<detail::mailer_impl> i,
                                  asio::any_completion_handler<void(error_code)> h);

    std::shared_ptr<detail::mailer_impl> impl_;
};

} // namespace mailroom
