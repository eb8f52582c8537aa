// mailroom::limit::signal: what a transport's answer says about the rate we send at.
#pragma once

#include <mailroom/config.hpp>

namespace mailroom::limit {

/// What an answer from the provider means for its rate limiter. Transport-neutral: the
/// transport turns its own answers into a signal (for SMTP replies, smtp::rate_signal).
enum class signal {
    none,            ///< nothing about our rate: success, or a failure with another cause
    slow_down,       ///< we send too fast or on too many connections: cut the rate for a while
    quota_exhausted, ///< a daily (or similar) sending quota is used up: pause the provider
};

/// "none", "slow_down", "quota_exhausted".
MAILROOM_API const char* to_string(signal s) noexcept;

} // namespace mailroom::limit
