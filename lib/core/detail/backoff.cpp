#include "backoff.hpp"

#include <algorithm>

namespace mailroom::pool::detail {

duration backoff_delay(const backoff_options& o, unsigned failures, double unit) noexcept
{
    if (failures == 0)
        return duration::zero();
    duration d = o.initial;
    for (unsigned i = 1; i < failures && d < o.max; ++i)
        d = d > o.max / 2 ? o.max : d * 2;
    d = std::min(d, o.max);
    unit = std::clamp(unit, 0.0, 1.0);
    const auto half = d / 2;
    return half + std::chrono::duration_cast<duration>((d - half) * unit);
}

} // namespace mailroom::pool::detail
