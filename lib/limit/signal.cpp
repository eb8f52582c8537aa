#include <mailroom/limit/signal.hpp>

namespace mailroom::limit {

const char* to_string(signal s) noexcept
{
    switch (s) {
    case signal::none: return "none";
    case signal::slow_down: return "slow_down";
    case signal::quota_exhausted: return "quota_exhausted";
    }
    return "unknown";
}

} // namespace mailroom::limit
