// mailroom::latency_histogram: durations counted in log-spaced buckets, for percentiles.
#pragma once

#include <mailroom/config.hpp>

#include <array>
#include <chrono>
#include <cstdint>

namespace mailroom {

/// Counts durations in buckets that grow by 2^(1/8) (about 9 %), from 1 µs to about 71
/// minutes, so any percentile it reports is within about 9 % of the true one. A value type.
class MAILROOM_API latency_histogram {
public:
    using duration = std::chrono::steady_clock::duration;
    static constexpr unsigned sub_buckets = 8; ///< per doubling
    static constexpr unsigned buckets = 32 * sub_buckets;

    void record(duration d) noexcept;
    /// Adds another histogram's counts.
    void merge(const latency_histogram& other) noexcept;

    std::uint64_t count() const noexcept { return count_; }
    /// The largest duration recorded (exact); zero if none.
    duration max() const noexcept { return max_; }
    /// The q-quantile (0 ≤ q ≤ 1), as the upper bound of its bucket (never above max());
    /// zero if nothing was recorded.
    duration percentile(double q) const noexcept;

    /// The bucket a duration falls in, and the upper bound of a bucket.
    static unsigned bucket_of(duration d) noexcept;
    static duration upper_bound(unsigned bucket) noexcept;

    std::uint64_t at(unsigned bucket) const noexcept { return counts_[bucket]; }
    /// Sets a bucket's count (for a histogram assembled from counters elsewhere).
    void add(unsigned bucket, std::uint64_t n, duration max) noexcept;

private:
    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t count_ = 0;
    duration max_{};
};

} // namespace mailroom
