// mailroom::mailer: send mail through pooled, rate-limited providers, with retries.
#pragma once

#include <mailroom/address.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/mailer/mailer_options.hpp>
#include <mailroom/mailer/mailer_snapshot.hpp>
#include <mailroom/mailer/send_report.hpp>
#include <mailroom/mime/message.hpp>

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
/// Thread safety: async_send and snapshot may be called from any thread; each provider's work
/// runs on its own strand, so a multi-threaded io_context is safe and one provider's backlog
/// never holds up another. Handlers run on their associated executor (the mailer's by
/// default), never inside the call. Destroying the mailer closes every connection and
/// completes outstanding sends with operation_aborted (or an `unknown` outcome).
class MAILROOM_API mailer {
public:
    using executor_type = asio::any_io_executor;

    /// Throws system_error(error::invalid_mailer_options, or the pool's or limiter's option
    /// error) saying which provider and field is wrong.
    mailer(executor_type ex, mailer_options options);
    mailer(mailer&&) noexcept;
    mailer& operator=(mailer&&) noexcept;
    ~mailer();

    executor_type get_executor() const noexcept;

    /// Sends `m` to its envelope's recipients. Handler: void(error_code, send_report).
    ///
    /// The code is empty when the message was delivered to every recipient or some (partial:
    /// the report says which were refused), error::delivery_status_unknown for an unknown
    /// outcome, and otherwise the last attempt's error: a server reply (smtp::reply_category),
    /// a connection or TLS error, a timeout, error::unknown_provider, error::no_route, or the
    /// limiter's and pool's errors. When retry_options::deadline stops the retries, the code
    /// is the last attempt's and the report's diagnostics say so.
    /// Cancellation: terminal. A send that hasn't reached the server takes nothing and sends
    /// nothing; one in progress closes its connection (the report says whether the final dot
    /// was written: then the outcome is unknown).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, send_report))
                  Token = asio::deferred_t>
    auto async_send(mime::message m, Token&& token = {})
    {
        return async_send(std::move(m), send_request{}, std::forward<Token>(token));
    }
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, send_report))
                  Token = asio::deferred_t>
    auto async_send(mime::message m, send_request r, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, send_report)>(
            [](auto handler, std::shared_ptr<detail::mailer_impl> i, mime::message m,
               send_request r) {
                initiate_send(std::move(i), std::move(m), std::move(r), std::move(handler));
            },
            token, impl_, std::move(m), std::move(r));
    }

    /// Graceful shutdown: new sends fail with error::pool_closed, sends already made finish,
    /// then every connection says QUIT. Handler: void(error_code).
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
    /// operation_aborted (or an unknown outcome), and new ones fail with error::pool_closed.
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
