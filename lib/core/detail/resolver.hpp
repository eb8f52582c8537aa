// Private: name resolution and the TCP connect, inside one deadline (timeouts::connect).
//
// Names are resolved with c-ares, whose sockets and retransmission timer are watched by the
// client's own executor: nothing blocks a thread, and a cancelled or timed-out lookup closes
// its sockets at once (Asio's resolver runs getaddrinfo on a thread that can't be stopped).
// IP literals and "localhost" never reach DNS; /etc/hosts is read first ("fb" lookups).
// Where a name has both IPv6 and IPv4 addresses, the attempts race as RFC 8305 (Happy
// Eyeballs v2) says: families interleaved, a new attempt every 250 ms while none has
// connected, the first to connect wins and the others are closed.
//
// The decisions (which addresses skip DNS, their order, when the next attempt may start, what
// a c-ares status means) are pure functions below, tested without sockets.
#pragma once

#include <mailroom/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::detail {

/// The addresses of `host` known without asking DNS: an IP literal (brackets allowed around
/// IPv6), or "localhost" and names under ".localhost" (RFC 6761 §6.3: ::1 and 127.0.0.1).
/// nullopt: a name to resolve.
std::optional<std::vector<boost::asio::ip::address>> addresses_without_dns(std::string_view host);

/// RFC 8305 §4: the addresses in the order to try them, families alternating, starting with
/// the family of the first (the resolver has already sorted them, RFC 6724); the order within
/// each family is kept.
std::vector<boost::asio::ip::address>
interleave_families(const std::vector<boost::asio::ip::address>& in);

/// A c-ares status as an error_code: "no such name" is Asio's host_not_found, a server that
/// failed or didn't answer host_not_found_try_again (both transient), a cancellation
/// operation_aborted, anything else host_not_found.
error_code resolve_error(int ares_status) noexcept;

/// RFC 8305 §5, connection attempts without I/O: when the next one may start.
class attempt_schedule {
public:
    /// The Connection Attempt Delay (RFC 8305 §5, recommended 250 ms).
    static constexpr std::chrono::milliseconds attempt_delay{250};

    explicit attempt_schedule(std::size_t addresses) noexcept
        : total_(addresses)
    {
    }
    /// The index of the attempt to start now, if any: the first at once, each next one when
    /// the delay since the last start has passed (`delay_elapsed`) or every attempt started
    /// so far has failed. Call again until it says none.
    std::optional<std::size_t> next(bool delay_elapsed) noexcept;
    /// An attempt failed.
    void failed() noexcept { ++failed_; }
    /// Every address was tried and failed.
    bool exhausted() const noexcept { return failed_ == total_; }
    /// Addresses not yet tried.
    bool more() const noexcept { return started_ < total_; }

private:
    std::size_t total_;
    std::size_t started_ = 0;
    std::size_t failed_ = 0;
};

/// What resolve_and_connect did.
struct connect_outcome {
    error_code ec{};
    /// Which step failed: true if it was the name resolution.
    bool resolving = false;
    std::optional<boost::asio::ip::tcp::socket> socket{};
    /// Every address the name gave, in the order tried.
    std::vector<boost::asio::ip::address> addresses{};
};

/// Stops a resolve_and_connect in progress (the client's close()): it ends with
/// operation_aborted, its sockets closed. Made by make_connect_stopper().
struct connect_stopper {
    struct state;
    std::shared_ptr<state> state_;
    void stop() noexcept;
};

/// Resolves `host` and connects to `port`, all within `limit` (error::connect_timeout after
/// it). `dns_servers` (client_options::dns_servers) replaces the system's name servers when
/// set. Terminal cancellation of the coroutine, or `*stopper` stop(), ends it with
/// operation_aborted. Errors: resolve_error()'s, the last attempt's connect error
/// (connection_refused, ...), error::connect_timeout.
boost::asio::awaitable<connect_outcome>
resolve_and_connect(boost::asio::any_io_executor ex, std::string host, std::uint16_t port,
                    std::string dns_servers, std::chrono::steady_clock::duration limit,
                    std::shared_ptr<connect_stopper> stopper);

/// A stopper to hand to resolve_and_connect, kept by the caller.
std::shared_ptr<connect_stopper> make_connect_stopper(boost::asio::any_io_executor ex);

} // namespace mailroom::detail
