// Private: reconnect delays (the pool's, and the mailer's between retries). Pure.
#pragma once

#include <mailroom/pool/pool_options.hpp>

namespace mailroom::pool::detail {

/// The wait after the `failures`-th consecutive failed connect (≥ 1): d = min(max,
/// initial × 2^(failures-1)), then a point in [d/2, d] picked by `unit` in [0, 1) ("equal
/// jitter": spread out, yet never much shorter than the exponential step).
duration backoff_delay(const backoff_options& o, unsigned failures, double unit) noexcept;

} // namespace mailroom::pool::detail
