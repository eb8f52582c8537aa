// The shared limit store against real redis-server processes: the Lua code, run by Redis with
// the time passed in, answers as the C++ model of its arithmetic (gcra_model), as a function
// (FCALL) and as a script (EVALSHA/EVAL); then limit::limiter with store_kind::redis: two
// limiters sharing a key stay within one quota, the code is loaded again after a restart,
// SCRIPT FLUSH and FUNCTION FLUSH, wrong credentials fail the waiters, and a stopped server
// makes them wait (policy wait) or fall back to local buckets (local_fallback).

#include "../common/run_coro.hpp"
#include "redis_server.hpp"

#include <mailroom/limit/limiter.hpp>

#include "limit/gcra.hpp"
#include "limit/redis_script.hpp"
#include "limit/redis_store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <thread>

using namespace std::chrono_literals;
using namespace mailroom;
namespace asio = boost::asio;
using asio::awaitable;
using mailroom::redis::reply;
using mailroom::test::redis_server;
using mailroom::test::run_coro;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

redis::options opts_for(const redis_server& s)
{
    diagnostics diag;
    auto o = redis::options::from_url(s.url(), diag);
    REQUIRE_MESSAGE(o.has_value(), diag.to_string());
    return *o;
}

reply exec(asio::io_context& io, redis::client& c, std::vector<std::string> args)
{
    auto r = run_coro(
        io,
        [](redis::client& c,
           std::vector<std::string> a) -> awaitable<std::pair<error_code, reply>> {
            auto [ec, r] = co_await c.async_exec(std::move(a), use_tuple);
            co_return std::pair{ec, std::move(r)};
        }(c, std::move(args)),
        20s);
    REQUIRE_MESSAGE(!r.first, r.first.message());
    return r.second;
}

long long at(const reply& r, std::size_t i)
{
    REQUIRE(r.kind == reply::type::array);
    REQUIRE(r.elements.size() > i);
    REQUIRE(r.elements[i].kind == reply::type::integer);
    return r.elements[i].integer;
}

limit::store_options store_for(const redis_server& s, std::string key)
{
    limit::store_options o;
    o.kind = limit::store_kind::redis;
    o.redis = opts_for(s);
    o.redis.request_timeout = 300ms;
    o.redis.reconnect_initial = 20ms;
    o.redis.reconnect_max = 100ms;
    o.key = std::move(key);
    o.retry_interval = 50ms;
    return o;
}

// Acquires `cost` and returns the error (the permit released at once).
awaitable<error_code> acquire(limit::limiter& l, std::uint64_t cost)
{
    auto [ec, p] = co_await l.async_acquire(cost, use_tuple);
    co_return ec;
}

// Grants taken by `l` in `span`, from as many coroutines as `workers`.
std::uint64_t grants_within(asio::io_context& io, limit::limiter& l, steady::duration span,
                            int workers = 8)
{
    std::uint64_t n = 0;
    const auto end = steady::now() + span;
    bool stop = false;
    int running = workers;
    for (int w = 0; w < workers; ++w)
        asio::co_spawn(
            io,
            [&]() -> awaitable<void> {
                while (!stop && steady::now() < end) {
                    // Shared with the timer's handler: a timer that expires as the grant
                    // arrives runs its handler after this iteration ends (t.cancel() can't
                    // take back a completion already queued).
                    auto cancel = std::make_shared<asio::cancellation_signal>();
                    asio::steady_timer t(io, end - steady::now());
                    t.async_wait([cancel](error_code ec) {
                        if (!ec)
                            cancel->emit(asio::cancellation_type::terminal);
                    });
                    auto [ec, p] = co_await l.async_acquire(
                        1, asio::bind_cancellation_slot(cancel->slot(), use_tuple));
                    t.cancel();
                    if (ec)
                        break;
                    if (steady::now() <= end)
                        ++n;
                }
                --running;
            },
            asio::detached);
    io.restart();
    while (running > 0)
        io.run_one_for(50ms);
    stop = true;
    return n;
}

} // namespace

TEST_SUITE("redis")
{
    TEST_CASE("limit store: Redis runs the script as gcra_model computes it, call for call")
    {
        redis_server server;
        asio::io_context io;
        redis::client c(io.get_executor(), opts_for(server));
        REQUIRE(exec(io, c, {"FUNCTION", "LOAD", limit::detail::function_library()}).kind ==
                reply::type::string);
        const std::vector<limit::bucket_options> buckets = {
            {.rate = 200, .burst = 20}, {.rate = 9000, .per = 1min, .burst = 50}};
        std::vector<limit::detail::gcra_bucket> gb = {{200, 1e6, 20}, {9000, 60e6, 50}};
        for (bool functions : {true, false}) {
            CAPTURE(functions);
            const std::string key = functions ? "model-f" : "model-e";
            limit::detail::gcra_model model(gb);
            const auto keys = limit::detail::store_keys(key, buckets);
            auto call = [&](limit::detail::script_call sc, double now,
                            std::vector<std::string> own) {
                std::vector<std::string> cmd;
                if (functions)
                    cmd = {"FCALL", limit::detail::function_name(sc)};
                else
                    cmd = {"EVAL", limit::detail::eval_script(sc)};
                cmd.push_back(std::to_string(keys.size()));
                cmd.insert(cmd.end(), keys.begin(), keys.end());
                auto args =
                    limit::detail::store_args(std::to_string(static_cast<long long>(now)), buckets);
                cmd.insert(cmd.end(), args.begin(), args.end());
                cmd.insert(cmd.end(), own.begin(), own.end());
                return exec(io, c, std::move(cmd));
            };
            std::mt19937_64 rng(11);
            std::uniform_int_distribution<int> gap(0, 40'000), pick(0, 79), small(0, 4);
            // Redis's clock is real; the times passed in start near it so keys' expiry
            // (on Redis's clock) never cuts state the model still has.
            double now =
                static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
            int grants = 0, refusals = 0, leases = 0;
            for (int i = 0; i < 600; ++i) {
                CAPTURE(i);
                now += gap(rng);
                const int what = pick(rng);
                if (what == 0) {
                    const double n = small(rng);
                    model.refund(now, n);
                    call(limit::detail::script_call::refund, now,
                         {std::to_string(static_cast<int>(n))});
                } else if (what == 1) {
                    auto [f, cut] = model.slow_down(now, 500, 100, 100, 300'000, 100'000);
                    auto r = call(limit::detail::script_call::signal, now,
                                  {"slow", "500", "100", "100", "300000", "100000", "0", "0"});
                    CHECK(at(r, 0) == f);
                    CHECK(at(r, 1) == (cut ? 1 : 0));
                } else {
                    const double min = 1 + small(rng) % 2, need = min + small(rng);
                    const double extra = what < 30 ? small(rng) * 4 : 0;
                    const double lease = extra > 0 ? 40'000 : 0;
                    auto m = model.acquire(now, min, need, extra, lease);
                    auto r = call(limit::detail::script_call::acquire, now,
                                  {std::to_string(static_cast<int>(min)),
                                   std::to_string(static_cast<int>(need)),
                                   std::to_string(static_cast<int>(extra)),
                                   std::to_string(static_cast<int>(lease))});
                    REQUIRE(at(r, 0) == static_cast<long long>(m.granted));
                    REQUIRE(at(r, 1) == static_cast<long long>(m.leased));
                    REQUIRE(at(r, 2) == static_cast<long long>(m.retry_after_us));
                    REQUIRE(at(r, 3) == static_cast<long long>(m.factor));
                    CHECK(at(r, 4) == static_cast<long long>(now));
                    m.granted > 0 ? ++grants : ++refusals;
                    leases += m.leased > 0;
                }
            }
            // Every branch was taken.
            CHECK(grants > 50);
            CHECK(refusals > 50);
            CHECK(leases > 10);
        }
    }

    TEST_CASE("limit store: two limiters sharing a key stay within one quota")
    {
        redis_server server;
        // 100/s, burst 10, in two "processes" (each its own io_context and connection).
        const limit::rate_limiter_options o{.buckets = {{.rate = 100, .burst = 10}}};
        std::uint64_t a = 0, b = 0;
        std::thread other([&] {
            asio::io_context io;
            limit::limiter l(io.get_executor(), o, store_for(server, "pair"));
            b = grants_within(io, l, 1500ms);
            l.close();
            io.run();
        });
        asio::io_context io;
        limit::limiter l(io.get_executor(), o, store_for(server, "pair"));
        a = grants_within(io, l, 1500ms);
        other.join();
        const auto snap = l.snapshot();
        l.close();
        io.run();
        CAPTURE(a);
        CAPTURE(b);
        // Both got a share, and together no more than burst + rate × 1.5 s (plus the window
        // edges: a grant counted at the end may have been taken a little after the start).
        CHECK(a > 20);
        CHECK(b > 20);
        CHECK(a + b <= 10 + 150 + 2);
        CHECK(a + b >= 120);
        REQUIRE(snap.store);
        CHECK(snap.store->state == limit::limiter_snapshot::store_state::connected);
        CHECK(snap.store->commands > 0);
        CHECK(snap.buckets.empty()); // the levels live in Redis
    }

    TEST_CASE("limit store: one limiter's signals reach the other: slow-down and quota pause")
    {
        redis_server server;
        asio::io_context io;
        limit::rate_limiter_options o{.buckets = {{.rate = 1000, .burst = 10}}};
        o.quota_pause = 1s;
        auto s = store_for(server, "signals");
        s.max_lease = 0;
        limit::limiter a(io.get_executor(), o, s);
        limit::limiter b(io.get_executor(), o, s);
        CHECK_FALSE(run_coro(io, acquire(b, 1)));
        CHECK(b.snapshot().store->shared_rate_permille == 1000);
        // A's "slow down" halves the shared rate; B sees it in its next answer.
        a.on_signal(limit::signal::slow_down);
        run_coro(io, [&]() -> awaitable<int> {
            asio::steady_timer t(io, 200ms);
            co_await t.async_wait(use_tuple);
            co_return 0;
        }());
        CHECK_FALSE(run_coro(io, acquire(b, 1)));
        CHECK(b.snapshot().store->shared_rate_permille == 500);
        // A's "quota exhausted" pauses B too: its next grant waits about quota_pause.
        a.on_signal(limit::signal::quota_exhausted);
        run_coro(io, [&]() -> awaitable<int> {
            asio::steady_timer t(io, 100ms);
            co_await t.async_wait(use_tuple);
            co_return 0;
        }());
        const auto start = steady::now();
        CHECK_FALSE(run_coro(io, acquire(b, 1), 20s));
        const auto waited = steady::now() - start;
        CHECK(waited >= 700ms);
        CHECK(waited < 5s);
        a.close();
        b.close();
        io.run();
    }

    TEST_CASE("limit store: restarted empty, SCRIPT FLUSH, FUNCTION FLUSH: the code is loaded "
              "again")
    {
        redis_server server;
        for (bool functions : {true, false}) {
            CAPTURE(functions);
            asio::io_context io;
            auto s = store_for(server, functions ? "reload-f" : "reload-e");
            s.use_functions = functions;
            s.max_lease = 0;
            limit::limiter l(io.get_executor(), {.buckets = {{.rate = 1000}}}, s);
            CHECK_FALSE(run_coro(io, acquire(l, 1)));
            redis::client admin(io.get_executor(), opts_for(server));
            exec(io, admin, {"SCRIPT", "FLUSH"});
            CHECK_FALSE(run_coro(io, acquire(l, 1)));
            exec(io, admin, {"FUNCTION", "FLUSH"});
            CHECK_FALSE(run_coro(io, acquire(l, 1)));
            admin.close();
            // Killed and restarted empty: the next acquire waits for it, then loads the code.
            server.stop();
            REQUIRE(server.start());
            CHECK_FALSE(run_coro(io, acquire(l, 1), 20s));
            const auto snap = l.snapshot();
            REQUIRE(snap.store);
            CHECK(snap.granted == 4);
            l.close();
            io.run();
        }
    }

    TEST_CASE("limit store: a wrong password fails the waiters with redis_auth_failed")
    {
        redis_server server({"--requirepass", "right"});
        asio::io_context io;
        auto s = store_for(server, "auth");
        s.redis.password = "wrong";
        limit::limiter l(io.get_executor(), {.buckets = {{.rate = 10}}}, s);
        CHECK(run_coro(io, acquire(l, 1)) == error::redis_auth_failed);
        CHECK(l.snapshot().store->state == limit::limiter_snapshot::store_state::failed);
        l.close();
        io.run();
        // No password at all: Redis answers the long FCALL with "Protocol error:
        // unauthenticated multibulk length", not NOAUTH; still a credentials failure.
        asio::io_context io1;
        s.redis.password.clear();
        limit::limiter none(io1.get_executor(), {.buckets = {{.rate = 10}}}, s);
        CHECK(run_coro(io1, acquire(none, 1)) == error::redis_auth_failed);
        none.close();
        io1.run();
        asio::io_context io2;
        s.redis.password = "right";
        limit::limiter ok(io2.get_executor(), {.buckets = {{.rate = 10}}}, s);
        CHECK_FALSE(run_coro(io2, acquire(ok, 1)));
        ok.close();
        io2.run();
    }

    TEST_CASE("limit store: Redis stopped: waiters wait (wait) or local buckets stand in")
    {
        redis_server server;
        std::vector<std::string> lines;
        auto capture = [&](limit::store_options& s) {
            s.redis.log = logger{log_level::warning, [&](log_level, std::string_view l) {
                                     lines.emplace_back(l);
                                 }};
        };
        // wait: nothing is granted while Redis is stopped; granted once it's back.
        {
            asio::io_context io;
            auto s = store_for(server, "stall-wait");
            capture(s);
            s.max_lease = 0;
            limit::limiter l(io.get_executor(), {.buckets = {{.rate = 1000}}}, s);
            CHECK_FALSE(run_coro(io, acquire(l, 1)));
            server.pause();
            const std::uint64_t during = grants_within(io, l, 1s, 2);
            CHECK(during == 0);
            CHECK(l.snapshot().store->state == limit::limiter_snapshot::store_state::unavailable);
            server.resume();
            CHECK_FALSE(run_coro(io, acquire(l, 1), 20s));
            CHECK(l.snapshot().store->state == limit::limiter_snapshot::store_state::connected);
            l.close();
            io.run();
        }
        CHECK(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
            return l.find("Redis unavailable") != std::string::npos &&
                   l.find("sends wait") != std::string::npos;
        }));
        // local_fallback: 100/s over 2 processes: about 50/s here while Redis is stopped.
        {
            lines.clear();
            asio::io_context io;
            auto s = store_for(server, "stall-local");
            capture(s);
            s.when_unavailable = limit::unavailable_policy::local_fallback;
            s.expected_processes = 2;
            limit::limiter l(io.get_executor(), {.buckets = {{.rate = 100, .burst = 10}}}, s);
            CHECK_FALSE(run_coro(io, acquire(l, 1)));
            server.pause();
            const std::uint64_t during = grants_within(io, l, 2s, 2);
            CAPTURE(during);
            const auto snap = l.snapshot();
            server.resume();
            CHECK(snap.store->state == limit::limiter_snapshot::store_state::fallback);
            CHECK(snap.store->fallback_grants > 0);
            // 2 s at 50/s plus a burst of 5, less the request deadline before falling back.
            CHECK(during >= 40);
            CHECK(during <= 5 + 100 + 2);
            l.close();
            io.run();
        }
        CHECK(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
            return l.find("local buckets stand in") != std::string::npos;
        }));
    }
}
