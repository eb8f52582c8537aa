#include <mailroom/limit/token_bucket.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <random>

using namespace std::chrono_literals;
using mailroom::diagnostics;
using mailroom::error;
using mailroom::limit::bucket_options;
using mailroom::limit::duration;
using mailroom::limit::time_point;
using mailroom::limit::token_bucket;

namespace {

// The manual clock: a time point is a plain value.
const time_point t0{};

__extension__ typedef unsigned __int128 u128;

token_bucket make(const bucket_options& o, time_point start = t0)
{
    diagnostics d;
    auto b = token_bucket::create(o, start, d);
    REQUIRE_MESSAGE(b.has_value(), d.to_string());
    return *b;
}

error create_error(const bucket_options& o, std::string* field = nullptr)
{
    diagnostics d;
    auto b = token_bucket::create(o, t0, d);
    REQUIRE_FALSE(b.has_value());
    if (field)
        *field = d.field;
    return static_cast<error>(b.error().value());
}

// floor(elapsed × rate / per), the tokens an empty bucket has gained after `elapsed` with no cap.
std::uint64_t refilled(duration elapsed, std::uint64_t rate, duration per)
{
    return static_cast<std::uint64_t>(elapsed.count()) * rate /
           static_cast<std::uint64_t>(per.count());
}

} // namespace

TEST_SUITE("limit.token_bucket")
{
    TEST_CASE("starts full, gives the burst at once, then refills at the rate exactly")
    {
        auto b = make({.rate = 14, .burst = 20});
        CHECK(b.rate() == 14);
        CHECK(b.burst() == 20);
        CHECK(b.per() == 1s);
        CHECK(b.available(t0) == 20);
        CHECK(b.try_take(20, t0));
        CHECK(b.available(t0) == 0);
        CHECK_FALSE(b.try_take(1, t0));

        // One token every 1/14 s = 71 428 571.43 ns: the first whole token at 71 428 572 ns.
        CHECK(b.time_until(1, t0) == 71'428'572ns);
        CHECK(b.available(t0 + 71'428'571ns) == 0);
        CHECK(b.available(t0 + 71'428'572ns) == 1);
        CHECK(b.available(t0 + 1s) == 14);
        CHECK(b.available(t0 + 1s - 1ns) == 13);
        // The cap: ten idle seconds hold the burst, not 140.
        CHECK(b.available(t0 + 10s) == 20);
        CHECK(b.try_take(14, t0 + 1s));
        CHECK(b.available(t0 + 1s) == 0);
        CHECK(b.available(t0 + 2s) == 14);
    }

    TEST_CASE("time_until is the first instant the tokens are there")
    {
        auto b = make({.rate = 14, .burst = 20, .initial = 0});
        for (std::uint64_t n = 1; n <= 20; ++n) {
            CAPTURE(n);
            const duration d = b.time_until(n, t0);
            // The n-th token arrives at ceil(n × 10^9 / 14) ns.
            CHECK(d.count() == static_cast<std::int64_t>((n * 1'000'000'000 + 13) / 14));
            CHECK(b.available(t0 + d) == n);
            CHECK(b.available(t0 + d - 1ns) == n - 1);
        }
        CHECK(b.time_until(0, t0) == 0ns);
        // Measured from the `now` given, not from the last update.
        CHECK(b.try_take(0, t0 + 1s));
        CHECK(b.time_until(15, t0 + 1s) == 71'428'572ns);
    }

    TEST_CASE("periods of a minute, an hour and a day")
    {
        auto minute = make({.rate = 30, .per = 1min, .initial = 0});
        CHECK(minute.burst() == 30); // burst 0 means the rate
        CHECK(minute.time_until(1, t0) == 2s);
        CHECK(minute.available(t0 + 59s) == 29);
        CHECK(minute.available(t0 + 1min) == 30);

        auto hour = make({.rate = 3600, .per = 1h, .burst = 10, .initial = 0});
        CHECK(hour.time_until(1, t0) == 1s);
        CHECK(hour.time_until(10, t0) == 10s);

        auto day = make({.rate = 10'000, .per = 24h, .initial = 0});
        CHECK(day.time_until(1, t0) == 8'640ms);
        CHECK(day.available(t0 + 12h) == 5'000);

        // 86 400 s / 7 doesn't divide: 12 342.857142857142... s, rounded up to the nanosecond.
        auto odd = make({.rate = 7, .per = 24h, .initial = 0});
        CHECK(odd.time_until(1, t0) == 12'342'857'142'858ns);
        CHECK(odd.available(t0 + 24h) == 7);
        CHECK(odd.available(t0 + 24h - 1ns) == 6);
    }

    TEST_CASE("no drift: 86 400 one-second steps of 10 000/day give exactly 10 000 tokens")
    {
        auto stepped = make({.rate = 10'000, .per = 24h, .initial = 0});
        auto jumped = make({.rate = 10'000, .per = 24h, .initial = 0});
        for (int i = 1; i <= 86'400; ++i) {
            const time_point t = t0 + std::chrono::seconds(i);
            stepped.advance(t);
            // Exact at every step, not only at the end: floor(i × 10 000 / 86 400).
            if (stepped.available(t) != refilled(t - t0, 10'000, 24h)) {
                CAPTURE(i);
                FAIL("stepped bucket drifted");
            }
        }
        CHECK(stepped.available(t0 + 24h) == 10'000);
        CHECK(jumped.available(t0 + 24h) == 10'000);
        CHECK(jumped.available(t0 + 24h - 1ns) == 9'999);

        // Taking every token as soon as it is whole, once a second for a day, also gives 10 000:
        // the fraction left after each take carries on.
        auto taker = make({.rate = 10'000, .per = 24h, .initial = 0});
        std::uint64_t taken = 0;
        for (int i = 1; i <= 86'400; ++i) {
            const time_point t = t0 + std::chrono::seconds(i);
            const std::uint64_t n = taker.available(t);
            REQUIRE(taker.try_take(n, t));
            taken += n;
            if (i == 86'399)
                CHECK(taken == 9'999);
        }
        CHECK(taken == 10'000);
        CHECK(taker.available(t0 + 24h) == 0);
    }

    TEST_CASE("random step sizes give the same level as one jump")
    {
        struct shape {
            std::uint64_t rate;
            duration per;
        };
        for (shape s : {shape{14, 1s}, shape{7, 24h}, shape{30, 1min}, shape{999'983, 24h}}) {
            CAPTURE(s.rate);
            std::mt19937_64 rng(s.rate);
            auto b = make(
                {.rate = s.rate, .per = s.per, .burst = token_bucket::max_tokens, .initial = 0});
            std::uniform_int_distribution<std::int64_t> step(1, s.per.count() / 50);
            time_point t = t0;
            for (int i = 0; i < 2000; ++i) {
                t += duration(step(rng));
                b.advance(t);
            }
            const auto elapsed = static_cast<u128>((t - t0).count());
            const auto expected =
                static_cast<std::uint64_t>(elapsed * s.rate / static_cast<u128>(s.per.count()));
            CHECK(b.available(t) == expected);
        }
    }

    TEST_CASE("refund gives tokens back, never above the burst, keeping the fraction")
    {
        auto b = make({.rate = 14, .burst = 20});
        REQUIRE(b.try_take(5, t0));
        b.refund(10);
        CHECK(b.available(t0) == 20);

        REQUIRE(b.try_take(20, t0));
        // 50 ms later the bucket holds 0.7 token; a refund of 1 makes 1.7.
        b.advance(t0 + 50ms);
        b.refund(1);
        CHECK(b.available(t0 + 50ms) == 1);
        // 0.3 token more at 14/s: 21 428 571.43 ns.
        CHECK(b.time_until(2, t0 + 50ms) == 21'428'572ns);

        // From 19.7 tokens, a refund of 5 stops at exactly 20, fraction gone.
        auto c = make({.rate = 14, .burst = 20});
        REQUIRE(c.try_take(1, t0));
        c.advance(t0 + 50ms);
        c.refund(5);
        CHECK(c.available(t0 + 50ms) == 20);
        CHECK(c.time_until(20, t0 + 50ms) == 0ns);
        REQUIRE(c.try_take(1, t0 + 50ms));
        CHECK(c.time_until(20, t0 + 50ms) == 71'428'572ns);
    }

    TEST_CASE("zero, and more than the burst")
    {
        auto b = make({.rate = 10, .burst = 20, .initial = 0});
        CHECK(b.try_take(0, t0));
        CHECK(b.time_until(0, t0) == 0ns);
        CHECK(b.time_until(20, t0) == 2s);
        CHECK(b.time_until(21, t0) == duration::max());
        CHECK_FALSE(b.try_take(21, t0 + 1h));
        CHECK(b.available(t0 + 1h) == 20);
        CHECK(b.time_until(21, t0 + 1h) == duration::max());
    }

    TEST_CASE("time never runs backwards")
    {
        auto b = make({.rate = 10, .initial = 0});
        b.advance(t0 + 1s);
        CHECK(b.available(t0) == 10);
        // A take "at" an earlier time happens at the latest time seen.
        REQUIRE(b.try_take(10, t0 + 500ms));
        CHECK(b.available(t0 + 1s) == 0);
        CHECK(b.time_until(1, t0 + 1s) == 100ms);
        // Measured from the `now` given: 0.5 s to reach the last update, then 100 ms.
        CHECK(b.time_until(1, t0 + 500ms) == 600ms);
        CHECK(b.available(t0 + 1100ms) == 1);
    }

    TEST_CASE("a scaled rate applies from the moment it is set")
    {
        auto b = make({.rate = 10, .burst = 1000, .initial = 0});
        b.set_rate_permille(500, t0);
        CHECK(b.rate_permille() == 500);
        CHECK(b.available(t0 + 1s) == 5);
        CHECK(b.time_until(6, t0 + 1s) == 200ms);
        b.set_rate_permille(1000, t0 + 1s);
        CHECK(b.available(t0 + 2s) == 15);
        // 0.1 % steps are exact too: 10/s × 0.333 = 3.33/s.
        b.set_rate_permille(333, t0 + 2s);
        CHECK(b.available(t0 + 5s) == 24); // 15 + 9.99
        CHECK(b.available(t0 + 5s + 3'003'004ns) == 25);
        CHECK(b.available(t0 + 5s + 3'003'003ns) == 24);
        // Clamped to 1..1000.
        b.set_rate_permille(0, t0 + 5s);
        CHECK(b.rate_permille() == 1);
        b.set_rate_permille(5000, t0 + 5s);
        CHECK(b.rate_permille() == 1000);
    }

    TEST_CASE("time_to_supply ignores the cap and the scaled rate")
    {
        auto b = make({.rate = 10, .burst = 10});
        CHECK(b.time_to_supply(10, t0) == 0ns);
        CHECK(b.time_to_supply(25, t0) == 1500ms);
        b.set_rate_permille(500, t0);
        CHECK(b.time_to_supply(25, t0) == 1500ms);
        CHECK(b.time_until(10, t0) == 0ns);
        // A supply that doesn't fit a duration saturates.
        auto slow = make({.rate = 1, .per = token_bucket::max_period, .burst = 1, .initial = 0});
        CHECK(slow.time_to_supply(1'000'000, t0) == duration::max());
    }

    TEST_CASE("drain empties at once")
    {
        auto b = make({.rate = 10'000, .per = 24h});
        b.drain(t0 + 1s);
        CHECK(b.available(t0 + 1s) == 0);
        CHECK(b.time_until(10'000, t0 + 1s) == 24h);
    }

    TEST_CASE("the largest values fit")
    {
        const std::uint64_t max = token_bucket::max_tokens;
        auto b = make({.rate = max, .per = token_bucket::max_period, .burst = max, .initial = 0});
        CHECK(b.time_until(max, t0) == token_bucket::max_period);
        CHECK(b.available(t0 + token_bucket::max_period) == max);
        CHECK(b.available(t0 + token_bucket::max_period / 2) == max / 2);

        // A nanosecond-scale rate: 10^12 tokens a second, burst 10^12.
        auto fast = make({.rate = max, .burst = max, .initial = 0});
        CHECK(fast.available(t0 + 1ns) == 1000);
        CHECK(fast.available(t0 + 1s) == max);

        // Years of waiting saturate instead of overflowing.
        auto slow = make({.rate = 1, .per = token_bucket::max_period, .burst = max, .initial = 0});
        CHECK(slow.time_until(max, t0) == duration::max());
        // 2^63 - 1 ns is 593.06 periods of 180 days.
        CHECK(slow.available(time_point::max()) == 593);
        CHECK(fast.available(time_point::max()) == max);
    }

    TEST_CASE("invalid options")
    {
        std::string field;
        CHECK(create_error({.rate = 0}, &field) == error::invalid_limit);
        CHECK(field == "rate");
        CHECK(create_error({.rate = token_bucket::max_tokens + 1}, &field) == error::invalid_limit);
        CHECK(field == "rate");
        CHECK(create_error({.rate = 1, .per = 0s}, &field) == error::invalid_limit);
        CHECK(field == "per");
        CHECK(create_error({.rate = 1, .per = -1s}, &field) == error::invalid_limit);
        CHECK(create_error({.rate = 1, .per = token_bucket::max_period + 1ns}, &field) ==
              error::invalid_limit);
        CHECK(field == "per");
        CHECK(create_error({.rate = 1, .burst = token_bucket::max_tokens + 1}, &field) ==
              error::invalid_limit);
        CHECK(field == "burst");
        CHECK(create_error({.rate = 5, .burst = 10, .initial = 11}, &field) ==
              error::invalid_limit);
        CHECK(field == "initial");
        CHECK(create_error({.rate = 5, .initial = 6}) == error::invalid_limit);

        CHECK(token_bucket::create({.rate = 5, .initial = 5}, t0).has_value());
        CHECK(token_bucket::create({.rate = 1, .per = token_bucket::max_period}, t0).has_value());
        const mailroom::error_code ec = error::invalid_limit;
        CHECK(ec == mailroom::condition::invalid_input);
        CHECK(ec.message() == "invalid rate limit options");
    }
}
