#include <mailroom/limit/rate_limiter.hpp>

#include "helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

using namespace std::chrono_literals;
using mailroom::diagnostics;
using mailroom::limit::duration;
using mailroom::limit::rate_limiter;
using mailroom::limit::rate_limiter_options;
using mailroom::limit::signal;
using mailroom::limit::ticket;
using mailroom::limit::time_point;

namespace {

using mailroom::limit::test::make;
using mailroom::limit::test::push;
using mailroom::limit::test::t0;

} // namespace

TEST_SUITE("limit.adaptive")
{
    TEST_CASE("slow down halves the rate; it recovers 10 % every 30 s, exactly")
    {
        // 10/s, a deep bucket starting empty, the default adaptive options.
        const rate_limiter_options o{.buckets = {{.rate = 10, .burst = 100'000, .initial = 0}}};
        auto l = make(o);
        l.on_signal(signal::slow_down, t0);
        auto s = l.snapshot(t0);
        CHECK(s.rate_permille == 500);
        CHECK(s.buckets[0].effective_rate == doctest::Approx(5.0));
        CHECK(s.slow_down_signals == 1);
        CHECK(s.rate_cuts == 1);

        struct point {
            duration at;
            unsigned permille;
            std::uint64_t tokens; // 5/s for 30 s, then 6/s, 7/s, ... up to 10/s
        };
        for (point p : {point{29s, 500, 145}, point{30s - 1ns, 500, 149}, point{30s, 600, 150},
                        point{60s, 700, 330}, point{90s, 800, 540}, point{120s, 900, 780},
                        point{150s, 1000, 1050}, point{180s, 1000, 1350}}) {
            CAPTURE(p.at.count());
            s = l.snapshot(t0 + p.at);
            CHECK(s.rate_permille == p.permille);
            CHECK(s.buckets[0].available == p.tokens);
            CHECK(s.buckets[0].effective_rate == doctest::Approx(p.permille / 100.0));
        }

        // The same signal on a limiter looked at only once, three minutes later, gives the same
        // tokens: recovery steps are applied at their own times.
        auto once = make(o);
        once.on_signal(signal::slow_down, t0);
        CHECK(once.snapshot(t0 + 180s).buckets[0].available == 1350);
        CHECK(once.snapshot(t0 + 180s).rate_permille == 1000);
    }

    TEST_CASE("cuts compound down to the floor; signals within the cooldown don't cut")
    {
        auto l = make({.buckets = {{.rate = 100}}});
        l.on_signal(signal::slow_down, t0);
        CHECK(l.rate_permille() == 500);
        l.on_signal(signal::slow_down, t0 + 500ms); // replies to sends made before the cut
        CHECK(l.rate_permille() == 500);
        l.on_signal(signal::slow_down, t0 + 1s);
        CHECK(l.rate_permille() == 250);
        l.on_signal(signal::slow_down, t0 + 2s);
        CHECK(l.rate_permille() == 125);
        l.on_signal(signal::slow_down, t0 + 3s);
        CHECK(l.rate_permille() == 100); // 62 is below the floor
        l.on_signal(signal::slow_down, t0 + 4s);
        CHECK(l.rate_permille() == 100);
        const auto s = l.snapshot(t0 + 4s);
        CHECK(s.slow_down_signals == 6);
        CHECK(s.rate_cuts == 4);
        CHECK(s.buckets[0].effective_rate == doctest::Approx(10.0));

        // Recovery from the last signal: +100 every 30 s, 1000 after nine steps.
        CHECK(l.snapshot(t0 + 34s - 1ns).rate_permille == 100);
        CHECK(l.snapshot(t0 + 34s).rate_permille == 200);
        CHECK(l.snapshot(t0 + 274s - 1ns).rate_permille == 900);
        CHECK(l.snapshot(t0 + 274s).rate_permille == 1000);
    }

    TEST_CASE("a signal within the cooldown still restarts the recovery clock")
    {
        auto l = make({.buckets = {{.rate = 100}}});
        l.on_signal(signal::slow_down, t0);
        l.on_signal(signal::slow_down, t0 + 500ms);
        CHECK(l.rate_permille() == 500);
        CHECK(l.snapshot(t0 + 30s).rate_permille == 500);
        CHECK(l.snapshot(t0 + 30500ms).rate_permille == 600);
    }

    TEST_CASE("custom steps: cut to 70 %, floor 50 %, +5 % a minute, no cooldown")
    {
        auto l = make({.buckets = {{.rate = 1000}},
                       .adaptive = {.cut_to_permille = 700,
                                    .floor_permille = 500,
                                    .step_permille = 50,
                                    .step_interval = 1min,
                                    .cut_cooldown = 0s}});
        l.on_signal(signal::slow_down, t0);
        l.on_signal(signal::slow_down, t0);
        CHECK(l.rate_permille() == 500); // 700, then 490 → the floor
        CHECK(l.snapshot(t0 + 1min).rate_permille == 550);
        CHECK(l.snapshot(t0 + 10min).rate_permille == 1000);
    }

    TEST_CASE("next_wakeup counts the recovery steps")
    {
        // 1 token per 10 s, cut to 0.5 per 10 s; 5 tokens wanted from empty.
        auto l = make({.buckets = {{.rate = 1, .per = 10s, .burst = 10, .initial = 0}}});
        l.on_signal(signal::slow_down, t0);
        const ticket t = push(l, 5);
        // At the cut rate that is 100 s away, but the rate rises at 30 s: look again then.
        CHECK(l.next_wakeup(t0) == t0 + 30s);
        CHECK(l.poll(t0 + 30s).empty());
        // 1.5 tokens held, 0.06/s now: 58.3 s away, past the next step at 60 s.
        CHECK(l.next_wakeup(t0 + 30s) == t0 + 60s);
        CHECK(l.poll(t0 + 60s).empty());
        // 3.3 tokens held, 0.07/s: 1.7 more in 24.2857142857 s, rounded up to the nanosecond.
        const time_point ready = t0 + 60s + 24'285'714'286ns;
        CHECK(l.next_wakeup(t0 + 60s) == ready);
        CHECK(l.poll(ready - 1ns).empty());
        CHECK(l.poll(ready) == std::vector<ticket>{t});
    }

    TEST_CASE("the concurrency cap follows the rate")
    {
        auto l = make({.max_in_flight = 10});
        std::vector<ticket> granted;
        for (int i = 0; i < 10; ++i)
            push(l, 1);
        granted = l.poll(t0);
        REQUIRE(granted.size() == 10);

        l.on_signal(signal::slow_down, t0);
        CHECK(l.snapshot(t0).max_in_flight == 5);
        l.on_signal(signal::slow_down, t0 + 1s);
        CHECK(l.snapshot(t0 + 1s).max_in_flight == 2); // 2.5, rounded down
        l.on_signal(signal::slow_down, t0 + 2s);
        CHECK(l.snapshot(t0 + 2s).max_in_flight == 1); // 1.25
        l.on_signal(signal::slow_down, t0 + 3s);
        CHECK(l.snapshot(t0 + 3s).max_in_flight == 1); // the floor, 1.0; never 0

        const ticket next = push(l, 1, t0 + 3s);
        for (int i = 0; i < 9; ++i)
            CHECK(l.release(granted[i]));
        CHECK(l.poll(t0 + 3s).empty()); // 1 in flight, cap 1
        // Blocked on concurrency, but the cap rises at the next step: wake up then.
        CHECK(l.next_wakeup(t0 + 3s) == t0 + 33s);
        CHECK(l.poll(t0 + 33s) == std::vector<ticket>{next}); // 200 ‰: cap 2
        CHECK(l.snapshot(t0 + 33s).max_in_flight == 2);
    }

    TEST_CASE("adaptive off: signals are counted, the rate stays")
    {
        auto l =
            make({.buckets = {{.rate = 10}}, .max_in_flight = 4, .adaptive = {.enabled = false}});
        l.on_signal(signal::slow_down, t0);
        l.on_signal(signal::slow_down, t0 + 5s);
        const auto s = l.snapshot(t0 + 5s);
        CHECK(s.rate_permille == 1000);
        CHECK(s.slow_down_signals == 2);
        CHECK(s.rate_cuts == 0);
        CHECK(s.max_in_flight == 4);
    }

    TEST_CASE("each signal applies: none, slow_down, quota_exhausted")
    {
        // What SES's replies give (smtp::rate_signal, tested in smtp.rate_signal): a queued
        // message none, "Maximum sending rate exceeded" slow_down, "Daily message quota
        // exceeded" quota_exhausted.
        auto l = make({.buckets = {{.rate = 14}}});
        l.on_signal(signal::none, t0);
        CHECK(l.rate_permille() == 1000);
        l.on_signal(signal::slow_down, t0);
        CHECK(l.rate_permille() == 500);
        l.on_signal(signal::quota_exhausted, t0);
        CHECK(l.paused_until().has_value());
    }

    TEST_CASE("a quota reply pauses until the daily bucket is full again, then sending resumes")
    {
        auto l = make({.buckets = {{.rate = 14, .burst = 20}, {.rate = 10'000, .per = 24h}}});
        for (int i = 0; i < 5; ++i)
            push(l, 1);
        CHECK(l.poll(t0).size() == 5);

        l.on_signal(signal::quota_exhausted, t0 + 1s);
        const time_point until = t0 + 1s + 24h; // 10 000 at 10 000/day: a day
        auto s = l.snapshot(t0 + 1s);
        CHECK(s.paused_until == until);
        CHECK(s.quota_signals == 1);
        CHECK(s.buckets[1].available == 0);  // emptied: the server knows better
        CHECK(s.buckets[0].available == 20); // the per-second bucket is untouched
        const ticket a = push(l, 1, t0 + 2s);
        const ticket b = push(l, 1, t0 + 2s);
        CHECK(l.poll(t0 + 2s).empty());
        CHECK(l.next_wakeup(t0 + 2s) == until);
        CHECK(l.poll(until - 1ns).empty());
        CHECK(l.poll(until) == std::vector<ticket>{a, b});
        s = l.snapshot(until);
        CHECK_FALSE(s.paused_until.has_value());
        CHECK(s.buckets[1].available == 9'998);
    }

    TEST_CASE("a configured quota pause; the daily bucket refills meanwhile")
    {
        auto l = make({.buckets = {{.rate = 14, .burst = 20}, {.rate = 10'000, .per = 24h}},
                       .quota_pause = 1h});
        l.on_signal(signal::quota_exhausted, t0);
        CHECK(l.paused_until() == t0 + 1h);
        // Another quota reply half an hour later extends the pause.
        l.on_signal(signal::quota_exhausted, t0 + 30min);
        CHECK(l.paused_until() == t0 + 90min);
        for (int i = 0; i < 500; ++i)
            push(l, 1, t0 + 30min);
        CHECK(l.poll(t0 + 90min - 1ns).empty());
        // An hour of 10 000/day since the second emptying: 416.7 tokens; the burst of 20 goes.
        CHECK(l.snapshot(t0 + 90min).buckets[1].available == 416);
        CHECK(l.poll(t0 + 90min).size() == 20);
    }

    TEST_CASE("with no bucket a quota reply pauses a day; resume() ends a pause early")
    {
        auto l = make({.max_in_flight = 5});
        l.on_signal(signal::quota_exhausted, t0);
        CHECK(l.paused_until() == t0 + 24h);
        const ticket t = push(l, 1);
        CHECK(l.poll(t0 + 1h).empty());
        CHECK(l.next_wakeup(t0 + 1h) == t0 + 24h);
        l.resume();
        CHECK_FALSE(l.paused_until().has_value());
        CHECK(l.poll(t0 + 1h) == std::vector<ticket>{t});
    }

    TEST_CASE("the pause keeps FIFO order and cancellation works during it")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 10}}, .quota_pause = 10s});
        l.on_signal(signal::quota_exhausted, t0);
        std::vector<ticket> w;
        for (int i = 0; i < 4; ++i)
            w.push_back(push(l, 3));
        CHECK(l.cancel(w[1]));
        CHECK(l.poll(t0 + 5s).empty());
        CHECK(l.poll(t0 + 10s) == std::vector<ticket>{w[0], w[2], w[3]});
    }
}
