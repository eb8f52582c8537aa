// mailroom::redis::client: one pipelined Redis connection on Asio, hiredis for the protocol.
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/logger.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

/// A small Redis client: enough for the shared rate limiter (mailroom::limit) and anything
/// else in the library that needs Redis. The wire protocol (RESP2) is hiredis's: commands are
/// formatted by redisFormatCommandArgv and replies parsed by its redisReader; the I/O is
/// Asio's, on the caller's io_context, with no thread of its own.
namespace mailroom::redis {

namespace asio = boost::asio;

/// Steady-clock durations.
using duration = std::chrono::steady_clock::duration;

/// TLS for rediss://.
struct tls_options {
    /// Check the certificate chain and the host name. Off only for tests.
    bool verify = true;
    /// PEM trust anchors; empty: the system's default store.
    std::string ca_file{};
    /// The name the certificate must carry, also sent as SNI. Empty: the host.
    std::string verify_name{};
};

/// Where the Redis server is and how to talk to it.
struct options {
    /// A host name or an IP address literal.
    std::string host = "127.0.0.1";
    /// 1..65535.
    std::uint16_t port = 6379;
    /// TLS from the first byte (rediss://), with `tls_settings`.
    bool tls = false;
    /// Used when `tls` is set.
    tls_options tls_settings{};
    /// An ACL user (Redis 6+). Empty: `AUTH password` as the default user.
    std::string username{};
    /// Sent with AUTH after connecting; empty: no AUTH. Never logged.
    std::string password{};
    /// SELECT'ed after connecting when not 0; 0..(the server's `databases` - 1).
    unsigned db = 0;
    /// Resolve, connect, TLS handshake and AUTH/SELECT together. > 0.
    duration connect_timeout = std::chrono::seconds(2);
    /// From a request's submission to its reply. A request that misses it fails with
    /// error::redis_timeout, and so does everything pipelined behind it on that connection
    /// (the connection is closed: a late reply would answer the wrong request). > 0.
    duration request_timeout = std::chrono::seconds(1);
    /// The wait before reconnecting after a failed connect, doubling up to reconnect_max
    /// (with jitter). Requests made meanwhile fail at once with error::redis_unavailable.
    duration reconnect_initial = std::chrono::milliseconds(100);
    /// ≥ reconnect_initial.
    duration reconnect_max = std::chrono::seconds(2);
    /// Lines about connects, losses and errors (`redis[host:port] ...`). Never the password.
    logger log{};

    /// Options from `redis://[[user][:password]@]host[:port][/db]` or `rediss://...` (TLS).
    /// An IPv6 literal goes in brackets. A password in the URL is accepted for libraries'
    /// sake, but a tool should take it from the environment or a file. Errors:
    /// error::invalid_redis_options with `diag.field` naming the part.
    MAILROOM_API static result<options> from_url(std::string_view url, diagnostics& diag);
};

/// One reply, decoded.
struct reply {
    /// RESP2's reply types.
    enum class type { nil, string, status, error, integer, array };
    type kind = type::nil;         ///< which of the members below holds it
    std::string str{};             ///< string, status and error replies
    long long integer = 0;         ///< integer replies
    std::vector<reply> elements{}; ///< array replies

    /// An error reply.
    bool is_error() const noexcept { return kind == type::error; }
    /// An error reply whose first word is `prefix` ("NOSCRIPT", "WRONGPASS", ...).
    MAILROOM_API bool is_error(std::string_view prefix) const noexcept;
};

/// Where the connection is.
enum class state {
    idle,         ///< not connected yet: the first request connects
    connecting,   ///< resolving, connecting, TLS, AUTH/SELECT
    connected,    ///< requests go out at once
    reconnecting, ///< the last connect failed or the connection was lost: waiting to retry
    closed,       ///< close() was called
};

/// "idle", "connecting", "connected", "reconnecting", "closed".
MAILROOM_API const char* to_string(state s) noexcept;

/// Counters and gauges of a client.
struct client_snapshot {
    redis::state state = redis::state::idle; ///< now
    std::uint64_t requests = 0;              ///< submitted
    std::uint64_t replies = 0;               ///< answered (an error reply counts)
    std::uint64_t failed = 0;                ///< completed with an error code
    std::uint64_t connects = 0;              ///< connections established
    std::uint64_t connect_failures = 0;      ///< connects that failed
    std::uint64_t timeouts = 0; ///< requests failed with redis_timeout (theirs or one ahead)
    std::size_t pending = 0;    ///< submitted, not yet answered
};

namespace detail {
struct client_impl;
}

/// One connection to one Redis server, pipelined: requests are written as they come, without
/// waiting for earlier replies, and answered in order.
///
///     redis::client r(ex, *redis::options::from_url("redis://127.0.0.1:6379/0", diag));
///     auto [ec, rep] = co_await r.async_exec({"INCR", "k"}, asio::as_tuple(asio::deferred));
///
/// The first request connects (then AUTH and SELECT, pipelined together; requests go out once
/// they are answered, so none runs as the wrong user or in the wrong database). A lost connection
/// fails the requests on it with error::redis_unavailable and is re-made for the next
/// request, after a backoff during which requests fail at once (one closed while no request
/// waited, by the server's idle `timeout` say, is re-made at once). An error *reply* is not an
/// error code: it comes back as a reply of type error, for the caller to judge (NOSCRIPT,
/// say), except that NOAUTH, WRONGPASS and NOPERM are error::redis_auth_failed.
///
/// Thread safety: every member function may be called from any thread; the I/O runs on a
/// strand of the executor, and handlers on their associated executor (the client's by default).
/// Destroying the client (or close()) completes every pending request with operation_aborted.
class MAILROOM_API client {
public:
    /// Asio's polymorphic I/O executor.
    using executor_type = asio::any_io_executor;

    /// Throws system_error(error::invalid_redis_options) when `o` is out of range.
    client(executor_type ex, options o);
    /// Closes (as close()).
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Sends one command (`args[0]` the command name; binary-safe arguments) and completes
    /// with its reply. Handler: void(error_code, reply). Errors: error::redis_unavailable
    /// (no connection: refused, lost, a TLS failure, during the reconnect backoff),
    /// error::redis_timeout (request_timeout, or connect_timeout while connecting),
    /// error::redis_auth_failed (AUTH refused, or a NOAUTH, WRONGPASS or NOPERM reply, which
    /// comes with the code), error::invalid_redis_options (SELECT refused: no such database),
    /// asio::error::invalid_argument (`args` empty), operation_aborted (closed). Not
    /// cancellable: the reply is read whatever happens to the caller. Thread safety: may be
    /// called from any thread.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, reply)) Token = asio::deferred_t>
    auto async_exec(std::vector<std::string> args, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, reply)>(
            [](auto handler, std::shared_ptr<detail::client_impl> i, std::vector<std::string> a) {
                initiate_exec(std::move(i), std::move(a), std::move(handler));
            },
            token, impl_, std::move(args));
    }

    /// Closes the connection and completes what is pending with operation_aborted; later
    /// requests fail the same way.
    void close() noexcept;

    /// Counters and gauges now.
    client_snapshot snapshot() const;

    /// The options it was made with (the password included: don't log them).
    const options& get_options() const noexcept;

private:
    static void initiate_exec(std::shared_ptr<detail::client_impl> i, std::vector<std::string> a,
                              asio::any_completion_handler<void(error_code, reply)> h);

    std::shared_ptr<detail::client_impl> impl_;
};

} // namespace mailroom::redis
