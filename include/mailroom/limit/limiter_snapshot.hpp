// mailroom::limit::limiter_snapshot: a rate limiter's counters and gauges at one instant.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/limit/clock.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace mailroom::limit {

/// What a rate_limiter holds and has done, for a service to export as metrics. A value copied
/// out: it doesn't change afterwards.
struct limiter_snapshot {
    /// One bucket, in the order of rate_limiter_options::buckets.
    struct bucket {
        std::uint64_t rate = 0;      ///< configured tokens per `per`
        duration per{};              ///< the period
        std::uint64_t burst = 0;     ///< capacity
        std::uint64_t available = 0; ///< whole tokens held now
        /// Tokens per `per` now: `rate` × rate_permille / 1000 (for display; the arithmetic
        /// itself is exact).
        double effective_rate = 0;
    };
    std::vector<bucket> buckets{}; ///< one per configured bucket (local store: their levels)

    /// Where a shared store (store_kind::redis) is.
    enum class store_state {
        connecting,  ///< no answer from Redis yet
        connected,   ///< the last call was answered
        unavailable, ///< Redis can't be reached; sends wait for it (unavailable_policy::wait)
        fallback,    ///< Redis can't be reached; local buckets stand in (local_fallback)
        failed,      ///< Redis refused us (credentials, an error reply): sends fail
    };
    /// A shared store's gauges and counters.
    struct store_info {
        store_state state = store_state::connecting; ///< now
        std::uint64_t commands = 0;        ///< Redis commands sent (round trips, pipelined)
        std::uint64_t acquires = 0;        ///< acquire calls made
        std::uint64_t failures = 0;        ///< calls that failed (unavailable, timed out, refused)
        std::uint64_t leases = 0;          ///< answers that leased tokens ahead of need
        std::uint64_t leased_tokens = 0;   ///< tokens leased by them
        std::uint64_t refunded_tokens = 0; ///< leased tokens given back unused
        std::uint64_t fallback_grants = 0; ///< tokens granted by the local fallback buckets
        std::uint64_t lease_held = 0;      ///< leased tokens held now
        duration redis_wait{};             ///< time acquire calls were outstanding, summed
        unsigned shared_rate_permille = 1000; ///< the fleet's adaptive rate at the last answer
    };
    /// Set when the buckets live in a shared store (store_kind::redis).
    std::optional<store_info> store{};

    // Gauges.
    unsigned rate_permille = 1000;  ///< the adaptive rate, in thousandths of the configured one
    std::size_t waiters = 0;        ///< acquisitions waiting
    std::uint64_t waiting_cost = 0; ///< tokens they want, together
    std::size_t in_flight = 0;      ///< granted and not yet released or cancelled
    std::size_t max_in_flight = 0;  ///< the effective concurrency cap now; 0: none
    std::optional<time_point> paused_until{}; ///< set while a quota pause lasts

    // Counters since the limiter was created.
    std::uint64_t granted = 0;           ///< acquisitions granted
    std::uint64_t granted_cost = 0;      ///< tokens taken by them
    std::uint64_t cancelled_waiting = 0; ///< waits cancelled before their grant (nothing taken)
    std::uint64_t refunded = 0;          ///< grants cancelled before use (tokens given back)
    std::uint64_t refunded_cost = 0;     ///< tokens given back by them
    std::uint64_t rejected = 0;          ///< enqueue refused (cost_exceeds_burst, wait too long)
    std::uint64_t slow_down_signals = 0; ///< signal::slow_down received
    std::uint64_t rate_cuts = 0;     ///< of those, the ones that cut the rate (not cooling down)
    std::uint64_t quota_signals = 0; ///< signal::quota_exhausted received
};

/// "connecting", "connected", "unavailable", "fallback", "failed".
MAILROOM_API const char* to_string(limiter_snapshot::store_state s) noexcept;

} // namespace mailroom::limit
