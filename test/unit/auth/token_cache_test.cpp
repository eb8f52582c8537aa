// The token cache's decisions (lib/auth/token_cache.hpp) on a manual clock: first get, cache
// hits, refresh ahead of expiry with the margin capped at a fifth of the lifetime, single
// flight, failure holds (short for transient, long for permanent), invalidation.

#include "auth/token_cache.hpp"

#include "common/manual_clock.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace mailroom;
using tclock = mailroom::auth::clock;
using mailroom::auth::refresh_policy;
using mailroom::auth::detail::token_cache;
using verdict = token_cache::verdict;

namespace {

refresh_policy policy()
{
    refresh_policy p;
    p.margin = 5min;
    p.failure_hold = 1s;
    p.retry_max = 30s;
    p.default_lifetime = 1h;
    return p;
}

} // namespace

TEST_SUITE("auth.token_cache")
{
    TEST_CASE("first get refreshes; gets during it wait; then the cache answers")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        CHECK(c.on_get(t.now()) == verdict::refresh);
        CHECK(c.in_flight());
        for (int i = 0; i < 100; ++i)
            CHECK(c.on_get(t.now()) == verdict::wait); // single flight: nobody starts another
        c.on_success(t.now(), "tok1", t.now() + 1h);
        CHECK_FALSE(c.in_flight());
        CHECK(c.on_get(t.now()) == verdict::use);
        CHECK(c.token() == "tok1");
    }

    TEST_CASE("refresh ahead: at expiry minus the margin, once, the old token still used")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_success(t.now(), "tok1", t.now() + 1h);
        t.advance(55min - 1s);
        CHECK(c.on_get(t.now()) == verdict::use);
        t.advance(1s); // 5 minutes left: the margin
        CHECK(c.on_get(t.now()) == verdict::use_and_refresh);
        CHECK(c.token() == "tok1");
        CHECK(c.on_get(t.now()) == verdict::use); // one refresh in flight, not two
        t.advance(5min); // expired before the refresh came back: gets wait now
        CHECK(c.on_get(t.now()) == verdict::wait);
        c.on_success(t.now(), "tok2", t.now() + 1h);
        CHECK(c.on_get(t.now()) == verdict::use);
        CHECK(c.token() == "tok2");
    }

    TEST_CASE("a short-lived token: the margin is capped at a fifth of its lifetime")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_success(t.now(), "short", t.now() + 10s);
        CHECK(c.refresh_at() == t.now() + 8s);
        t.advance(8s - 1ms);
        CHECK(c.on_get(t.now()) == verdict::use);
        t.advance(1ms);
        CHECK(c.on_get(t.now()) == verdict::use_and_refresh);
    }

    TEST_CASE("no expires_in: the default lifetime")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_success(t.now(), "tok", tclock::time_point::max());
        CHECK(c.expires_at() == t.now() + 1h);
    }

    TEST_CASE("a transient failure is held briefly, then a get tries again")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_failure(t.now(), make_error_code(error::token_refresh_failed),
                     {"token endpoint", "HTTP 503"});
        CHECK(c.on_get(t.now()) == verdict::fail);
        CHECK(c.held_error() == error::token_refresh_failed);
        CHECK(c.held_diag().detail == "HTTP 503");
        t.advance(1s);
        CHECK(c.on_get(t.now()) == verdict::refresh);
    }

    TEST_CASE("a permanent failure is held for retry_max")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_failure(t.now(), make_error_code(error::token_refresh_refused),
                     {"token endpoint", "HTTP 400: invalid_grant"});
        t.advance(29s);
        CHECK(c.on_get(t.now()) == verdict::fail);
        t.advance(1s);
        CHECK(c.on_get(t.now()) == verdict::refresh);
    }

    TEST_CASE("a failed background refresh leaves the good token in use")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_success(t.now(), "tok1", t.now() + 1h);
        t.advance(56min);
        REQUIRE(c.on_get(t.now()) == verdict::use_and_refresh);
        c.on_failure(t.now(), make_error_code(error::token_refresh_failed), {});
        CHECK(c.on_get(t.now()) == verdict::use_and_refresh); // tries again, still serving
        CHECK(c.token() == "tok1");
    }

    TEST_CASE("invalidate drops the cached token only, and asks for a new one")
    {
        test::manual_clock<tclock> t(tclock::time_point{} + 1000h);
        token_cache c(policy());
        REQUIRE(c.on_get(t.now()) == verdict::refresh);
        c.on_success(t.now(), "tok1", t.now() + 1h);
        CHECK_FALSE(c.invalidate("old")); // already replaced: nothing happens
        CHECK(c.on_get(t.now()) == verdict::use);
        CHECK_FALSE(c.force_next());
        CHECK(c.invalidate("tok1"));
        CHECK(c.force_next());
        CHECK_FALSE(c.invalidate("tok1")); // 100 refusals of one token: one drop
        CHECK(c.on_get(t.now()) == verdict::refresh);
        CHECK(c.on_get(t.now()) == verdict::wait);
        c.on_success(t.now(), "tok2", t.now() + 1h);
        CHECK_FALSE(c.force_next());
        CHECK(c.token() == "tok2");
    }
}
