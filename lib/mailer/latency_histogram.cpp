#include <mailroom/mailer/latency_histogram.hpp>

#include <algorithm>
#include <bit>
#include <cmath>

namespace mailroom {

namespace {

std::uint64_t micros(latency_histogram::duration d) noexcept
{
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    return us < 1 ? 1 : static_cast<std::uint64_t>(us);
}

} // namespace

unsigned latency_histogram::bucket_of(duration d) noexcept
{
    // Bucket e × 8 + s holds [2^e × (8 + s) / 8, 2^e × (9 + s) / 8) µs.
    const std::uint64_t us = micros(d);
    const unsigned e = static_cast<unsigned>(std::bit_width(us)) - 1;
    const std::uint64_t scaled = e >= 3 ? us >> (e - 3) : us << (3 - e); // in [8, 16)
    const unsigned b = e * sub_buckets + static_cast<unsigned>(scaled - sub_buckets);
    return std::min(b, buckets - 1);
}

latency_histogram::duration latency_histogram::upper_bound(unsigned bucket) noexcept
{
    const unsigned e = bucket / sub_buckets, s = bucket % sub_buckets;
    const double us = std::ldexp(static_cast<double>(sub_buckets + s + 1) / sub_buckets, e);
    return std::chrono::duration_cast<duration>(std::chrono::duration<double, std::micro>(us));
}

void latency_histogram::record(duration d) noexcept
{
    ++counts_[bucket_of(d)];
    ++count_;
    max_ = std::max(max_, d);
}

void latency_histogram::add(unsigned bucket, std::uint64_t n, duration max) noexcept
{
    counts_[std::min(bucket, buckets - 1)] += n;
    count_ += n;
    max_ = std::max(max_, max);
}

void latency_histogram::merge(const latency_histogram& other) noexcept
{
    for (unsigned b = 0; b < buckets; ++b)
        counts_[b] += other.counts_[b];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
}

latency_histogram::duration latency_histogram::percentile(double q) const noexcept
{
    if (count_ == 0)
        return duration::zero();
    q = std::clamp(q, 0.0, 1.0);
    // The smallest bucket whose cumulative count reaches ceil(q × count), at least 1.
    const auto rank = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
    std::uint64_t seen = 0;
    for (unsigned b = 0; b < buckets; ++b) {
        seen += counts_[b];
        if (seen >= rank)
            return std::min(upper_bound(b), max_);
    }
    return max_;
}

} // namespace mailroom
