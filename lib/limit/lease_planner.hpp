// Private: a Redis-backed limiter's decisions, with no I/O. The queue and the concurrency cap
// stay in the process's rate_limiter (with no buckets); this decides what to ask Redis for and
// when, holds what Redis granted (tokens for the waiters, a lease ahead of need), and stands in
// with local buckets while Redis is away (unavailable_policy::local_fallback).
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/limit/clock.hpp>
#include <mailroom/limit/limiter_snapshot.hpp>
#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/limit/store_options.hpp>
#include <mailroom/limit/token_bucket.hpp>

#include <cstdint>
#include <optional>
#include <vector>

namespace mailroom::limit::detail {

/// One acquire call: at least `min` tokens, up to `need` for the waiters now, and up to `extra`
/// more as a lease usable for `lease`.
struct store_request {
    std::uint64_t min = 0;
    std::uint64_t need = 0;
    std::uint64_t extra = 0;
    duration lease{};
};

/// What the acquire call answered (see redis_script.cpp).
struct store_answer {
    std::uint64_t granted = 0;
    std::uint64_t leased = 0;
    std::uint64_t retry_after_us = 0;
    unsigned factor = 1000;
};

class lease_planner {
public:
    /// While sends queue behind the rate, each call waits for what the tightest bucket refills
    /// in this time (at least the head's cost, at most what the waiters want).
    static constexpr duration batch_window = std::chrono::milliseconds(20);

    /// Fails with error::invalid_limit (diag.field named) when the store options are out of
    /// range, or a bucket too large for the script's exact arithmetic (burst × period in
    /// microseconds must stay below 2^53).
    static result<lease_planner> create(const rate_limiter_options& limits,
                                        const store_options& store, time_point now,
                                        diagnostics& diag);

    /// The lease's lifetime: store.lease_ttl, at most half the time the tightest bucket takes
    /// to fill at its rate; zero when leases are off.
    duration lease_ttl() const noexcept { return lease_ttl_; }

    /// error::cost_exceeds_burst or error::limit_wait_too_long as rate_limiter::enqueue judges
    /// them (against full buckets at the configured rates: Redis holds the real levels), or
    /// nothing.
    error_code check(std::uint64_t cost, std::uint64_t waiting_cost, time_point now) const;

    /// Tokens the waiters may take now: what the last answer granted (until dropped), the lease
    /// (until it ends), or, in fallback, what the local buckets hold.
    std::uint64_t usable(time_point now);
    /// The waiters took `n` of usable() at `now`.
    void take(std::uint64_t n, time_point now);
    /// Tokens granted for waiters that left before they could use them are dropped (they were
    /// charged as used now; holding them would let a later send overshoot).
    void drop_granted() noexcept { granted_ = 0; }

    /// The acquire call to make now, if any; marks it outstanding. `head`: the cost the head of
    /// the queue waits for (nothing: no one waits); `waiting`: what all waiters want.
    std::optional<store_request> next_request(time_point now, std::optional<std::uint64_t> head,
                                              std::uint64_t waiting, bool at_cap);
    /// The outstanding call was answered. `sent`: when it was sent (its lease counts from then).
    void on_answer(const store_request& r, const store_answer& a, time_point sent, time_point now);
    /// The outstanding call failed: Redis is unavailable (refused, lost, timed out) or
    /// refused us for good (`permanent`: credentials, an error reply).
    void on_failure(bool permanent, time_point now);

    /// Everything Redis granted that is still held (the lease, and what ended unused), for a
    /// limiter that closes: the planner holds nothing afterwards. Fallback tokens are the
    /// process's own and are not counted.
    std::uint64_t surrender() noexcept;

    /// Lease tokens left over when the lease ended, to give back (0: none); counted once.
    std::uint64_t take_refund(time_point now);

    /// When something changes without an event: a retry falls due, the lease ends, a fallback
    /// bucket holds the head's cost.
    std::optional<time_point> next_wakeup(time_point now, std::optional<std::uint64_t> head,
                                          bool at_cap);

    /// Scales the fallback buckets with the process's adaptive rate.
    void set_rate_permille(unsigned permille, time_point now);

    /// Where the store is.
    limiter_snapshot::store_state state() const noexcept { return state_; }
    /// The shared adaptive rate from the last answer, permille.
    unsigned shared_permille() const noexcept { return factor_; }
    /// Whether a call is outstanding.
    bool outstanding() const noexcept { return outstanding_; }

    /// Fills the store part of a snapshot (counters kept here).
    void fill(limiter_snapshot::store_info& s, time_point now);

private:
    lease_planner() = default;
    void end_lease(time_point now);

    std::vector<bucket_options> buckets_;
    std::vector<token_bucket> fallback_;
    store_options store_;
    duration lease_ttl_{};
    duration max_wait_ = duration::max();

    limiter_snapshot::store_state state_ = limiter_snapshot::store_state::connecting;
    bool outstanding_ = false;
    time_point retry_at_{};
    std::uint64_t granted_ = 0; ///< for the waiters, from the last answer
    std::uint64_t lease_ = 0;   ///< ahead of need, until lease_end_
    time_point lease_end_{};
    std::uint64_t target_ = 0; ///< the next lease asked for
    std::uint64_t batch_ = 0;  ///< tokens the tightest bucket refills in batch_window (≥ 1)
    bool rate_bound_ = false;  ///< the last answer said "retry after": sends queue behind the rate
    std::uint64_t refund_ = 0;
    unsigned factor_ = 1000;

    std::uint64_t acquires_ = 0, answers_ = 0, failures_ = 0, leases_ = 0, leased_tokens_ = 0,
                  refunded_tokens_ = 0, fallback_grants_ = 0, retries_after_ = 0;
};

} // namespace mailroom::limit::detail
