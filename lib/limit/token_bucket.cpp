// mailroom::limit::token_bucket: exact refill arithmetic.
#include <mailroom/limit/token_bucket.hpp>

#include "wide.hpp"

#include <algorithm>
#include <string>

namespace mailroom::limit {

using detail::u128;

namespace {

error_code invalid(diagnostics& diag, const char* field, const char* detail)
{
    diag.field = field;
    diag.detail = detail;
    return error::invalid_limit;
}

} // namespace

result<token_bucket> token_bucket::create(const bucket_options& o, time_point now,
                                          diagnostics& diag)
{
    if (o.rate == 0 || o.rate > max_tokens)
        return invalid(diag, "rate", "must be 1 to 10^12 tokens");
    if (o.per <= duration::zero() || o.per > max_period)
        return invalid(diag, "per", "must be longer than zero and at most 180 days");
    const std::uint64_t burst = o.burst == 0 ? o.rate : o.burst;
    if (burst > max_tokens)
        return invalid(diag, "burst", "must be 1 to 10^12 tokens (0: the rate)");
    if (o.initial && *o.initial > burst)
        return invalid(diag, "initial", "must not exceed the burst");

    token_bucket b;
    b.rate_ = o.rate;
    b.burst_ = burst;
    b.per_ = o.per;
    // The fraction of a token is counted in 1/(per in ns × 1000): then d ns at rate × permille
    // per (per × 1000) add exactly d × rate × permille units, with no division and no rounding.
    b.unit_ = static_cast<std::uint64_t>(detail::nanoseconds_of(o.per)) * full_rate;
    b.level_.whole = o.initial ? *o.initial : burst;
    b.last_ = now;
    return b;
}

result<token_bucket> token_bucket::create(const bucket_options& o, time_point now)
{
    diagnostics diag;
    return create(o, now, diag);
}

token_bucket::level token_bucket::level_at(time_point now) const noexcept
{
    if (now <= last_ || level_.whole >= burst_)
        return level_;
    const u128 added = u128(detail::nanoseconds_of(now - last_)) * rate_ * permille_;
    const u128 missing = u128(burst_ - level_.whole) * unit_ - level_.frac;
    if (added >= missing)
        return {burst_, 0};
    const u128 total = level_.frac + added;
    return {level_.whole + static_cast<std::uint64_t>(total / unit_),
            static_cast<std::uint64_t>(total % unit_)};
}

void token_bucket::advance(time_point now) noexcept
{
    if (now <= last_)
        return;
    level_ = level_at(now);
    last_ = now;
}

std::uint64_t token_bucket::available(time_point now) const noexcept
{
    return level_at(now).whole;
}

bool token_bucket::try_take(std::uint64_t n, time_point now) noexcept
{
    advance(now);
    if (level_.whole < n)
        return false;
    level_.whole -= n;
    return true;
}

duration token_bucket::time_until(std::uint64_t n, time_point now) const noexcept
{
    if (n > burst_)
        return duration::max();
    return time_at_rate(n, now, permille_);
}

duration token_bucket::time_to_supply(std::uint64_t n, time_point now) const noexcept
{
    return time_at_rate(n, now, full_rate);
}

duration token_bucket::time_at_rate(std::uint64_t n, time_point now,
                                    unsigned permille) const noexcept
{
    const time_point from = std::max(now, last_);
    const level l = level_at(from);
    if (l.whole >= n)
        return duration::zero();
    // (n - whole) < 2^64 and unit_ < 2^64: the product fits 128 bits.
    const u128 need = u128(n - l.whole) * unit_ - l.frac;
    const u128 per_ns = u128(rate_) * permille;
    return detail::saturating_span(now, from, detail::ceil_div(need, per_ns));
}

void token_bucket::refund(std::uint64_t n) noexcept
{
    if (n >= burst_ - level_.whole)
        level_ = {burst_, 0};
    else
        level_.whole += n;
}

void token_bucket::drain(time_point now) noexcept
{
    advance(now);
    level_ = {};
}

void token_bucket::set_rate_permille(unsigned permille, time_point now) noexcept
{
    advance(now);
    permille_ = std::clamp(permille, 1u, full_rate);
}

} // namespace mailroom::limit
