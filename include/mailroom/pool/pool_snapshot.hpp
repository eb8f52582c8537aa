// mailroom::pool::pool_snapshot: a connection pool's gauges and counters at one instant.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace mailroom::pool {

/// Where the pool's circuit breaker is (see breaker_options).
enum class breaker_state {
    closed,    ///< checkouts wait for connections as usual
    open,      ///< checkouts fail at once with error::circuit_open
    half_open, ///< checkouts wait for the one probe connect (made when one is waiting)
};

/// What a pool holds and has done, for a service to export as metrics.
struct pool_snapshot {
    // Gauges.
    std::size_t open = 0;       ///< connections open (in use or idle)
    std::size_t in_use = 0;     ///< of those, lent to at least one send
    std::size_t idle = 0;       ///< of those, lent to none
    std::size_t connecting = 0; ///< connect attempts under way
    std::size_t waiters = 0;    ///< checkouts waiting for a connection
    std::size_t leases = 0;     ///< checkouts holding a connection (pipelined ones count each)
    breaker_state breaker = breaker_state::closed; ///< the circuit breaker now
    /// Connect attempts in a row that found nobody to talk to (breaker_options counts them).
    unsigned consecutive_failures = 0;
    /// While the breaker is open: when it turns half-open and lets a probe through (steady
    /// clock); otherwise the epoch.
    std::chrono::steady_clock::time_point breaker_half_open_at{};

    // Counters since the pool was made.
    std::uint64_t connects = 0;         ///< connections opened
    std::uint64_t connect_failures = 0; ///< connect attempts that failed
    std::uint64_t checkouts = 0;        ///< connections handed out
    /// Checkouts that ended with error::checkout_timeout.
    std::uint64_t checkout_timeouts = 0;
    std::uint64_t probes = 0;        ///< NOOPs sent to connections that sat idle
    std::uint64_t stale = 0;         ///< of those, connections the server had dropped
    std::uint64_t discarded = 0;     ///< connections closed after an error, timeout or 421
    std::uint64_t retired = 0;       ///< closed for age, message count or idleness
    std::uint64_t breaker_trips = 0; ///< times the circuit breaker opened (reopenings too)
};

} // namespace mailroom::pool
