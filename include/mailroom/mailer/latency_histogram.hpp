// mailroom::latency_histogram: durations counted in log-spaced buckets, for percentiles.
#pragma once

#include <mailroom/config.hpp>

#include <array>
#include <chrono>
#include <cstdint>

namespace mailroom {

/// Counts durations in buckets that grow by 2^(1/8) (about 9 %), from 1 µs to about 71
/// minutes, so any percentile it reports is within about 9 % of the true one.
///
/// Thread safety: a value type; not safe for concurrent use (mailer::snapshot() hands out
/// copies).
class MAILROOM_API latency_histogram {
public:
    /// Steady-clock durations.
    using duration = std::chrono::steady_clock::duration;
    static constexpr unsigned sub_buckets = 8;            ///< per doubling
    static constexpr unsigned buckets = 32 * sub_buckets; ///< in all

    /// Counts `d` (below 1 µs in the first bucket, beyond the range in the last).
    void record(duration d) noexcept;
    /// Adds another histogram's counts.
    void merge(const latency_histogram& other) noexcept;

    /// Durations counted.
    std::uint64_t count() const noexcept { return count_; }
    /// The largest duration recorded (exact); zero if none.
    duration max() const noexcept { return max_; }
    /// The q-quantile (0 ≤ q ≤ 1), as the upper bound of its bucket (never above max());
    /// zero if nothing was recorded.
    duration percentile(double q) const noexcept;

    /// The bucket a duration falls in, 0 .. buckets - 1.
    static unsigned bucket_of(duration d) noexcept;
    /// The upper end of a bucket's range (exclusive).
    static duration upper_bound(unsigned bucket) noexcept;

    /// A bucket's count; `bucket` < buckets.
    std::uint64_t at(unsigned bucket) const noexcept { return counts_[bucket]; }
    /// Adds `n` to a bucket's count (a bucket past the last counts in the last) and raises
    /// max() to `max` if it is larger: for a histogram assembled from counters elsewhere.
    void add(unsigned bucket, std::uint64_t n, duration max) noexcept;

private:
    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t count_ = 0;
    duration max_{};
};

} // namespace mailroom
