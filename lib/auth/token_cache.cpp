// The token cache's decisions (see token_cache.hpp).
#include "token_cache.hpp"

#include <algorithm>

namespace mailroom::auth::detail {

bool token_cache::usable(clock::time_point now) const noexcept
{
    return cached_ && now < expires_at_;
}

clock::time_point token_cache::refresh_at() const noexcept
{
    const duration lifetime = expires_at_ - obtained_;
    const duration margin = std::min(policy_.margin, lifetime / 5);
    return expires_at_ - margin;
}

token_cache::verdict token_cache::on_get(clock::time_point now)
{
    if (usable(now)) {
        if (!in_flight_ && now >= refresh_at()) {
            in_flight_ = true;
            return verdict::use_and_refresh;
        }
        return verdict::use;
    }
    if (in_flight_)
        return verdict::wait;
    if (held_ec_ && now < hold_until_)
        return verdict::fail;
    in_flight_ = true;
    return verdict::refresh;
}

void token_cache::on_success(clock::time_point now, std::string value, clock::time_point expires_at)
{
    in_flight_ = false;
    force_ = false;
    held_ec_ = {};
    held_diag_.clear();
    value_ = std::move(value);
    cached_ = true;
    obtained_ = now;
    expires_at_ = expires_at == clock::time_point::max() ? now + policy_.default_lifetime
                                                         : std::max(expires_at, now);
}

void token_cache::on_failure(clock::time_point now, error_code ec, diagnostics diag)
{
    in_flight_ = false;
    held_ec_ = ec;
    held_diag_ = std::move(diag);
    const bool permanent = ec == condition::permanent;
    hold_until_ = now + (permanent ? std::max(policy_.failure_hold, policy_.retry_max)
                                   : policy_.failure_hold);
}

bool token_cache::invalidate(std::string_view value)
{
    if (!cached_ || value != value_)
        return false;
    cached_ = false;
    value_.clear();
    force_ = true;
    return true;
}

} // namespace mailroom::auth::detail
