// The Asio limiter: real timers, real handlers. Its arithmetic is rate_limiter's (tested on the
// manual clock); these check the wiring: FIFO completion, cancellation, permits, close.

#include <mailroom/limit/limiter.hpp>

#include "../../common/run_coro.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using mailroom::error;
using mailroom::error_code;
using mailroom::limit::limiter;
using mailroom::limit::permit;
using mailroom::limit::rate_limiter_options;
using mailroom::test::run_until;

namespace {

struct outcome {
    std::optional<error_code> ec;
    permit p;
};

// Starts an acquisition that stores its outcome; `slot` optional.
void acquire(limiter& l, std::uint64_t cost, outcome& out, asio::cancellation_slot slot = {})
{
    l.async_acquire(cost, asio::bind_cancellation_slot(slot, [&out](error_code ec, permit p) {
                        out.ec = ec;
                        out.p = std::move(p);
                    }));
}

} // namespace

TEST_CASE("limiter: grants at once when tokens are there, never inside the call")
{
    asio::io_context io;
    limiter l(io.get_executor(), {.buckets = {{.rate = 10, .burst = 3}}});
    outcome a;
    acquire(l, 1, a);
    CHECK_FALSE(a.ec); // not inline
    run_until(io, [&] { return a.ec.has_value(); });
    CHECK(*a.ec == error_code{});
    CHECK(static_cast<bool>(a.p));
    CHECK(l.snapshot().in_flight == 1);
    a.p.release();
    CHECK(l.snapshot().in_flight == 0);
    CHECK(l.snapshot().granted == 1);
}

TEST_CASE("limiter: waiters are granted first come, first served, at the rate")
{
    asio::io_context io;
    limiter l(io.get_executor(), {.buckets = {{.rate = 100, .burst = 1}}});
    std::vector<int> order;
    std::vector<permit> held;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 6; ++i)
        l.async_acquire(i % 2 ? 1 : 1, [&, i](error_code ec, permit p) {
            CHECK_FALSE(ec);
            order.push_back(i);
            held.push_back(std::move(p));
        });
    run_until(io, [&] { return order.size() == 6; });
    // One at once, then one per 10 ms.
    CHECK(std::chrono::steady_clock::now() - start >= 45ms);
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("limiter: a cancelled wait takes nothing and lets the next one through")
{
    asio::io_context io;
    limiter l(io.get_executor(), {.buckets = {{.rate = 20, .burst = 1}}});
    outcome first, cancelled, third;
    acquire(l, 1, first);
    asio::cancellation_signal sig;
    acquire(l, 1, cancelled, sig.slot());
    acquire(l, 1, third);
    run_until(io, [&] { return first.ec.has_value(); });
    sig.emit(asio::cancellation_type::terminal);
    run_until(io, [&] { return cancelled.ec.has_value() && third.ec.has_value(); });
    CHECK(*cancelled.ec == asio::error::operation_aborted);
    CHECK_FALSE(cancelled.p);
    CHECK(*third.ec == error_code{});
    const auto s = l.snapshot();
    CHECK(s.cancelled_waiting == 1);
    CHECK(s.granted == 2);
}

TEST_CASE("limiter: permit.cancel gives the tokens back, release keeps them spent")
{
    asio::io_context io;
    limiter l(io.get_executor(), {.buckets = {{.rate = 1, .per = 1h, .burst = 2}}});
    outcome a, b;
    acquire(l, 1, a);
    acquire(l, 1, b);
    run_until(io, [&] { return a.ec && b.ec; });
    CHECK(l.snapshot().buckets[0].available == 0);
    a.p.cancel();
    CHECK(l.snapshot().buckets[0].available == 1);
    CHECK(l.snapshot().refunded == 1);
    b.p.release();
    CHECK(l.snapshot().buckets[0].available == 1);
}

TEST_CASE("limiter: the concurrency cap holds a waiter until a permit is released")
{
    asio::io_context io;
    limiter l(io.get_executor(), {.max_in_flight = 2});
    outcome a, b, c;
    acquire(l, 1, a);
    acquire(l, 1, b);
    acquire(l, 1, c);
    run_until(io, [&] { return a.ec && b.ec; });
    mailroom::test::settle(io, 20ms);
    CHECK_FALSE(c.ec);
    CHECK(l.snapshot().waiters == 1);
    b.p = permit{}; // released by assignment
    run_until(io, [&] { return c.ec.has_value(); });
    CHECK(*c.ec == error_code{});
}

TEST_CASE("limiter: impossible costs and close are errors, not hangs")
{
    asio::io_context io;
    std::optional<limiter> l(std::in_place, io.get_executor(),
                             rate_limiter_options{.buckets = {{.rate = 1, .per = 1h, .burst = 1}}});
    outcome too_big, held, waiting, after;
    acquire(*l, 2, too_big);
    acquire(*l, 1, held);
    acquire(*l, 1, waiting);
    run_until(io, [&] { return too_big.ec && held.ec; });
    CHECK(*too_big.ec == error::cost_exceeds_burst);
    CHECK_FALSE(waiting.ec);
    l->close();
    acquire(*l, 1, after);
    run_until(io, [&] { return waiting.ec && after.ec; });
    CHECK(*waiting.ec == asio::error::operation_aborted);
    CHECK(*after.ec == asio::error::operation_aborted);
    l.reset(); // the held permit outlives the limiter
    held.p.release();
}

TEST_CASE("limiter: a slow-down signal cuts the rate; bad options throw")
{
    asio::io_context io;
    limiter l(io.get_executor(), {.buckets = {{.rate = 10}}});
    l.on_signal(mailroom::limit::signal::slow_down);
    CHECK(l.snapshot().rate_permille == 500);
    CHECK_THROWS_AS(limiter(io.get_executor(), {.buckets = {{.rate = 0}}}),
                    boost::system::system_error);
}
