// Shared by the limit tests: a limiter on the manual clock, and enqueue that must succeed.
#pragma once

#include <mailroom/limit/rate_limiter.hpp>

#include <doctest/doctest.h>

namespace mailroom::limit::test {

inline const time_point t0{};

inline rate_limiter make(const rate_limiter_options& o, time_point start = t0)
{
    diagnostics d;
    auto l = rate_limiter::create(o, start, d);
    REQUIRE_MESSAGE(l.has_value(), d.to_string());
    return *l;
}

inline ticket push(rate_limiter& l, std::uint64_t cost, time_point now = t0)
{
    auto t = l.enqueue(cost, now);
    REQUIRE_MESSAGE(t.has_value(), t.error().message());
    return *t;
}

} // namespace mailroom::limit::test
