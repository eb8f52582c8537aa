// mailroom::limit time: the limiter's clock, and why its pure code never reads it.
#pragma once

#include <chrono>

namespace mailroom::limit {

/// The clock the limiter's time points come from.
///
/// The pure code (token_bucket, rate_limiter) never reads a clock: every operation takes `now`
/// from its caller. Tests drive time as a plain variable, exactly and instantly; the Asio
/// wrapper reads the clock once per event and arms a steady_timer (same clock) for the next
/// wake-up. A `now` earlier than one already seen counts as the one already seen: time never
/// runs backwards inside a limiter.
using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;

} // namespace mailroom::limit
