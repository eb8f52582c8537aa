// mailroom::limit::detail: 128-bit and saturating time arithmetic for the limiter.
#pragma once

#include <mailroom/limit/clock.hpp>

#include <chrono>
#include <cstdint>
#include <limits>

namespace mailroom::limit::detail {

// Products like elapsed ns × rate × permille, or tokens × (ns per period × 1000), exceed 64
// bits for day-long periods; GCC and clang (the compilers this library supports, see
// config.hpp) have a 128-bit integer. __extension__ keeps -Wpedantic quiet about it.
__extension__ typedef unsigned __int128 u128;

inline std::int64_t nanoseconds_of(duration d) noexcept
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

inline u128 ceil_div(u128 a, u128 b) noexcept
{
    return a / b + (a % b != 0 ? 1 : 0);
}

/// (from - now) + ns as a duration, or duration::max() when it doesn't fit. `from` ≥ `now`.
inline duration saturating_span(time_point now, time_point from, u128 ns) noexcept
{
    const u128 total = u128(nanoseconds_of(from - now)) + ns;
    constexpr auto max_ns = static_cast<u128>(std::numeric_limits<std::int64_t>::max());
    if (total >= max_ns)
        return duration::max();
    // Rounded up, so the tokens are there at now + the result however coarse the clock.
    return std::chrono::ceil<duration>(std::chrono::nanoseconds(static_cast<std::int64_t>(total)));
}

/// t + d, or time_point::max() when that doesn't fit. d ≥ 0.
inline time_point saturating_add(time_point t, duration d) noexcept
{
    const duration since = t.time_since_epoch();
    if (since > duration::zero() && d > duration::max() - since)
        return time_point::max();
    return t + d;
}

} // namespace mailroom::limit::detail
