// mailroom::limit time: the limiter's clock, and why its pure code never reads it.
#pragma once

#include <chrono>

/// Per-provider rate limits: exact token buckets, the I/O-free rate_limiter that decides, and
/// the Asio limiter that waits.
namespace mailroom::limit {

/// The clock the limiter's time points come from.
///
/// The pure code (token_bucket, rate_limiter) never reads a clock: every operation takes `now`
/// from its caller. Tests drive time as a plain variable, exactly and instantly; the Asio
/// wrapper reads the clock once per event and arms a steady_timer (same clock) for the next
/// wake-up. A `now` earlier than one already seen counts as the one already seen: time never
/// runs backwards inside a limiter.
using clock = std::chrono::steady_clock;
/// A time on the limiter's clock.
using time_point = clock::time_point;
/// A duration on the limiter's clock.
using duration = clock::duration;

} // namespace mailroom::limit
