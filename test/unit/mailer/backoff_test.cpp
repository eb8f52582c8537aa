#include "detail/backoff.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using mailroom::pool::backoff_options;
using mailroom::pool::duration;
using mailroom::pool::detail::backoff_delay;

TEST_CASE("backoff: doubles from initial up to max, jittered within [d/2, d]")
{
    const backoff_options o{.initial = 100ms, .max = 1s};
    CHECK(backoff_delay(o, 0, 0.5) == duration::zero());
    const duration steps[] = {100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s};
    for (unsigned n = 1; n <= 7; ++n) {
        CAPTURE(n);
        const duration d = steps[n - 1];
        CHECK(backoff_delay(o, n, 0.0) == d / 2);
        CHECK(backoff_delay(o, n, 1.0) == d);
        const auto mid = backoff_delay(o, n, 0.5);
        CHECK(mid > d / 2);
        CHECK(mid < d);
    }
}

TEST_CASE("backoff: many failures neither overflow nor exceed max")
{
    const backoff_options o{.initial = 250ms, .max = 30s};
    for (unsigned n : {10u, 63u, 64u, 1000u, 4'000'000'000u}) {
        CAPTURE(n);
        CHECK(backoff_delay(o, n, 1.0) == 30s);
        CHECK(backoff_delay(o, n, 0.0) == 15s);
    }
}

TEST_CASE("backoff: out-of-range jitter input is clamped")
{
    const backoff_options o{.initial = 1s, .max = 1s};
    CHECK(backoff_delay(o, 1, -3.0) == 500ms);
    CHECK(backoff_delay(o, 1, 7.0) == 1s);
}

TEST_CASE("backoff: spread — distinct inputs give distinct delays")
{
    const backoff_options o{.initial = 1s, .max = 8s};
    duration prev = duration::min();
    for (int i = 0; i < 10; ++i) {
        const auto d = backoff_delay(o, 3, i / 10.0);
        CHECK(d > prev);
        prev = d;
    }
}
