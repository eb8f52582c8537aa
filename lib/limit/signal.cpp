#include <mailroom/limit/limiter_snapshot.hpp>
#include <mailroom/limit/signal.hpp>
#include <mailroom/limit/store_options.hpp>

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

const char* to_string(unavailable_policy p) noexcept
{
    switch (p) {
    case unavailable_policy::wait: return "wait";
    case unavailable_policy::local_fallback: return "local_fallback";
    }
    return "unknown";
}

const char* to_string(limiter_snapshot::store_state s) noexcept
{
    using st = limiter_snapshot::store_state;
    switch (s) {
    case st::connecting: return "connecting";
    case st::connected: return "connected";
    case st::unavailable: return "unavailable";
    case st::fallback: return "fallback";
    case st::failed: return "failed";
    }
    return "unknown";
}

} // namespace mailroom::limit
