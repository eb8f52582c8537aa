// mailroom::limit::limiter: one provider's rate limiter for coroutines (Asio).
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/limit/limiter_snapshot.hpp>
#include <mailroom/limit/permit.hpp>
#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/limit/signal.hpp>
#include <mailroom/limit/store_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <cstdint>
#include <memory>

namespace mailroom::limit {

namespace asio = boost::asio;

/// The rate_limiter's decisions, driven by a clock and a timer: `co_await
/// lim.async_acquire(cost)` returns a permit once every bucket holds `cost` tokens and the
/// concurrency cap allows, strictly first come, first served.
///
///     limit::limiter lim(ex, {.buckets = {{.rate = 14, .burst = 20}}});
///     auto p = co_await lim.async_acquire(1);   // take before MAIL FROM
///     auto [ec, report] = co_await conn.async_send(m, asio::as_tuple(asio::deferred));
///     lim.on_signal(smtp::rate_signal(...));     // a "slow down" reply cuts the rate
///     // p released when it goes out of scope
///
/// The limiter only decides when to go: it reads the steady clock when something happens and
/// arms one timer for the next grant, so a thousand waiters cost one timer. Each provider gets
/// its own limiter: one provider's backlog never delays another's.
///
/// Thread safety: every member function may be called from any thread; the state is guarded by
/// a mutex held only for the bookkeeping, never while a handler runs. Handlers run on their
/// own associated executor (the limiter's by default), never inside the call.
/// Destroying the limiter completes every waiter with operation_aborted; permits still held
/// stay valid (they keep its state alive).
class MAILROOM_API limiter {
public:
    /// Asio's polymorphic I/O executor.
    using executor_type = asio::any_io_executor;

    /// Throws system_error(error::invalid_limit) with the field named, when `options` are out
    /// of range (see rate_limiter::create).
    limiter(executor_type ex, rate_limiter_options options);
    /// A limiter whose buckets live where `store` says. With store_kind::redis: `client` is
    /// the connection to use (shared by several limiters; it must have been made with
    /// store.redis's server), or, when null, one made from store.redis; `default_key` names
    /// the shared state when store.key is empty. Throws system_error(error::invalid_limit)
    /// when the store options are out of range (the field named), and
    /// system_error(error::invalid_redis_options) for the server's.
    limiter(executor_type ex, rate_limiter_options options, store_options store,
            std::shared_ptr<redis::client> client = {}, std::string default_key = "limit");
    /// Takes over the other's state; the moved-from limiter may only be destroyed or assigned
    /// to.
    limiter(limiter&&) noexcept;
    /// Closes this limiter (as close()), then takes over the other's state.
    limiter& operator=(limiter&&) noexcept;
    /// Closes the limiter (as close()).
    ~limiter();

    /// The executor its timer runs on, and handlers by default.
    executor_type get_executor() const noexcept;
    /// The options it was made with.
    const rate_limiter_options& options() const noexcept;

    /// Waits until `cost` tokens can be taken from every bucket, behind everyone who asked
    /// earlier. Handler: void(error_code, permit).
    ///
    /// Errors: error::cost_exceeds_burst (could never be granted), error::limit_wait_too_long
    /// (options().max_wait), operation_aborted (cancelled, or the limiter destroyed).
    /// Cancellation: terminal, partial and total; a cancelled wait takes nothing, and the
    /// waiters behind it move up. Once granted, cancellation has no effect. Emit the
    /// cancellation signal from the handler's executor (Asio's slots are not thread-safe).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, permit)) Token = asio::deferred_t>
    auto async_acquire(std::uint64_t cost, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, permit)>(
            [](auto handler, std::shared_ptr<detail::limiter_impl> i, std::uint64_t n) {
                initiate_acquire(std::move(i), n, std::move(handler));
            },
            token, impl_, cost);
    }

    /// A permit now, if `cost` can be granted at once with nobody waiting ahead; else an empty
    /// permit (then use async_acquire); a request that would have to wait takes nothing and
    /// isn't counted. Errors as async_acquire's, in `ec` (operation_aborted: closed).
    permit try_acquire(std::uint64_t cost, error_code& ec);

    /// The cost of a message with `recipients` envelope recipients (options().charge_by).
    std::uint64_t cost_for(std::size_t recipients) const noexcept;

    /// Feeds the provider's answer to the adaptive rate (the transport classifies it: for SMTP
    /// replies, smtp::rate_signal): a "slow down" cuts the rate and the concurrency cap, a
    /// "quota exhausted" pauses the provider (see rate_limiter::on_signal).
    void on_signal(signal s);
    /// Ends a quota pause now.
    void resume();

    /// Completes every waiter with operation_aborted, and every later acquisition too.
    /// Permits already granted stay valid.
    void close() noexcept;

    /// Counters and gauges now.
    limiter_snapshot snapshot() const;

private:
    static void initiate_acquire(std::shared_ptr<detail::limiter_impl> i, std::uint64_t cost,
                                 asio::any_completion_handler<void(error_code, permit)> h);

    std::shared_ptr<detail::limiter_impl> impl_;
};

} // namespace mailroom::limit
