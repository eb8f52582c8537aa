#include <mailroom/limit/rate_limiter.hpp>

#include "helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

using namespace std::chrono_literals;
using mailroom::condition;
using mailroom::diagnostics;
using mailroom::error;
using mailroom::error_code;
using mailroom::limit::charge;
using mailroom::limit::duration;
using mailroom::limit::rate_limiter;
using mailroom::limit::rate_limiter_options;
using mailroom::limit::ticket;
using mailroom::limit::ticket_state;
using mailroom::limit::time_point;

namespace {

using mailroom::limit::test::make;
using mailroom::limit::test::push;
using mailroom::limit::test::t0;

error enqueue_error(rate_limiter& l, std::uint64_t cost, time_point now = t0)
{
    auto t = l.enqueue(cost, now);
    REQUIRE_FALSE(t.has_value());
    return static_cast<error>(t.error().value());
}

std::vector<std::uint64_t> ids(const std::vector<ticket>& ts)
{
    std::vector<std::uint64_t> out;
    for (ticket t : ts)
        out.push_back(t.id);
    return out;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last)
{
    std::vector<std::uint64_t> out;
    for (std::uint64_t i = first; i <= last; ++i)
        out.push_back(i);
    return out;
}

std::string create_error_field(const rate_limiter_options& o)
{
    diagnostics d;
    auto l = rate_limiter::create(o, t0, d);
    REQUIRE_FALSE(l.has_value());
    CHECK(l.error() == error::invalid_limit);
    return d.field;
}

} // namespace

TEST_SUITE("limit.rate_limiter")
{
    TEST_CASE("grants the burst at once, then one at a time at the rate")
    {
        auto l = make({.buckets = {{.rate = 14, .burst = 20}}});
        for (int i = 0; i < 25; ++i)
            push(l, 1);
        CHECK(ids(l.poll(t0)) == range(1, 20));
        // The 21st waits for the first refilled token, ceil(10^9 / 14) ns.
        CHECK(l.next_wakeup(t0) == t0 + 71'428'572ns);
        CHECK(l.poll(t0 + 71'428'571ns).empty());
        CHECK(ids(l.poll(t0 + 71'428'572ns)) == std::vector<std::uint64_t>{21});
        CHECK(ids(l.poll(t0 + 1s)) == range(22, 25));
        CHECK_FALSE(l.next_wakeup(t0 + 1s).has_value()); // no one waits
        const auto s = l.snapshot(t0 + 1s);
        CHECK(s.granted == 25);
        CHECK(s.granted_cost == 25);
        CHECK(s.in_flight == 25);
        CHECK(s.waiters == 0);
        REQUIRE(s.buckets.size() == 1);
        CHECK(s.buckets[0].available == 9); // 14 - 5
        CHECK(s.buckets[0].rate == 14);
        CHECK(s.buckets[0].burst == 20);
        CHECK(s.buckets[0].per == 1s);
        CHECK(s.buckets[0].effective_rate == doctest::Approx(14.0));
    }

    TEST_CASE("every bucket at once: 14/s burst 20, 30/min and 10 000/day")
    {
        auto l = make({.buckets = {{.rate = 14, .burst = 20},
                                   {.rate = 30, .per = 1min},
                                   {.rate = 10'000, .per = 24h}}});
        for (int i = 0; i < 100; ++i)
            push(l, 1);
        CHECK(ids(l.poll(t0)) == range(1, 20)); // the per-second burst
        // A second later the per-second bucket holds 14, the per-minute one 10.5: 10 go.
        CHECK(ids(l.poll(t0 + 1s)) == range(21, 30));
        // The next whole per-minute token: 0.5 held, 0.5 more at 0.5/s.
        CHECK(l.next_wakeup(t0 + 1s) == t0 + 2s);
        std::size_t granted = 30;
        for (int sec = 2; sec <= 60; ++sec)
            granted += l.poll(t0 + std::chrono::seconds(sec)).size();
        // Over the first minute: the minute bucket's 30 plus 30 refilled.
        CHECK(granted == 60);
        const auto s = l.snapshot(t0 + 60s);
        CHECK(s.waiters == 40);
        CHECK(s.waiting_cost == 40);
        CHECK(s.buckets[1].available == 0);
        // 10 000 - 60 taken + 60 s of 10 000/day (6.9) refilled since the first take.
        CHECK(s.buckets[2].available == 9'946);
    }

    TEST_CASE("a daily bucket stops the burst and sets the wake-up a token away")
    {
        auto l = make({.buckets = {{.rate = 14, .burst = 20}, {.rate = 100, .per = 24h}}});
        for (int i = 0; i < 150; ++i)
            push(l, 1);
        std::size_t granted = 0;
        for (int sec = 0; sec <= 10; ++sec)
            granted += l.poll(t0 + std::chrono::seconds(sec)).size();
        CHECK(granted == 100);
        // One token every 864 s, counted from the first take at t0.
        CHECK(l.next_wakeup(t0 + 10s) == t0 + 864s);
        CHECK(l.poll(t0 + 864s - 1ns).empty());
        CHECK(ids(l.poll(t0 + 864s)) == std::vector<std::uint64_t>{101});
    }

    TEST_CASE("charged per recipient")
    {
        auto per_message = make({.buckets = {{.rate = 10}}});
        CHECK(per_message.cost_for(4) == 1);
        CHECK(per_message.cost_for(0) == 1);

        auto l = make({.buckets = {{.rate = 10, .burst = 10}}, .charge_by = charge::per_recipient});
        CHECK(l.cost_for(4) == 4);
        CHECK(l.cost_for(1) == 1);
        for (int i = 0; i < 3; ++i)
            push(l, l.cost_for(4));
        CHECK(ids(l.poll(t0)) == range(1, 2));
        // 2 held, 4 needed: 200 ms at 10/s.
        CHECK(l.next_wakeup(t0) == t0 + 200ms);
        CHECK(l.poll(t0 + 199ms).empty());
        CHECK(ids(l.poll(t0 + 200ms)) == std::vector<std::uint64_t>{3});
        CHECK(l.snapshot(t0 + 200ms).granted_cost == 12);
    }

    TEST_CASE("FIFO: a large head blocks a later small request that would fit")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 10}}});
        const ticket first = push(l, 8);
        REQUIRE(l.poll(t0).size() == 1);
        const ticket big = push(l, 10);
        const ticket small = push(l, 1);
        CHECK(l.poll(t0).empty()); // 2 tokens held: small would fit, but big is first
        CHECK(l.snapshot(t0).buckets[0].available == 2);
        CHECK(l.state(big) == ticket_state::waiting);
        CHECK(l.state(small) == ticket_state::waiting);
        CHECK(l.state(first) == ticket_state::granted);
        CHECK(l.next_wakeup(t0) == t0 + 800ms);
        CHECK(l.poll(t0 + 799ms).empty());
        CHECK(l.poll(t0 + 800ms) == std::vector<ticket>{big});
        CHECK(l.next_wakeup(t0 + 800ms) == t0 + 900ms);
        CHECK(l.poll(t0 + 900ms) == std::vector<ticket>{small});
    }

    TEST_CASE("cancelling a waiter takes nothing and lets the next one go")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 10}}});
        push(l, 8);
        REQUIRE(l.poll(t0).size() == 1);
        const ticket big = push(l, 10);
        const ticket small = push(l, 1);
        CHECK(l.cancel(big));
        CHECK(l.state(big) == ticket_state::unknown);
        CHECK_FALSE(l.cancel(big));
        CHECK(l.poll(t0) == std::vector<ticket>{small});
        auto s = l.snapshot(t0);
        CHECK(s.buckets[0].available == 1);
        CHECK(s.cancelled_waiting == 1);
        CHECK(s.refunded == 0);
        CHECK(s.granted_cost == 9);

        // In the middle of the queue: the others keep their order.
        auto m = make({.buckets = {{.rate = 1, .burst = 5, .initial = 0}}});
        std::vector<ticket> w;
        for (int i = 0; i < 5; ++i)
            w.push_back(push(m, 1));
        CHECK(m.cancel(w[2]));
        std::vector<ticket> order;
        for (int sec = 1; sec <= 10; ++sec)
            for (ticket t : m.poll(t0 + std::chrono::seconds(sec)))
                order.push_back(t);
        CHECK(order == std::vector<ticket>{w[0], w[1], w[3], w[4]});
        CHECK(m.snapshot(t0 + 10s).granted_cost == 4);
    }

    TEST_CASE("cancelling many waiters keeps the queue small and in order")
    {
        auto l = make({.buckets = {{.rate = 1, .burst = 1, .initial = 0}}});
        std::vector<ticket> w;
        for (int i = 0; i < 1000; ++i)
            w.push_back(push(l, 1));
        // Cancel all but every 100th, from the back, so the front stays live.
        for (int i = 999; i >= 0; --i)
            if (i % 100 != 0)
                CHECK(l.cancel(w[i]));
        CHECK(l.snapshot(t0).waiters == 10);
        std::vector<ticket> order;
        for (int sec = 1; sec <= 20; ++sec)
            for (ticket t : l.poll(t0 + std::chrono::seconds(sec)))
                order.push_back(t);
        REQUIRE(order.size() == 10);
        for (int i = 0; i < 10; ++i)
            CHECK(order[i] == w[i * 100]);
    }

    TEST_CASE("cancelling a granted ticket gives its tokens back; releasing does not")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 10}}});
        const ticket g = push(l, 6);
        REQUIRE(l.poll(t0) == std::vector<ticket>{g});
        CHECK(l.snapshot(t0).buckets[0].available == 4);
        CHECK(l.cancel(g));
        auto s = l.snapshot(t0);
        CHECK(s.buckets[0].available == 10);
        CHECK(s.refunded == 1);
        CHECK(s.refunded_cost == 6);
        CHECK(s.in_flight == 0);
        CHECK(l.state(g) == ticket_state::unknown);

        const ticket g2 = push(l, 6);
        REQUIRE(l.poll(t0) == std::vector<ticket>{g2});
        CHECK(l.release(g2));
        CHECK(l.snapshot(t0).buckets[0].available == 4);
        CHECK_FALSE(l.release(g2));
        CHECK_FALSE(l.cancel(g2));
        CHECK_FALSE(l.release(ticket{}));
        CHECK_FALSE(l.release(ticket{12345}));

        // Never above the burst: 4 held + 0.8 s of refill + a refund of 4 is 10, not 16.
        const ticket g3 = push(l, 4);
        REQUIRE(l.poll(t0) == std::vector<ticket>{g3});
        CHECK(l.snapshot(t0 + 800ms).buckets[0].available == 8);
        CHECK(l.cancel(g3));
        CHECK(l.snapshot(t0 + 800ms).buckets[0].available == 10);
    }

    TEST_CASE("a cost larger than a bucket's burst is refused")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 20}, {.rate = 30, .per = 1min}}});
        CHECK(enqueue_error(l, 31) == error::cost_exceeds_burst);
        CHECK(enqueue_error(l, 21) == error::cost_exceeds_burst);
        const ticket ok = push(l, 20);
        CHECK(ids(l.poll(t0)) == std::vector<std::uint64_t>{ok.id});
        const auto s = l.snapshot(t0);
        CHECK(s.rejected == 2);
        CHECK(s.waiters == 0);

        const error_code ec = error::cost_exceeds_burst;
        CHECK(ec == condition::permanent);
        CHECK(ec.message() == "cost exceeds what a rate limit bucket can hold");

        // With no bucket, any cost goes (only concurrency and pauses apply).
        auto free = make({});
        const ticket huge = push(free, 1'000'000'000'000'000'000ULL);
        CHECK(free.poll(t0) == std::vector<ticket>{huge});
    }

    TEST_CASE("a concurrency cap: release or cancel frees a slot")
    {
        auto l = make({.max_in_flight = 2});
        std::vector<ticket> w;
        for (int i = 0; i < 4; ++i)
            w.push_back(push(l, 1));
        CHECK(l.poll(t0) == std::vector<ticket>{w[0], w[1]});
        // Waiting for a release is an event, not a time.
        CHECK_FALSE(l.next_wakeup(t0).has_value());
        CHECK(l.poll(t0 + 1h).empty());
        CHECK(l.release(w[0]));
        CHECK(l.poll(t0 + 1h) == std::vector<ticket>{w[2]});
        CHECK(l.cancel(w[1]));
        CHECK(l.poll(t0 + 1h) == std::vector<ticket>{w[3]});
        const auto s = l.snapshot(t0 + 1h);
        CHECK(s.in_flight == 2);
        CHECK(s.max_in_flight == 2);

        // A zero-cost request still takes a slot, in its turn.
        auto z = make({.buckets = {{.rate = 1, .initial = 0}}, .max_in_flight = 1});
        const ticket a = push(z, 0);
        const ticket b = push(z, 0);
        CHECK(z.poll(t0) == std::vector<ticket>{a});
        CHECK(z.poll(t0).empty());
        CHECK(z.release(a));
        CHECK(z.poll(t0) == std::vector<ticket>{b});
    }

    TEST_CASE("max_wait refuses what can't be granted in time")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 10}}, .max_wait = 1s});
        push(l, 10);                                              // held now
        const ticket second = push(l, 10);                        // 10 more in exactly 1 s: allowed
        CHECK(enqueue_error(l, 1) == error::limit_wait_too_long); // 1.1 s
        CHECK(l.poll(t0).size() == 1);
        CHECK(enqueue_error(l, 1) == error::limit_wait_too_long); // still behind `second`
        CHECK(l.cancel(second));
        push(l, 1); // now only 100 ms
        CHECK(l.snapshot(t0).rejected == 2);

        const error_code ec = error::limit_wait_too_long;
        CHECK(ec == condition::transient);
        CHECK(ec.message() == "the wait for the rate limiter would be too long");

        // A quota pause counts.
        auto p =
            make({.buckets = {{.rate = 10, .burst = 10}}, .max_wait = 1min, .quota_pause = 1h});
        p.on_signal(mailroom::limit::signal::quota_exhausted, t0);
        CHECK(enqueue_error(p, 1) == error::limit_wait_too_long);
        CHECK(enqueue_error(p, 1, t0 + 59min - 1ns) == error::limit_wait_too_long);
        push(p, 1, t0 + 59min);

        // The bound uses the configured rate: a cut rate doesn't make it refuse more.
        auto c = make({.buckets = {{.rate = 10, .burst = 10, .initial = 0}}, .max_wait = 1s});
        c.on_signal(mailroom::limit::signal::slow_down, t0);
        push(c, 10);
        CHECK(enqueue_error(c, 1) == error::limit_wait_too_long);
    }

    TEST_CASE("ticket states")
    {
        auto l = make({.buckets = {{.rate = 1, .burst = 1}}});
        CHECK(l.state(ticket{}) == ticket_state::unknown);
        const ticket a = push(l, 1);
        const ticket b = push(l, 1);
        CHECK(a < b);
        CHECK(l.state(a) == ticket_state::waiting);
        CHECK(l.poll(t0) == std::vector<ticket>{a});
        CHECK(l.state(a) == ticket_state::granted);
        CHECK(l.state(b) == ticket_state::waiting);
        CHECK(l.release(a));
        CHECK(l.state(a) == ticket_state::unknown);
        CHECK(l.state(ticket{b.id + 1}) == ticket_state::unknown);
    }

    TEST_CASE("time never runs backwards")
    {
        auto l = make({.buckets = {{.rate = 10, .burst = 10, .initial = 0}}});
        push(l, 10);
        CHECK(l.poll(t0 + 1s).size() == 1);
        push(l, 1);
        // An earlier `now` counts as the latest seen: the next token is 100 ms after t0 + 1 s.
        CHECK(l.next_wakeup(t0) == t0 + 1100ms);
        CHECK(l.poll(t0 + 500ms).empty());
        CHECK(l.poll(t0 + 1100ms).size() == 1);
    }

    TEST_CASE("invalid options name the field")
    {
        CHECK(create_error_field({.buckets = {{.rate = 10}, {.rate = 10, .per = 0s}}}) ==
              "buckets[1].per");
        CHECK(create_error_field({.buckets = {{.rate = 0}}}) == "buckets[0].rate");
        CHECK(create_error_field({.adaptive = {.cut_to_permille = 0}}) ==
              "adaptive.cut_to_permille");
        CHECK(create_error_field({.adaptive = {.cut_to_permille = 1001}}) ==
              "adaptive.cut_to_permille");
        CHECK(create_error_field({.adaptive = {.floor_permille = 0}}) == "adaptive.floor_permille");
        CHECK(create_error_field({.adaptive = {.step_permille = 0}}) == "adaptive.step_permille");
        CHECK(create_error_field({.adaptive = {.step_interval = 0s}}) == "adaptive.step_interval");
        CHECK(create_error_field({.adaptive = {.cut_cooldown = -1s}}) == "adaptive.cut_cooldown");
        CHECK(create_error_field({.max_wait = -1ns}) == "max_wait");
        CHECK(create_error_field({.quota_pause = 0s}) == "quota_pause");
        CHECK(rate_limiter::create({.adaptive = {.cut_cooldown = 0s}}, t0).has_value());
    }

    TEST_CASE("two providers' limiters are independent")
    {
        // SES-like, charged per recipient, and Exchange-Online-like: 30/min, 3 connections.
        auto ses = make({.buckets = {{.rate = 14, .burst = 14}, {.rate = 50'000, .per = 24h}},
                         .charge_by = charge::per_recipient});
        auto exo = make({.buckets = {{.rate = 30, .per = 1min}}, .max_in_flight = 3});
        for (int i = 0; i < 1000; ++i)
            push(ses, ses.cost_for(3));
        CHECK(ses.poll(t0).size() == 4);
        ses.on_signal(mailroom::limit::signal::slow_down, t0);
        ses.on_signal(mailroom::limit::signal::quota_exhausted, t0);

        std::vector<ticket> w;
        for (int i = 0; i < 3; ++i)
            w.push_back(push(exo, exo.cost_for(3)));
        CHECK(exo.poll(t0) == w);
        const auto s = exo.snapshot(t0);
        CHECK(s.rate_permille == 1000);
        CHECK_FALSE(s.paused_until.has_value());
        CHECK(s.slow_down_signals == 0);
        CHECK(s.buckets[0].available == 27);
        CHECK(ses.snapshot(t0).paused_until.has_value());
        CHECK(ses.snapshot(t0).waiters == 996);
    }
}
