// mailroom::pool::pool: warm SMTP connections to one endpoint, lent to sends.
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/pool/connection.hpp>
#include <mailroom/pool/pool_options.hpp>
#include <mailroom/pool/pool_snapshot.hpp>
#include <mailroom/smtp/client_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <memory>
#include <utility>

namespace mailroom::pool {

/// A pool of SMTP connections to one endpoint identity: the host, port, TLS settings and
/// credentials of its smtp::client_options. Every connection in a pool is made with those same
/// options, so a connection authenticated for one account is never lent for another: give each
/// account its own pool.
///
///     pool::pool p(ex, server_options, {.max_connections = 8});
///     auto conn = co_await p.async_acquire();
///     auto [ec, report] = co_await conn.async_send(m, asio::as_tuple(asio::deferred));
///     // conn goes back to the pool here
///
/// Connections open on demand (up to max_connections, min_idle kept warm), are reused until
/// they break, grow old, reach their message limit or sit idle too long, and get a NOOP before
/// reuse after sitting idle, so a server that dropped an idle connection costs a reconnect, not
/// a failed send. Failed connects back off (pool_options::reconnect); connect attempts never
/// exceed max_connections. A server that isn't there (refused, silent) opens the pool's
/// circuit breaker (pool_options::breaker): sends then fail at once instead of waiting.
///
/// While it holds connections the pool keeps a timer (idle timeouts, age), so an io_context
/// that runs it returns only once they are closed: drain the pool (or the mailer) when done.
///
/// Thread safety: member functions may be called from any thread, except try_acquire(). All
/// of the pool's work, its connections' I/O included, runs on one strand of the executor given
/// (the executor itself if it is already a strand, or with pool_options::single_threaded), so
/// a multi-threaded io_context is safe. Handlers run on their own associated executor, never
/// inside the call. Destroying the pool closes every connection and completes waiting
/// checkouts with operation_aborted; lent connections stay valid objects but are closed.
class MAILROOM_API pool {
public:
    /// Asio's polymorphic I/O executor.
    using executor_type = asio::any_io_executor;

    /// A pool with no connection yet (min_idle > 0 starts opening some at once).
    /// Throws system_error(error::invalid_pool_options) when `options` are out of range.
    pool(executor_type ex, smtp::client_options server, pool_options options = {});
    /// Takes over the other's pool; the moved-from pool may only be destroyed or assigned to.
    pool(pool&&) noexcept;
    /// Closes this pool (as close()), then takes over the other's.
    pool& operator=(pool&&) noexcept;
    /// Closes the pool (as close()).
    ~pool();

    /// The strand the pool runs on.
    executor_type get_executor() const noexcept;
    /// The options every connection is made with.
    const smtp::client_options& server() const noexcept;
    /// The pool's options.
    const pool_options& options() const noexcept;

    /// Waits for a connection, first come first served: an idle one (after a NOOP if it sat
    /// idle past pool_options::probe_after_idle), a new one when fewer than max_connections are
    /// open or opening, or a place behind another send on a pipelining one.
    ///
    /// Handler: void(error_code, connection). On success the connection is lent to the caller
    /// until it is dropped or released; on error it is empty.
    ///
    /// Errors: error::checkout_timeout (none within pool_options::checkout_timeout),
    /// error::pool_closed (draining or closed), operation_aborted (cancelled, or the pool
    /// closed while waiting), and a failed connect's own error when no connection can be made:
    /// the server's refusal, a TLS or authentication failure. One that would fail the same way
    /// again (`ec == condition::permanent` or `condition::invalid_input`: a 5xx refusal, no
    /// usable AUTH mechanism, ...) goes to every waiter at once; any other goes to the oldest
    /// waiter while no connection is open, and the others wait for the next attempt, until
    /// the circuit breaker opens (pool_options::breaker: by default after 5 connects in a row
    /// that found no server to talk to): then every waiter fails at once with that connect's
    /// error, and checkouts fail at once with error::circuit_open (last_connect_error() says
    /// why) until the breaker turns half-open; a checkout then waits for the one probe connect.
    ///
    /// Cancellation: while the checkout waits, terminal, partial and total cancellation are all
    /// honoured: the handler gets operation_aborted and an empty connection, and the wait leaves
    /// nothing behind (no lease, no place in the queue; a connect started for it may serve the
    /// next waiter). Once the handler has a connection, cancellation changes nothing. Emit the
    /// signal where Asio allows (on the handler's executor); the pool acts on it on its own.
    ///
    /// Thread safety: may be called from any thread. The handler runs on its associated
    /// executor (the pool's when it has none), never inside this call.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, connection))
                  Token = asio::deferred_t>
    auto async_acquire(Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, connection)>(
            [](auto handler, std::shared_ptr<detail::pool_impl> i) {
                initiate_acquire(std::move(i), std::move(handler));
            },
            token, impl_);
    }

    /// A connection now, without waiting, if one can be lent at once (an idle one that needs
    /// no probe, or a free place on a pipelining one) and nobody waits ahead; else an empty
    /// connection. Call only on the pool's executor (get_executor()): it is the fast path of a
    /// coroutine already running there.
    connection try_acquire();

    /// Graceful shutdown: new checkouts fail with error::pool_closed; waiting ones are still
    /// served; once every connection is back, each says QUIT. Handler: void(error_code), when
    /// the last connection is closed.
    ///
    /// Errors: error::pool_closed (the pool was already closed), operation_aborted (close() or
    /// the pool's destruction before the drain finished). Cancellation: not supported.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code)) Token = asio::deferred_t>
    auto async_drain(Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code)>(
            [](auto handler, std::shared_ptr<detail::pool_impl> i) {
                initiate_drain(std::move(i), std::move(handler));
            },
            token, impl_);
    }

    /// Closes every connection now (on the pool's executor: at once when called there); waiting
    /// checkouts and drains complete with operation_aborted, sends on lent connections too, and
    /// later checkouts fail with error::pool_closed.
    void close() noexcept;

    /// Gauges and counters now. Safe from any thread; read one by one, so they may be out of
    /// step with each other by an event.
    pool_snapshot snapshot() const noexcept;

    /// Why the last connect failed (error_code empty if none did), with the client's
    /// diagnostics. Safe from any thread.
    std::pair<error_code, diagnostics> last_connect_error() const;

private:
    static void initiate_acquire(std::shared_ptr<detail::pool_impl> i,
                                 asio::any_completion_handler<void(error_code, connection)> h);
    static void initiate_drain(std::shared_ptr<detail::pool_impl> i,
                               asio::any_completion_handler<void(error_code)> h);

    std::shared_ptr<detail::pool_impl> impl_;
};

} // namespace mailroom::pool
