// The shared (Redis) store's pure parts: the script's arithmetic (gcra_model) against the
// local token bucket, the lease bound over many processes, the planner's requests, and the
// decoding of the script's answers. The script itself is checked against gcra_model in a real
// Redis (test/redis/store_test.cpp).
#include <mailroom/limit/rate_limiter.hpp>
#include <mailroom/limit/token_bucket.hpp>

#include "limit/gcra.hpp"
#include "limit/lease_planner.hpp"
#include "limit/redis_store.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using namespace mailroom;
using limit::bucket_options;
using limit::duration;
using limit::time_point;
using limit::detail::gcra_bucket;
using limit::detail::gcra_model;
using limit::detail::lease_planner;
using limit::detail::store_answer;
using limit::detail::store_request;
using store_state = limit::limiter_snapshot::store_state;

namespace {

const time_point t0{};

double us_of(duration d)
{
    return static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

gcra_bucket to_gcra(const bucket_options& b)
{
    return {static_cast<double>(b.rate), us_of(b.per),
            static_cast<double>(b.burst == 0 ? b.rate : b.burst)};
}

lease_planner make_planner(const limit::rate_limiter_options& l, const limit::store_options& s)
{
    diagnostics d;
    auto p = lease_planner::create(l, s, t0, d);
    REQUIRE_MESSAGE(p.has_value(), d.to_string());
    return *p;
}

} // namespace

TEST_CASE("gcra: grants what the local token buckets grant, arrival for arrival")
{
    // Several shapes: SES-like, a per-minute and a daily bucket together, a tiny burst.
    const std::vector<std::vector<bucket_options>> shapes = {
        {{.rate = 14, .burst = 20}},
        {{.rate = 200, .burst = 20}},
        {{.rate = 5, .burst = 1}},
        {{.rate = 30, .per = 1min}, {.rate = 10'000, .per = 24h, .burst = 40}},
        {{.rate = 200, .burst = 20}, {.rate = 1000, .per = 1min}},
    };
    std::mt19937_64 rng(42);
    for (std::size_t s = 0; s < shapes.size(); ++s) {
        CAPTURE(s);
        limit::rate_limiter_options o{.buckets = shapes[s]};
        o.adaptive.enabled = false;
        auto local = *limit::rate_limiter::create(o, t0);
        std::vector<gcra_bucket> gb;
        for (auto& b : shapes[s])
            gb.push_back(to_gcra(b));
        gcra_model shared(gb);
        time_point now = t0;
        std::uint64_t grants = 0, refusals = 0;
        // Arrivals about as fast as the first bucket refills, costs within every burst.
        const auto& first = shapes[s].front();
        const double spacing = us_of(first.per) / static_cast<double>(first.rate);
        std::uniform_int_distribution<long> gap(0, static_cast<long>(3 * spacing));
        std::uint64_t max_cost = 3;
        for (auto& b : shapes[s])
            max_cost = std::min<std::uint64_t>(max_cost, b.burst == 0 ? b.rate : b.burst);
        std::uniform_int_distribution<std::uint64_t> cost(1, max_cost);
        for (int i = 0; i < 4000; ++i) {
            now += std::chrono::microseconds(gap(rng));
            const std::uint64_t c = cost(rng);
            // Local: granted at once or not at all (withdrawn).
            auto t = local.enqueue(c, now);
            REQUIRE(t.has_value());
            auto g = local.poll(now);
            const bool local_granted = !g.empty();
            if (local_granted)
                local.release(*t);
            else
                local.withdraw(*t);
            const double at = us_of(now - t0);
            auto a = shared.acquire(at, c, c, 0, 0);
            CAPTURE(i);
            CAPTURE(at);
            REQUIRE((a.granted == c) == local_granted);
            if (local_granted)
                ++grants;
            else {
                ++refusals;
                REQUIRE(a.retry_after_us > 0);
            }
        }
        // Both outcomes happened, or the comparison proved little.
        CHECK(grants > 100);
        CHECK(refusals > 100);
    }
}

TEST_CASE("gcra: retry_after is the first microsecond at which the cost fits")
{
    gcra_model m({{.rate = 10, .per_us = 1e6, .burst = 2}});
    CHECK(m.acquire(0, 2, 2, 0, 0).granted == 2);
    auto a = m.acquire(0, 1, 1, 0, 0);
    CHECK(a.granted == 0);
    CHECK(a.retry_after_us == 100'000);
    CHECK(m.acquire(99'999, 1, 1, 0, 0).granted == 0);
    CHECK(m.acquire(100'000, 1, 1, 0, 0).granted == 1);
    // Need beyond min: as many as fit, at least min.
    auto b = m.acquire(400'000, 1, 5, 0, 0);
    CHECK(b.granted == 2);
}

TEST_CASE("gcra: a lease is charged as if taken at its end")
{
    // 100/s, burst 20: a full bucket leases at most burst - rate × lease.
    gcra_model m({{.rate = 100, .per_us = 1e6, .burst = 20}});
    // Lease 50 ms: the 5 tokens that refill meanwhile are spoken for, and the one granted now
    // has refilled by the lease's end.
    auto a = m.acquire(0, 1, 1, 64, 50'000);
    CHECK(a.granted == 1);
    CHECK(a.leased == 15);
    // Nothing more now: the bucket and the lease hold the burst between them.
    CHECK(m.acquire(0, 1, 1, 0, 0).granted == 0);
    // Given back, the tokens are there again.
    m.refund(0, 15);
    CHECK(m.acquire(0, 15, 15, 0, 0).granted == 15);
}

TEST_CASE("gcra: leases never let many processes exceed rate x window + burst")
{
    // Processes lease with prefetch at random times and use their tokens at random instants
    // before the lease ends; every window of use must stay within the bound.
    const double rate = 200, per = 1e6, burst = 20, lease = 50'000;
    gcra_model m({{rate, per, burst}});
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> frac(0, 1);
    std::vector<double> uses;
    double now = 0;
    for (int i = 0; i < 20'000; ++i) {
        now += std::floor(frac(rng) * 3000);
        const double want = 1 + std::floor(frac(rng) * 3);
        auto a = m.acquire(now, 1, want, 16, lease);
        for (std::uint64_t k = 0; k < a.granted; ++k)
            uses.push_back(now);
        for (std::uint64_t k = 0; k < a.leased; ++k)
            uses.push_back(now + std::floor(frac(rng) * lease)); // before the lease ends
    }
    std::sort(uses.begin(), uses.end());
    REQUIRE(uses.size() > 5'000);
    double worst = 0;
    std::size_t j = 0;
    for (std::size_t i = 0; i < uses.size(); ++i) {
        // The window [uses[j], uses[i]]: count i - j + 1 ≤ burst + rate × window.
        while (uses[i] - uses[j] > 1e6)
            ++j;
        for (std::size_t k = j; k <= i; k += std::max<std::size_t>(1, (i - j) / 64)) {
            const double window = uses[i] - uses[k];
            const double count = static_cast<double>(i - k + 1);
            worst = std::max(worst, count - (burst + rate * window / per));
        }
    }
    CHECK(worst <= 1e-9);
}

TEST_CASE("gcra: the shared factor cuts, cools down, and recovers step by step")
{
    gcra_model m({{.rate = 100, .per_us = 1e6, .burst = 100}});
    auto [f1, cut1] = m.slow_down(0, 500, 100, 100, 1e6, 1e6);
    CHECK(f1 == 500);
    CHECK(cut1);
    auto [f2, cut2] = m.slow_down(500'000, 500, 100, 100, 1e6, 1e6); // within the cooldown
    CHECK(f2 == 500);
    CHECK_FALSE(cut2);
    // One step per interval after the last signal (at 0.5 s).
    CHECK(m.acquire(1'400'000, 0, 0, 0, 0).factor == 500);
    CHECK(m.acquire(1'500'000, 0, 0, 0, 0).factor == 600);
    CHECK(m.acquire(6'500'000, 0, 0, 0, 0).factor == 1000);
    // Quota: paused, and the longest bucket emptied.
    m.quota(7'000'000, 2e6, 1);
    auto q = m.acquire(7'000'000, 1, 1, 0, 0);
    CHECK(q.granted == 0);
    CHECK(q.retry_after_us == 2'000'000);
}

TEST_CASE("store: keys share one hash tag; arguments carry each bucket")
{
    const std::vector<bucket_options> b = {{.rate = 14, .burst = 20}, {.rate = 30, .per = 1min}};
    auto keys = limit::detail::store_keys("ses-eu", b);
    REQUIRE(keys.size() == 4);
    CHECK(keys[0] == "mailroom:{ses-eu}:14/1000000/20");
    CHECK(keys[1] == "mailroom:{ses-eu}:30/60000000/30");
    CHECK(keys[2] == "mailroom:{ses-eu}:adapt");
    CHECK(keys[3] == "mailroom:{ses-eu}:pause");
    auto args = limit::detail::store_args("", b);
    CHECK(args == std::vector<std::string>{"", "2", "14", "1000000", "20", "30", "60000000", "30"});
}

TEST_CASE("store: the acquire answer is decoded, and malformed ones refused")
{
    using redis::reply;
    auto integer = [](long long v) {
        reply r;
        r.kind = reply::type::integer;
        r.integer = v;
        return r;
    };
    reply ok;
    ok.kind = reply::type::array;
    ok.elements = {integer(3), integer(16), integer(0), integer(500), integer(1700000000000000)};
    diagnostics d;
    auto a = limit::detail::decode_acquire(ok, d);
    REQUIRE(a.has_value());
    CHECK(a->granted == 3);
    CHECK(a->leased == 16);
    CHECK(a->retry_after_us == 0);
    CHECK(a->factor == 500);

    reply bad = ok;
    bad.elements[1] = integer(-1);
    CHECK(limit::detail::decode_acquire(bad, d).error() == error::redis_error_reply);
    bad = ok;
    bad.elements[3] = integer(0);
    CHECK(limit::detail::decode_acquire(bad, d).error() == error::redis_error_reply);
    bad = ok;
    bad.elements.resize(2);
    CHECK(limit::detail::decode_acquire(bad, d).error() == error::redis_error_reply);
    reply text;
    text.kind = reply::type::string;
    text.str = "OK";
    CHECK(limit::detail::decode_acquire(text, d).error() == error::redis_error_reply);

    reply loading;
    loading.kind = reply::type::error;
    loading.str = "LOADING Redis is loading the dataset in memory";
    CHECK(limit::detail::transient_error_reply(loading));
    reply wrongtype;
    wrongtype.kind = reply::type::error;
    wrongtype.str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    CHECK_FALSE(limit::detail::transient_error_reply(wrongtype));
}

TEST_CASE("planner: options are checked, and the lease fits inside half the burst")
{
    limit::rate_limiter_options l{.buckets = {{.rate = 200, .burst = 20}}};
    limit::store_options s;
    s.kind = limit::store_kind::redis;
    auto p = make_planner(l, s);
    CHECK(p.lease_ttl() == 50ms); // 20 / 200 / 2
    s.lease_ttl = 10ms;
    CHECK(make_planner(l, s).lease_ttl() == 10ms);
    s.max_lease = 0;
    CHECK(make_planner(l, s).lease_ttl() == duration::zero());

    diagnostics d;
    s = {};
    s.key = "a b";
    CHECK(lease_planner::create(l, s, t0, d).error() == error::invalid_limit);
    CHECK(d.field == "store.key");
    s.key = "x{y}";
    CHECK(lease_planner::create(l, s, t0, d).error() == error::invalid_limit);
    s = {};
    s.expected_processes = 0;
    CHECK(lease_planner::create(l, s, t0, d).error() == error::invalid_limit);
    s = {};
    limit::rate_limiter_options huge{.buckets = {{.rate = 1, .per = 24h * 100, .burst = 2000}}};
    CHECK(lease_planner::create(huge, s, t0, d).error() == error::invalid_limit);
    CHECK(d.field == "buckets[0].burst");
}

TEST_CASE("planner: asks for the head, the waiters and a growing lease; uses what comes")
{
    limit::rate_limiter_options l{.buckets = {{.rate = 1000, .burst = 1000}}};
    limit::store_options s;
    s.kind = limit::store_kind::redis;
    s.max_lease = 8;
    auto p = make_planner(l, s);
    CHECK_FALSE(p.next_request(t0, std::nullopt, 0, false)); // no one waits
    auto r = p.next_request(t0, 2, 5, false);
    REQUIRE(r);
    CHECK(r->min == 2);
    CHECK(r->need == 5);
    CHECK(r->extra == 1);
    CHECK(p.outstanding());
    CHECK_FALSE(p.next_request(t0, 2, 5, false)); // one at a time
    p.on_answer(*r, store_answer{5, 1, 0, 1000}, t0, t0 + 1ms);
    CHECK(p.state() == store_state::connected);
    CHECK(p.usable(t0 + 1ms) == 6);
    p.take(5, t0 + 1ms);
    p.drop_granted();
    CHECK(p.usable(t0 + 1ms) == 1); // the lease
    // A waiter of cost 1 goes from the lease without asking.
    CHECK_FALSE(p.next_request(t0 + 1ms, 1, 1, false));
    p.take(1, t0 + 1ms);
    // Demand goes on: the lease doubles (2, 4, 8) and stops at max_lease.
    std::uint64_t extra = 0;
    for (int i = 0; i < 5; ++i) {
        auto q = p.next_request(t0 + 2ms, 1, 1, false);
        REQUIRE(q);
        extra = q->extra;
        p.on_answer(*q, store_answer{1, 0, 0, 1000}, t0 + 2ms, t0 + 2ms);
        p.take(1, t0 + 2ms);
        p.drop_granted();
    }
    CHECK(extra == 8);
    // At the concurrency cap nothing is asked for.
    CHECK_FALSE(p.next_request(t0 + 3ms, 1, 1, true));
}

TEST_CASE("planner: an unused lease goes back when it ends, and the next one is smaller")
{
    limit::rate_limiter_options l{.buckets = {{.rate = 1000, .burst = 1000}}};
    limit::store_options s;
    s.kind = limit::store_kind::redis;
    auto p = make_planner(l, s);
    auto r = p.next_request(t0, 1, 1, false);
    REQUIRE(r);
    p.on_answer(*r, store_answer{1, 1, 0, 1000}, t0, t0);
    p.take(1, t0);
    p.drop_granted();
    CHECK(p.take_refund(t0 + 100ms) == 0);
    CHECK(p.usable(t0 + 100ms) == 1);
    const auto end = t0 + p.lease_ttl();
    CHECK(p.next_wakeup(t0, std::nullopt, false) == end);
    CHECK(p.take_refund(end) == 1);
    CHECK(p.usable(end) == 0);
    CHECK(p.take_refund(end) == 0); // once
}

TEST_CASE("planner: retry-after waits; a failure waits or falls back to local buckets")
{
    limit::rate_limiter_options l{.buckets = {{.rate = 100, .burst = 10}}};
    limit::store_options s;
    s.kind = limit::store_kind::redis;
    s.max_lease = 0;
    s.retry_interval = 200ms;
    auto p = make_planner(l, s);
    auto r = p.next_request(t0, 1, 1, false);
    REQUIRE(r);
    CHECK(r->extra == 0);
    p.on_answer(*r, store_answer{0, 0, 10'000, 1000}, t0, t0);
    CHECK_FALSE(p.next_request(t0 + 5ms, 1, 1, false));
    CHECK(p.next_wakeup(t0 + 5ms, 1, false) == t0 + 10ms);
    r = p.next_request(t0 + 10ms, 1, 1, false);
    REQUIRE(r);

    // Policy wait: Redis gone, nothing usable; asked again after retry_interval.
    p.on_failure(false, t0 + 10ms);
    CHECK(p.state() == store_state::unavailable);
    CHECK(p.usable(t0 + 10ms) == 0);
    CHECK_FALSE(p.next_request(t0 + 100ms, 1, 1, false));
    CHECK(p.next_request(t0 + 210ms, 1, 1, false));

    // Policy local_fallback: buckets at rate / processes stand in, and probes go on.
    s.when_unavailable = limit::unavailable_policy::local_fallback;
    s.expected_processes = 4;
    auto f = make_planner(l, s);
    auto q = f.next_request(t0, 1, 1, false);
    REQUIRE(q);
    f.on_failure(false, t0);
    CHECK(f.state() == store_state::fallback);
    CHECK(f.usable(t0) == 2); // burst 10 / 4
    f.take(2, t0);
    CHECK(f.usable(t0) == 0);
    CHECK(f.usable(t0 + 40ms) == 1); // 25/s
    auto probe = f.next_request(t0 + 200ms, 1, 1, false);
    REQUIRE(probe);
    CHECK(probe->min == 0);
    CHECK(probe->need == 0);
    f.on_answer(*probe, store_answer{0, 0, 0, 1000}, t0 + 200ms, t0 + 201ms);
    CHECK(f.state() == store_state::connected);

    // A refusal (credentials) is its own state.
    auto g = make_planner(l, s);
    REQUIRE(g.next_request(t0, 1, 1, false));
    g.on_failure(true, t0);
    CHECK(g.state() == store_state::failed);
}

TEST_CASE("planner: cost over a burst is refused; max_wait judged on full buckets")
{
    limit::rate_limiter_options l{.buckets = {{.rate = 10, .burst = 5}}};
    l.max_wait = 1s;
    limit::store_options s;
    s.kind = limit::store_kind::redis;
    auto p = make_planner(l, s);
    CHECK(p.check(6, 0, t0) == error::cost_exceeds_burst);
    CHECK_FALSE(p.check(5, 0, t0));
    CHECK_FALSE(p.check(5, 10, t0));                         // 15 tokens: 5 + 1 s of refill
    CHECK(p.check(5, 11, t0) == error::limit_wait_too_long); // 16: longer
}
