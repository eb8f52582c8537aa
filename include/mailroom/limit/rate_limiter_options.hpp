// mailroom::limit::rate_limiter_options: one provider's limits, and how they adapt.
#pragma once

#include <mailroom/limit/clock.hpp>
#include <mailroom/limit/token_bucket.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace mailroom::limit {

/// What one acquisition costs (rate_limiter::cost_for). Providers count differently: SES
/// counts recipients against its quotas, Exchange Online's daily limit is in recipients and
/// its per-minute limit in messages; give each provider the unit of its tightest limit.
enum class charge {
    per_message,   ///< 1 per message
    per_recipient, ///< 1 per envelope recipient
};

/// How a provider's rate follows its replies: multiplicative decrease on "slow down",
/// additive increase while none come (as TCP congestion control, RFC 5681 §3.1). Rates are in
/// thousandths (permille) of the configured ones, so every figure is exact.
struct adaptive_options {
    /// Off: replies never change the rate (quota pauses still apply).
    bool enabled = true;
    /// A slow-down signal multiplies the rate by this (500: halves it), 1..1000.
    unsigned cut_to_permille = 500;
    /// The rate never goes below this, 1..1000.
    unsigned floor_permille = 100;
    /// Each `step_interval` without a slow-down signal adds this, up to 1000; 1..1000.
    unsigned step_permille = 100;
    /// > 0. The first step comes one interval after the last slow-down signal.
    duration step_interval = std::chrono::seconds(30);
    /// After a cut, further slow-down signals within this time don't cut again (they still
    /// restart the recovery clock): replies to sends made before the cut arrive after it and
    /// say nothing about the new rate. ≥ 0.
    duration cut_cooldown = std::chrono::seconds(1);
};

/// One provider's limits, all applied at once: an acquisition is granted when every bucket
/// holds its cost, and it takes the cost from each.
///
///     limit::rate_limiter_options o{
///         .buckets = {{.rate = 14, .burst = 20},
///                     {.rate = 30, .per = std::chrono::minutes(1)},
///                     {.rate = 10'000, .per = std::chrono::hours(24)}},
///         .charge_by = limit::charge::per_recipient,
///         .max_in_flight = 3,
///     };
struct rate_limiter_options {
    /// Any number, including none (then only max_in_flight and quota pauses apply).
    std::vector<bucket_options> buckets{};
    /// What one acquisition costs (see rate_limiter::cost_for).
    charge charge_by = charge::per_message;
    /// Concurrency cap: acquisitions granted and not yet released. 0: none. Adaptive cuts scale
    /// it too (never below 1).
    std::size_t max_in_flight = 0;
    /// enqueue() refuses (error::limit_wait_too_long) a request that can't be granted within
    /// this time even if everything ahead of it is granted as soon as the configured rates
    /// allow; a quota pause counts. duration::max(): never refuse. ≥ 0.
    duration max_wait = duration::max();
    /// How "slow down" replies cut the rate, and how it recovers.
    adaptive_options adaptive{};
    /// How long a quota_exhausted signal pauses the provider. Unset: until the bucket that
    /// takes longest to refill (the daily one, usually), emptied by the signal, is full again
    /// at its configured rate; with no buckets, 24 hours. Set: > 0.
    std::optional<duration> quota_pause{};
};

} // namespace mailroom::limit
