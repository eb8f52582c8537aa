// mailroom::pool::connection: a connection lent by a pool; it goes back when dropped.
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/mime/message.hpp>
#include <mailroom/smtp/delivery_report.hpp>
#include <mailroom/smtp/send_options.hpp>
#include <mailroom/with_diagnostics.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <cstdint>
#include <memory>

namespace mailroom::smtp {
class client;
}

namespace mailroom::pool {

namespace asio = boost::asio;

namespace detail {
struct pool_impl;
struct pooled;
} // namespace detail

/// A connection lent by pool::async_acquire: open, greeted, secured and authenticated as the
/// pool's options say. It goes back to the pool when destroyed (or on release()); the pool
/// then reuses it, or closes it if it broke (a protocol error, a timeout, a 421, a lost
/// connection: the client closes itself then, and a closed client is never lent again).
///
/// Where the server pipelines, a connection may be lent to up to pool_options::pipeline_depth
/// sends at once; their messages go in order, each envelope behind the previous final dot.
///
/// Move-only. Thread safety: async_send() and release() may be called from any thread (one
/// connection object, one thread at a time); client() only on the pool's executor
/// (pool::get_executor()).
class MAILROOM_API connection {
public:
    /// An empty connection: lent nothing.
    connection() noexcept = default;
    /// Takes over the other's loan; the other is left empty.
    connection(connection&&) noexcept;
    /// Gives back what this one holds (as release()), then takes over the other's loan.
    connection& operator=(connection&&) noexcept;
    /// Gives the connection back (as release()).
    ~connection();

    /// Sends one message on this connection: smtp::client::async_send, run on the pool's
    /// executor. Handler: void(error_code, smtp::delivery_report); errors and cancellation as
    /// there (error::not_connected for an empty connection, or one the pool has closed). The
    /// connection stays lent until released, whatever the outcome.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, smtp::delivery_report))
                  Token = default_token_t>
    auto async_send(mime::message m, Token&& token = {})
    {
        // The options are made here, not as a default argument: GCC 12 miscompiles a
        // temporary with a std::string member passed inside a co_await expression.
        return async_send(std::move(m), smtp::send_options{}, std::forward<Token>(token));
    }
    /// As above, with DSN requests (see smtp::client::async_send).
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, smtp::delivery_report))
                  Token = default_token_t>
    auto async_send(mime::message m, smtp::send_options o, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, smtp::delivery_report)>(
            [](auto handler, std::shared_ptr<detail::pool_impl> p,
               std::shared_ptr<detail::pooled> c, mime::message msg, smtp::send_options opts) {
                initiate_send(std::move(p), std::move(c), std::move(msg), std::move(opts),
                              std::move(handler));
            },
            token, pool_, conn_, std::move(m), std::move(o));
    }

    /// Gives the connection back now (to the pool's executor); this object is left empty.
    /// Sends already started on it go on.
    void release() noexcept;

    /// The client itself (for server_capabilities(), ...). Only on the pool's executor, and
    /// only on a connection that isn't empty.
    smtp::client& client() const noexcept;
    /// The pool's number for this connection (1, 2, ...), as its log lines show it; 0 when
    /// empty.
    std::uint64_t id() const noexcept;

    /// True unless empty (default-constructed, moved from or released).
    explicit operator bool() const noexcept { return conn_ != nullptr; }

    /// For the library itself (pool): a loan of `c` from `p`.
    connection(std::shared_ptr<detail::pool_impl> p, std::shared_ptr<detail::pooled> c) noexcept
        : pool_(std::move(p))
        , conn_(std::move(c))
    {
    }

private:
    static void
    initiate_send(std::shared_ptr<detail::pool_impl> p, std::shared_ptr<detail::pooled> c,
                  mime::message m, smtp::send_options o,
                  asio::any_completion_handler<void(error_code, smtp::delivery_report)> h);

    std::shared_ptr<detail::pool_impl> pool_;
    std::shared_ptr<detail::pooled> conn_;
};

} // namespace mailroom::pool
