// Randomized checks of the limiter's one promise: over any window, the tokens a bucket gives
// (net of refunds) never exceed burst + rate × window. Fixed seeds, so a failure replays.
#include <mailroom/limit/rate_limiter.hpp>
#include <mailroom/limit/token_bucket.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using mailroom::limit::bucket_options;
using mailroom::limit::duration;
using mailroom::limit::rate_limiter;
using mailroom::limit::rate_limiter_options;
using mailroom::limit::signal;
using mailroom::limit::ticket;
using mailroom::limit::ticket_state;
using mailroom::limit::time_point;
using mailroom::limit::token_bucket;

namespace {

const time_point t0{};

__extension__ typedef __int128 i128;

// Tokens leaving a bucket (a grant, positive) or coming back (a refund, negative), in the
// order they happened.
struct flow {
    time_point at;
    std::int64_t tokens;
};

struct window_stats {
    std::size_t checked = 0;
    /// The largest (net - rate × window) seen, as a fraction of the burst: the bound says ≤ 1,
    /// and a value near 1 shows the test came close to it (it isn't vacuous).
    double tightest = 0;
};

// For every window from one flow to a later one (inclusive, in order):
// net tokens × per ≤ burst × per + rate × window.
window_stats check_windows(const std::vector<flow>& flows, std::uint64_t rate, duration per,
                           std::uint64_t burst)
{
    std::vector<i128> prefix(flows.size() + 1, 0);
    for (std::size_t i = 0; i < flows.size(); ++i)
        prefix[i + 1] = prefix[i] + flows[i].tokens;
    const i128 per_ns = per.count();
    const i128 cap = i128(burst) * per_ns;
    window_stats stats;
    i128 tightest = 0;
    for (std::size_t i = 0; i < flows.size(); ++i) {
        for (std::size_t j = i; j < flows.size(); ++j) {
            const i128 net = prefix[j + 1] - prefix[i];
            const i128 window = (flows[j].at - flows[i].at).count();
            const i128 excess = net * per_ns - i128(rate) * window;
            ++stats.checked;
            tightest = std::max(tightest, excess);
            if (excess > cap) {
                CAPTURE(i);
                CAPTURE(j);
                CAPTURE(static_cast<std::int64_t>(net));
                CAPTURE(static_cast<std::int64_t>(window));
                FAIL("more tokens than burst + rate × window");
            }
        }
    }
    stats.tightest = static_cast<double>(tightest) / static_cast<double>(cap);
    return stats;
}

std::uint64_t pick(std::mt19937_64& rng, std::uint64_t lo, std::uint64_t hi)
{
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
}

bucket_options random_bucket(std::mt19937_64& rng)
{
    static const duration periods[] = {1s, 1min, 1h, 24h};
    const duration per = periods[pick(rng, 0, 3)];
    const std::uint64_t rate = pick(rng, 1, 500);
    const std::uint64_t burst = pick(rng, 1, 600);
    return {.rate = rate, .per = per, .burst = burst, .initial = pick(rng, 0, burst)};
}

} // namespace

TEST_SUITE("limit.property")
{
    TEST_CASE("a token bucket never gives more than burst + rate × window")
    {
        std::size_t windows = 0;
        double tightest = 0;
        for (std::uint64_t seed = 1; seed <= 12; ++seed) {
            CAPTURE(seed);
            std::mt19937_64 rng(seed);
            const bucket_options o = random_bucket(rng);
            auto created = token_bucket::create(o, t0);
            REQUIRE(created.has_value());
            token_bucket b = *created;
            // Steps around the time one token takes, so the bucket is sometimes empty,
            // sometimes full.
            const std::int64_t token_ns = o.per.count() / static_cast<std::int64_t>(o.rate);
            std::vector<flow> flows;
            time_point now = t0;
            for (int step = 0; step < 1500; ++step) {
                now += duration(pick(rng, 0, static_cast<std::uint64_t>(token_ns) * 3));
                const std::uint64_t n = pick(rng, 0, std::min<std::uint64_t>(b.burst() + 1, 50));
                const bool had = b.available(now) >= n;
                const token_bucket before = b;
                const bool took = b.try_take(n, now);
                CHECK(took == (had && n <= b.burst()));
                if (took && n > 0) {
                    flows.push_back({now, static_cast<std::int64_t>(n)});
                } else if (!took) {
                    // Liveness: the wait it reports is exact.
                    const duration wait = before.time_until(n, now);
                    if (n > b.burst()) {
                        CHECK(wait == duration::max());
                    } else {
                        token_bucket probe = before;
                        CHECK(wait > 0ns);
                        CHECK_FALSE(probe.try_take(n, now + wait - 1ns));
                        CHECK(probe.try_take(n, now + wait));
                    }
                }
                if (pick(rng, 0, 30) == 0) // an adaptive cut or recovery: rates only go down
                    b.set_rate_permille(static_cast<unsigned>(pick(rng, 1, 1000)), now);
                if (pick(rng, 0, 20) == 0 && !flows.empty() && flows.back().tokens > 0) {
                    // A cancelled acquisition gives its tokens back.
                    const std::int64_t back = flows.back().tokens;
                    b.refund(static_cast<std::uint64_t>(back));
                    flows.push_back({now, -back});
                }
                CHECK(b.available(now) <= b.burst());
            }
            const window_stats w = check_windows(flows, o.rate, o.per, b.burst());
            windows += w.checked;
            tightest = std::max(tightest, w.tightest);
        }
        CHECK(windows > 100'000);
        CHECK(tightest > 0.9);
    }

    TEST_CASE("a rate limiter with several buckets, cancellations, cuts and pauses keeps "
              "every bucket's bound and FIFO order")
    {
        std::uint64_t total_grants = 0, total_refunds = 0, total_cuts = 0, total_pauses = 0,
                      total_wake_probes = 0;
        double tightest = 0;
        for (std::uint64_t seed = 1; seed <= 20; ++seed) {
            CAPTURE(seed);
            std::mt19937_64 rng(seed * 7919);
            rate_limiter_options o;
            const std::size_t nbuckets = pick(rng, 1, 3);
            for (std::size_t i = 0; i < nbuckets; ++i)
                o.buckets.push_back(random_bucket(rng));
            o.max_in_flight = pick(rng, 0, 8);
            o.quota_pause = std::chrono::seconds(pick(rng, 1, 30));
            o.adaptive.step_interval = std::chrono::seconds(pick(rng, 1, 60));
            auto created = rate_limiter::create(o, t0);
            REQUIRE(created.has_value());
            rate_limiter l = *created;

            std::uint64_t min_burst = UINT64_MAX;
            std::int64_t shortest_token = INT64_MAX, longest_token = 0;
            for (const bucket_options& b : o.buckets) {
                min_burst = std::min(min_burst, b.burst);
                const std::int64_t token = b.per.count() / static_cast<std::int64_t>(b.rate);
                shortest_token = std::min(shortest_token, token);
                longest_token = std::max(longest_token, token);
            }
            std::vector<flow> flows;
            std::vector<ticket> waiting, granted;
            std::vector<std::pair<time_point, time_point>> pauses;
            std::uint64_t last_granted_id = 0, granted_cost = 0, refunded_cost = 0;
            time_point now = t0;
            for (int step = 0; step < 2000; ++step) {
                // Steps around the fastest bucket's token time, now and then the slowest's.
                const std::int64_t scale = pick(rng, 0, 3) == 0 ? longest_token : shortest_token;
                now += duration(pick(rng, 0, static_cast<std::uint64_t>(scale) * 2));
                switch (pick(rng, 0, 9)) {
                case 0:
                case 1:
                case 2: {
                    // Mostly small costs, now and then one up to the smallest burst.
                    const std::uint64_t cost =
                        pick(rng, 0, 9) == 0 ? pick(rng, 0, min_burst)
                                             : pick(rng, 0, std::min<std::uint64_t>(min_burst, 3));
                    auto t = l.enqueue(cost, now);
                    REQUIRE(t.has_value());
                    waiting.push_back(*t);
                    break;
                }
                case 3:
                    if (!waiting.empty()) {
                        const std::size_t k = pick(rng, 0, waiting.size() - 1);
                        CHECK(l.cancel(waiting[k]));
                        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(k));
                    }
                    break;
                case 4:
                    if (!granted.empty()) {
                        const std::size_t k = pick(rng, 0, granted.size() - 1);
                        CHECK(l.release(granted[k]));
                        granted.erase(granted.begin() + static_cast<std::ptrdiff_t>(k));
                    }
                    break;
                case 5:
                    if (!granted.empty()) {
                        // A grant given up before use: its tokens come back.
                        const std::size_t k = pick(rng, 0, granted.size() - 1);
                        CHECK(l.state(granted[k]) == ticket_state::granted);
                        CHECK(l.cancel(granted[k]));
                        granted.erase(granted.begin() + static_cast<std::ptrdiff_t>(k));
                        const std::uint64_t total = l.snapshot(now).refunded_cost;
                        if (total > refunded_cost)
                            flows.push_back(
                                {now, -static_cast<std::int64_t>(total - refunded_cost)});
                        refunded_cost = total;
                    }
                    break;
                case 6:
                    if (pick(rng, 0, 3) == 0)
                        l.on_signal(signal::slow_down, now);
                    break;
                case 7:
                    if (pick(rng, 0, 40) == 0) {
                        l.on_signal(signal::quota_exhausted, now);
                        REQUIRE(l.paused_until().has_value());
                        pauses.emplace_back(now, *l.paused_until());
                    }
                    break;
                default: break;
                }
                // next_wakeup is exact: nothing is grantable a nanosecond before it, and
                // something is when it has come.
                const auto wake = l.next_wakeup(now);
                if (wake && *wake > now) {
                    rate_limiter probe = l;
                    CHECK(probe.poll(*wake - 1ns).empty());
                    ++total_wake_probes;
                }
                const auto grants = l.poll(now);
                if (wake && *wake <= now)
                    CHECK_FALSE(grants.empty());
                for (ticket t : grants) {
                    CHECK(t.id > last_granted_id); // FIFO: never out of order
                    last_granted_id = t.id;
                    auto it = std::find(waiting.begin(), waiting.end(), t);
                    REQUIRE(it != waiting.end());
                    waiting.erase(it);
                    granted.push_back(t);
                }
                const auto s = l.snapshot(now);
                if (!grants.empty()) {
                    for (const auto& [from, until] : pauses) // nothing granted inside a pause
                        CHECK_FALSE((now >= from && now < until));
                    if (s.max_in_flight != 0)
                        CHECK(s.in_flight <= s.max_in_flight);
                    if (s.granted_cost > granted_cost)
                        flows.push_back(
                            {now, static_cast<std::int64_t>(s.granted_cost - granted_cost)});
                    granted_cost = s.granted_cost;
                }
                CHECK(s.waiters == waiting.size());
                CHECK(s.in_flight == granted.size());
                CHECK(s.rate_permille >= o.adaptive.floor_permille);
                CHECK(s.rate_permille <= 1000);
                for (std::size_t i = 0; i < s.buckets.size(); ++i)
                    CHECK(s.buckets[i].available <= s.buckets[i].burst);
            }
            const auto s = l.snapshot(now);
            total_grants += s.granted;
            total_refunds += s.refunded;
            total_cuts += s.rate_cuts;
            total_pauses += pauses.size();
            for (std::size_t i = 0; i < o.buckets.size(); ++i) {
                CAPTURE(i);
                const window_stats w =
                    check_windows(flows, o.buckets[i].rate, o.buckets[i].per, o.buckets[i].burst);
                tightest = std::max(tightest, w.tightest);
            }
        }
        // The random runs did exercise what they claim to.
        CHECK(total_grants > 1000);
        CHECK(total_refunds > 10);
        CHECK(total_cuts > 10);
        CHECK(total_pauses > 3);
        CHECK(total_wake_probes > 1000);
        CHECK(tightest > 0.9);
    }
}
