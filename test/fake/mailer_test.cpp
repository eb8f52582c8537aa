// The mailer against scripted servers: which failures are retried (and that the server then
// got the message once), routing, rate limits, slow-down replies, the snapshot's counters, and
// a multi-threaded io_context.

#include "fake_listener.hpp"

#include "../common/run_coro.hpp"

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <thread>

using namespace mailroom;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using test::fake_listener;
using test::run_coro;
using test::script;
using test::sink_options;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using sent = std::pair<error_code, send_report>;

smtp::client_options server_options(const fake_listener& s)
{
    smtp::client_options o;
    o.host = "127.0.0.1";
    o.port = s.port();
    o.helo_name = "client.test";
    o.tls.mode = smtp::tls_mode::none;
    o.timeouts.cap(2s);
    return o;
}

mime::message message(std::string from = "a@example.com", int rcpts = 1)
{
    mime::message_builder b;
    b.from(std::move(from)).subject("mailer test").text("Hello\n");
    for (int i = 0; i < rcpts; ++i)
        b.to("r" + std::to_string(i) + "@example.org");
    return b.build_or_throw();
}

script sink(sink_options o = {})
{
    return script().sink(std::move(o));
}

// A factory whose first connection has `faults` and whose others work.
fake_listener::factory first_connection(std::vector<sink_options::fault> faults)
{
    return [faults](std::size_t k) {
        return k == 0 ? sink({.faults = faults}) : sink();
    };
}

// Quick retries, so the tests don't wait.
retry_options fast_retry(unsigned attempts = 3)
{
    return {.max_attempts = attempts, .initial_backoff = 10ms, .max_backoff = 40ms};
}

provider_options provider(std::string name, const fake_listener& s,
                          std::vector<std::string> domains = {})
{
    return {.name = std::move(name),
            .server = server_options(s),
            .pool = {.max_connections = 2},
            .sender_domains = std::move(domains)};
}

mailer_options one_provider(const fake_listener& s)
{
    return {.providers = {provider("p", s)}, .retry = fast_retry()};
}

// GCC 12 warns at -O2 that a coroutine frame's class-specific operator delete doesn't match
// its operator new (-Wmismatched-new-delete): both are Asio's awaitable_frame_base's; a false
// positive of GCC's coroutine lowering (fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
asio::awaitable<sent> send(mailer* m, mime::message msg, send_request r = {})
{
    auto [ec, rep] = co_await m->async_send(std::move(msg), std::move(r), use_tuple);
    co_return sent{ec, std::move(rep)};
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// A port nobody listens on: bound, then closed, so connects to it are refused.
std::uint16_t refused_port(asio::io_context& io)
{
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

// A provider for a dead server: 200 ms per phase, a quick backoff, and a breaker that opens
// after two rounds of max_connections failed connects for 300 ms.
provider_options dead_provider(std::uint16_t port)
{
    smtp::client_options o;
    o.host = "127.0.0.1";
    o.port = port;
    o.helo_name = "client.test";
    o.tls.mode = smtp::tls_mode::none;
    o.timeouts.cap(200ms);
    return {.name = "p",
            .server = o,
            .pool = {.max_connections = 4,
                     .checkout_timeout = 60s,
                     .reconnect = {.initial = 20ms, .max = 100ms},
                     .breaker = {.failures = 5, .open_for = 300ms}}};
}

// Sends `msg` n times at once; returns how many ended with each error (by message), and under
// "*transient" how many with a code that matches condition::transient, once all have ended (or
// fails the test after `limit`).
std::map<std::string, int> send_many(asio::io_context& io, mailer& m, const mime::message& msg,
                                     int n, unsigned& most_attempts, steady::duration limit = 30s)
{
    std::map<std::string, int> codes;
    int done = 0;
    for (int i = 0; i < n; ++i)
        m.async_send(msg, [&](error_code ec, send_report rep) {
            ++codes[ec == asio::error::connection_refused ? "refused" : ec.message()];
            codes["*transient"] += ec == condition::transient ? 1 : 0;
            most_attempts = std::max(most_attempts, rep.attempts);
            ++done;
        });
    test::run_until(
        io, [&] { return done == n; }, limit);
    return codes;
}

std::string describe(const std::map<std::string, int>& codes)
{
    std::string all;
    for (const auto& [text, count] : codes)
        all += text + ": " + std::to_string(count) + "; ";
    return all;
}

std::size_t count_commands(const fake_listener& s, std::string_view prefix)
{
    std::size_t n = 0;
    for (const auto& l : s.sessions())
        for (const auto& c : l.commands)
            n += c.starts_with(prefix);
    return n;
}

} // namespace

TEST_SUITE("pool")
{
    TEST_CASE("mailer: a 4xx to MAIL, RCPT, DATA or the final dot is retried; delivered once")
    {
        for (const std::string command : {"MAIL", "RCPT", "DATA", "."}) {
            CAPTURE(command);
            asio::io_context io;
            fake_listener srv(
                io, first_connection({{.message = 0,
                                       .command = command,
                                       .reply = "451 4.3.0 temporary failure, try again"}}));
            mailer m(io.get_executor(), one_provider(srv));
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK_MESSAGE(!ec, ec.message(), " ", rep.delivery.diag.to_string());
            CHECK(rep.attempts == 2);
            CHECK(rep.provider == "p");
            CHECK(rep.delivery.outcome == smtp::outcome::delivered);
            CHECK(srv.accepted_count(msg.message_id()) == 1);
            // Only a refused final dot means the data went twice.
            CHECK(srv.data_count(msg.message_id()) == (command == "." ? 2 : 1));
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.delivered == 1);
            CHECK(s.failed == 0);
            CHECK(s.retries == 1);
            CHECK(s.replies[4] == 1);
            CHECK(s.replies[2] == 1);
        }
    }

    TEST_CASE("mailer: a connection lost before the final dot is retried on a fresh one")
    {
        for (const std::string command : {"MAIL", "RCPT", "DATA"}) {
            CAPTURE(command);
            asio::io_context io;
            fake_listener srv(io,
                              first_connection({{.message = 0, .command = command, .drop = true}}));
            mailer m(io.get_executor(), one_provider(srv));
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK_MESSAGE(!ec, ec.message(), " ", rep.delivery.diag.to_string());
            CHECK(rep.attempts == 2);
            REQUIRE(srv.accepted() == 2);
            const auto logs = srv.sessions();
            CHECK(logs[0].messages.empty());
            CHECK(logs[1].accepted == std::vector<std::string>{msg.message_id()});
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.delivered == 1);
            CHECK(s.retries == 1);
            CHECK(s.pool.discarded == 1);
        }
    }

    TEST_CASE("mailer: a 5xx is never retried")
    {
        struct variant {
            const char* command;
            const char* reply;
        };
        for (const auto& v : {variant{"MAIL", "550 5.7.1 sender rejected"},
                              variant{"RCPT", "550 5.1.1 no such user"},
                              variant{"DATA", "554 5.7.1 transaction failed"},
                              variant{".", "554 5.7.1 message refused"}}) {
            CAPTURE(v.command);
            asio::io_context io;
            fake_listener srv(
                io, first_connection({{.message = 0, .command = v.command, .reply = v.reply}}));
            mailer m(io.get_executor(), one_provider(srv));
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK(ec == condition::permanent);
            CHECK(ec.category() == smtp::reply_category());
            CHECK(ec.value() == std::stoi(v.reply));
            CHECK(rep.attempts == 1);
            CHECK(rep.delivery.outcome == smtp::outcome::failed);
            CHECK(srv.accepted_count(msg.message_id()) == 0);
            CHECK(count_commands(srv, "MAIL") == 1);
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.failed == 1);
            CHECK(s.retries == 0);
            CHECK(s.replies[5] == 1);
        }
    }

    TEST_CASE("mailer: the default token throws error_with_diagnostics with the refusal")
    {
        asio::io_context io;
        fake_listener srv(
            io, first_connection(
                    {{.message = 0, .command = "RCPT", .reply = "550 5.1.1 no such user"}}));
        mailer m(io.get_executor(), one_provider(srv));
        auto [ec, d] = run_coro(io, [&]() -> asio::awaitable<std::pair<error_code, diagnostics>> {
            try {
                const send_report r = co_await m.async_send(message());
                (void)r;
            } catch (const error_with_diagnostics& e) {
                co_return std::pair{e.code(), e.get_diagnostics()};
            }
            co_return std::pair{error_code{}, diagnostics{}};
        }());
        CHECK(ec == smtp::reply_code(550));
        CHECK(d.field == "RCPT TO");
        CHECK(d.detail.find("550 5.1.1 no such user") != std::string::npos);
    }

    TEST_CASE("mailer: a lost reply to the final dot is unknown, retried only with retry_unknown")
    {
        const std::vector<sink_options::fault> drop_after_dot = {
            {.message = 0, .command = ".", .drop = true}};
        SUBCASE("by default: not retried")
        {
            asio::io_context io;
            fake_listener srv(io, first_connection(drop_after_dot));
            mailer m(io.get_executor(), one_provider(srv));
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK(ec == error::delivery_status_unknown);
            CHECK(rep.attempts == 1);
            CHECK(rep.delivery.outcome == smtp::outcome::unknown);
            CHECK(srv.data_count(msg.message_id()) == 1);
            CHECK(srv.accepted_count(msg.message_id()) == 0);
            CHECK(srv.accepted() == 1);
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.unknown == 1);
            CHECK(s.failed == 0);
            CHECK(s.retries == 0);
        }
        SUBCASE("retry_unknown: sent again, with the same Message-ID")
        {
            asio::io_context io;
            fake_listener srv(io, first_connection(drop_after_dot));
            mailer m(io.get_executor(), one_provider(srv));
            const auto msg = message();
            auto retry = fast_retry();
            retry.retry_unknown = true;
            auto [ec, rep] = run_coro(io, send(&m, msg, {.retry = retry}));
            CHECK_FALSE(ec);
            CHECK(rep.attempts == 2);
            CHECK(srv.data_count(msg.message_id()) == 2);
            CHECK(srv.accepted_count(msg.message_id()) == 1);
            const auto logs = srv.sessions();
            REQUIRE(logs.size() == 2);
            CHECK(logs[0].messages == std::vector<std::string>{msg.message_id()});
            CHECK(logs[1].messages == std::vector<std::string>{msg.message_id()});
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.delivered == 1);
            CHECK(s.unknown == 0);
            CHECK(s.retries == 1);
        }
    }

    TEST_CASE("mailer: max_attempts and the deadline bound the retries")
    {
        // Every MAIL on every connection gets a 451.
        std::vector<sink_options::fault> always;
        for (std::size_t i = 0; i < 200; ++i)
            always.push_back({.message = i, .command = "MAIL", .reply = "451 4.3.0 not now"});
        SUBCASE("max_attempts")
        {
            asio::io_context io;
            fake_listener srv(io, [&](std::size_t) { return sink({.faults = always}); });
            mailer m(io.get_executor(), one_provider(srv));
            auto [ec, rep] = run_coro(io, send(&m, message()));
            CHECK(ec == smtp::reply_code::local_error);
            CHECK(rep.attempts == 3);
            CHECK(count_commands(srv, "MAIL") == 3);
            CHECK(rep.delivery.diag.detail.find("no attempts left") != std::string::npos);
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.failed == 1);
            CHECK(s.retries == 2);
            CHECK(s.replies[4] == 3);
        }
        SUBCASE("deadline")
        {
            asio::io_context io;
            fake_listener srv(io, [&](std::size_t) { return sink({.faults = always}); });
            mailer m(io.get_executor(), one_provider(srv));
            const retry_options r{.max_attempts = 100,
                                  .initial_backoff = 40ms,
                                  .max_backoff = 40ms,
                                  .deadline = 150ms};
            const auto t0 = steady::now();
            auto [ec, rep] = run_coro(io, send(&m, message(), {.retry = r}));
            const auto took = steady::now() - t0;
            CHECK(ec == smtp::reply_code::local_error);
            CHECK(rep.attempts >= 2);
            CHECK(rep.attempts < 100);
            CHECK(count_commands(srv, "MAIL") == rep.attempts);
            CHECK(rep.delivery.diag.detail.find("deadline") != std::string::npos);
            // Each wait was at least half the 40 ms step.
            CHECK(took >= (rep.attempts - 1) * 20ms);
            CHECK(rep.time.backoff >= (rep.attempts - 1) * 20ms);
        }
    }

    TEST_CASE("mailer: with require_route, mail from an unknown domain fails with no_route")
    {
        asio::io_context io;
        fake_listener one(io, [](std::size_t) { return sink(); });
        mailer m(io.get_executor(), {.providers = {provider("one", one, {"one.example"})},
                                     .require_route = true,
                                     .retry = fast_retry()});
        auto stranger = address::parse("x@else.example");
        REQUIRE(stranger);
        CHECK(m.route(*stranger).error() == error::no_route);
        auto [ec, rep] = run_coro(io, send(&m, message("x@else.example")));
        CHECK(ec == error::no_route);
        CHECK(rep.attempts == 0);
        CHECK(one.total_accepted() == 0);
        auto [ok, rep2] = run_coro(io, send(&m, message("x@one.example")));
        CHECK_FALSE(ok);
        CHECK(one.total_accepted() == 1);
        CHECK_THROWS_AS(mailer(io.get_executor(), {.providers = {provider("one", one, {})},
                                                   .default_provider = "one",
                                                   .require_route = true}),
                        boost::system::system_error);
    }

    TEST_CASE("mailer: routing by sender domain, a named provider, unknown_provider")
    {
        asio::io_context io;
        fake_listener one(io, [](std::size_t) { return sink(); });
        fake_listener two(io, [](std::size_t) { return sink(); });
        mailer m(io.get_executor(), {.providers = {provider("one", one, {"one.example"}),
                                                   provider("two", two, {"*.two.example"})},
                                     .retry = fast_retry()});
        struct route {
            const char* from;
            const char* provider; // by the routing
            fake_listener* server;
        };
        for (const auto& r :
             {route{"x@one.example", "one", &one}, route{"x@ONE.example", "one", &one},
              route{"x@two.example", "two", &two}, route{"x@mail.two.example", "two", &two},
              route{"x@else.example", "one", &one}}) { // the first is the default
            CAPTURE(r.from);
            const auto msg = message(r.from);
            auto sender = address::parse(r.from);
            REQUIRE(sender);
            auto routed = m.route(*sender);
            REQUIRE(routed);
            CHECK(*routed == r.provider);
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK_FALSE(ec);
            CHECK(rep.provider == r.provider);
            CHECK(r.server->accepted_count(msg.message_id()) == 1);
        }
        // A named provider wins over the routing.
        const auto named = message("x@one.example");
        auto [e1, r1] = run_coro(io, send(&m, named, {.provider = "two"}));
        CHECK_FALSE(e1);
        CHECK(r1.provider == "two");
        CHECK(two.accepted_count(named.message_id()) == 1);
        // An unknown one: nothing is sent.
        const auto before = one.total_accepted() + two.total_accepted();
        auto [e2, r2] = run_coro(io, send(&m, message("x@one.example"), {.provider = "nope"}));
        CHECK(e2 == error::unknown_provider);
        CHECK(r2.attempts == 0);
        CHECK(one.total_accepted() + two.total_accepted() == before);
        const auto s = m.snapshot();
        REQUIRE(s.providers.size() == 2);
        CHECK(s.providers[0].delivered == 3);
        CHECK(s.providers[1].delivered == 3);
    }

    TEST_CASE("mailer: default_provider takes unrouted mail; a misnamed one is refused")
    {
        asio::io_context io;
        fake_listener one(io, [](std::size_t) { return sink(); });
        fake_listener two(io, [](std::size_t) { return sink(); });
        mailer m(io.get_executor(), {.providers = {provider("one", one, {"one.example"}),
                                                   provider("two", two, {"two.example"})},
                                     .default_provider = "two",
                                     .retry = fast_retry()});
        const auto msg = message("x@else.example");
        auto [ec, rep] = run_coro(io, send(&m, msg));
        CHECK_FALSE(ec);
        CHECK(rep.provider == "two");
        CHECK(two.accepted_count(msg.message_id()) == 1);
        try {
            mailer bad(io.get_executor(),
                       {.providers = {provider("one", one)}, .default_provider = "nope"});
            FAIL("accepted");
        } catch (const boost::system::system_error& e) {
            CHECK(e.code() == error::invalid_mailer_options);
        }
        // A provider's pool options refused: the reason is said once, with where it is.
        try {
            auto p = provider("p", one);
            p.pool.pipeline_depth = 0;
            mailer bad(io.get_executor(), {.providers = {p}});
            FAIL("accepted");
        } catch (const boost::system::system_error& e) {
            const std::string w = e.what();
            CHECK(e.code() == error::invalid_pool_options);
            CHECK(w.starts_with("providers[0] (p): pipeline_depth"));
            const std::string message = e.code().message();
            CHECK(w.find(message) == w.rfind(message));
        }
    }

    TEST_CASE("mailer: 15 sends at 10/s with a burst of 5 take about a second")
    {
        asio::io_context io;
        fake_listener srv(io, [](std::size_t) { return sink(); });
        auto p = provider("p", srv);
        p.limits = {.buckets = {{.rate = 10, .burst = 5}}};
        mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
        constexpr int n = 15;
        int done = 0, failed = 0;
        const auto t0 = steady::now();
        for (int i = 0; i < n; ++i)
            asio::co_spawn(io, send(&m, message()), [&](std::exception_ptr, sent r) {
                failed += r.first ? 1 : 0;
                ++done;
            });
        test::run_until(io, [&] { return done == n; });
        // 5 at once, then 10 more at 10/s: 1 s (lower bound only).
        CHECK(steady::now() - t0 >= 900ms);
        CHECK(failed == 0);
        CHECK(srv.total_accepted() == n);
        const auto s = m.snapshot().providers.at(0);
        REQUIRE(s.limiter);
        CHECK(s.limiter->granted == n);
        CHECK(s.delivered == n);
        // Five went at once without waiting; the others waited (a token may come meanwhile).
        CHECK(s.limiter_wait.count() <= n - 5);
        CHECK(s.limiter_wait.count() >= 5);
    }

    TEST_CASE("mailer: a slow-down reply cuts the provider's rate")
    {
        struct variant {
            const char* command;
            const char* reply;
        };
        for (const auto& v : {variant{"RCPT", "452 4.3.2 system not accepting network messages"},
                              variant{"DATA", "421 4.7.0 Try again later, closing connection."},
                              variant{".", "421 4.7.0 Try again later, closing connection."}}) {
            const std::string where = std::string(v.command) + ": " + v.reply;
            CAPTURE(where);
            asio::io_context io;
            fake_listener srv(
                io, first_connection({{.message = 0, .command = v.command, .reply = v.reply}}));
            auto p = provider("p", srv);
            p.limits = {.buckets = {{.rate = 1000, .burst = 1000}}};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK_MESSAGE(!ec, ec.message(), " ", rep.delivery.diag.to_string());
            CHECK(rep.attempts == 2);
            CHECK(srv.accepted_count(msg.message_id()) == 1);
            const auto s = m.snapshot().providers.at(0);
            REQUIRE(s.limiter);
            CHECK(s.limiter->slow_down_signals == 1);
            CHECK(s.limiter->rate_cuts == 1);
            CHECK(s.limiter->rate_permille == 500);
        }
    }

    TEST_CASE("mailer: the snapshot counts what happened")
    {
        asio::io_context io;
        // One connection at a time, so the faults fall on known messages: on the first
        // connection 0 goes through, 1 is refused for good, 2 is deferred and goes as 3, 4
        // loses its final reply; on the second, 0 has one of two recipients refused.
        fake_listener srv(io, [](std::size_t k) {
            if (k == 0)
                return sink(
                    {.faults = {{.message = 1, .command = "MAIL", .reply = "550 5.7.1 no"},
                                {.message = 2, .command = "MAIL", .reply = "451 4.3.0 later"},
                                {.message = 4, .command = ".", .drop = true}}});
            return sink(
                {.faults = {{.message = 0, .command = "RCPT", .reply = "550 5.1.1 no such user"}}});
        });
        auto p = provider("p", srv);
        p.pool = {.max_connections = 1, .pipeline_depth = 1};
        mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
        std::vector<error_code> codes;
        std::vector<send_report> reports;
        for (int i = 0; i < 5; ++i) {
            auto [ec, rep] = run_coro(io, send(&m, message("a@example.com", i == 4 ? 2 : 1)));
            codes.push_back(ec);
            reports.push_back(std::move(rep));
        }
        CHECK_FALSE(codes[0]);
        CHECK(codes[1] == condition::permanent);
        CHECK_FALSE(codes[2]);
        CHECK(reports[2].attempts == 2);
        CHECK(codes[3] == error::delivery_status_unknown);
        CHECK_FALSE(codes[4]);
        CHECK(reports[4].delivery.outcome == smtp::outcome::partial);
        const auto s = m.snapshot().providers.at(0);
        CHECK(s.delivered == 2);
        CHECK(s.failed == 1);
        CHECK(s.unknown == 1);
        CHECK(s.partial == 1);
        CHECK(s.retries == 1);
        CHECK(s.in_progress == 0);
        CHECK(s.replies[2] == 3);
        CHECK(s.replies[4] == 1);
        CHECK(s.replies[5] == 1);
        CHECK(s.latency.count() == 5);
        CHECK(s.pool.discarded == 1);
        CHECK(m.snapshot().sent() == 3);
        CHECK(srv.total_accepted() == 3);
    }

    TEST_CASE("mailer: async_shutdown says QUIT everywhere; later sends get pool_closed")
    {
        asio::io_context io;
        fake_listener srv(io, [](std::size_t) { return sink(); });
        mailer m(io.get_executor(), one_provider(srv));
        REQUIRE_FALSE(run_coro(io, send(&m, message())).first);
        std::optional<error_code> done;
        m.async_shutdown([&](error_code ec) { done = ec; });
        test::run_until(io, [&] { return done.has_value(); });
        CHECK_FALSE(*done);
        for (const auto& l : srv.sessions())
            CHECK(l.quit);
        auto [ec, rep] = run_coro(io, send(&m, message()));
        CHECK(ec == error::pool_closed);
        CHECK(rep.attempts == 0);
    }

    TEST_CASE("mailer: a failed connect is retried; a permanent refusal is not")
    {
        SUBCASE("421 greeting, then a working server")
        {
            asio::io_context io;
            fake_listener srv(io, [](std::size_t k) {
                return k == 0 ? script().reply("421 4.3.2 too busy").close() : sink();
            });
            auto p = provider("p", srv);
            p.pool.reconnect = {.initial = 10ms, .max = 20ms};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg));
            CHECK_MESSAGE(!ec, ec.message(), " ", rep.delivery.diag.to_string());
            CHECK(rep.attempts == 2);
            CHECK(srv.accepted_count(msg.message_id()) == 1);
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.pool.connect_failures == 1);
            CHECK(s.retries == 1);
        }
        SUBCASE("554 greeting")
        {
            asio::io_context io;
            fake_listener srv(
                io, [](std::size_t) { return script().reply("554 5.7.1 go away").close(); });
            mailer m(io.get_executor(), one_provider(srv));
            auto [ec, rep] = run_coro(io, send(&m, message()));
            CHECK(ec == condition::permanent);
            CHECK(rep.attempts == 1);
            CHECK(srv.accepted() == 1);
            CHECK(m.snapshot().providers.at(0).failed == 1);
        }
    }

    TEST_CASE("mailer: a send cancelled while it waits takes nothing and sends nothing")
    {
        SUBCASE("waiting for the rate limiter")
        {
            asio::io_context io;
            fake_listener srv(io, [](std::size_t) { return sink(); });
            auto p = provider("p", srv);
            p.limits = {.buckets = {{.rate = 1, .burst = 1}}};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
            REQUIRE_FALSE(run_coro(io, send(&m, message())).first); // takes the only token
            asio::cancellation_signal sig;
            std::optional<std::pair<error_code, send_report>> out;
            const auto waiting = message();
            m.async_send(waiting, asio::bind_cancellation_slot(sig.slot(),
                                                               [&](error_code ec, send_report r) {
                                                                   out.emplace(ec, std::move(r));
                                                               }));
            test::settle(io);
            CHECK_FALSE(out.has_value());
            CHECK(m.snapshot().providers.at(0).limiter->waiters == 1);
            sig.emit(asio::cancellation_type::terminal);
            test::run_until(io, [&] { return out.has_value(); });
            CHECK(out->first == asio::error::operation_aborted);
            test::settle(io);
            CHECK(srv.data_count(waiting.message_id()) == 0);
            CHECK(count_commands(srv, "MAIL") == 1);
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.limiter->granted == 1);
            CHECK(s.limiter->waiters == 0);
            CHECK(s.in_progress == 0);
        }
        SUBCASE("waiting for a connection")
        {
            asio::io_context io;
            // The first message's final reply is slow, so the one connection stays busy.
            fake_listener srv(io, [](std::size_t) {
                return sink({.faults = {{.message = 0, .command = ".", .delay = 300ms}}});
            });
            auto p = provider("p", srv);
            p.pool = {.max_connections = 1, .pipeline_depth = 1};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
            std::optional<error_code> first;
            m.async_send(message(), [&](error_code ec, send_report) { first = ec; });
            test::run_until(io, [&] { return srv.accepted() == 1; });
            asio::cancellation_signal sig;
            std::optional<error_code> second;
            const auto waiting = message();
            m.async_send(waiting,
                         asio::bind_cancellation_slot(
                             sig.slot(), [&](error_code ec, send_report) { second = ec; }));
            test::settle(io);
            CHECK(m.snapshot().providers.at(0).pool.waiters == 1);
            sig.emit(asio::cancellation_type::terminal);
            test::run_until(io, [&] { return first.has_value() && second.has_value(); });
            CHECK_FALSE(*first);
            CHECK(*second == asio::error::operation_aborted);
            CHECK(srv.data_count(waiting.message_id()) == 0);
            const auto s = m.snapshot().providers.at(0);
            CHECK(s.pool.checkouts == 1);
            CHECK(s.delivered == 1);
        }
    }

    TEST_CASE("mailer: partial or total cancellation lets a transaction under way finish")
    {
        for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total,
                          asio::cancellation_type::terminal}) {
            CAPTURE(static_cast<int>(type));
            asio::io_context io;
            // The final reply is slow: the signal arrives while the transaction waits for it.
            fake_listener srv(io, [](std::size_t) {
                return sink({.faults = {{.message = 0, .command = ".", .delay = 300ms}}});
            });
            mailer m(io.get_executor(), one_provider(srv));
            asio::cancellation_signal sig;
            std::optional<std::pair<error_code, send_report>> out;
            const auto msg = message();
            m.async_send(
                msg, asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, send_report r) {
                    out.emplace(ec, std::move(r));
                }));
            test::run_until(io, [&] { return srv.accepted() == 1; });
            test::settle(io, 150ms);
            REQUIRE_FALSE(out.has_value());
            sig.emit(type);
            test::run_until(io, [&] { return out.has_value(); });
            if (type == asio::cancellation_type::terminal) {
                // The final dot was written: the message may have arrived.
                CHECK(out->first == error::delivery_status_unknown);
                CHECK(out->second.delivery.outcome == smtp::outcome::unknown);
            } else {
                CHECK_FALSE(out->first);
                CHECK(out->second.delivery.outcome == smtp::outcome::delivered);
                CHECK(out->second.attempts == 1);
            }
            test::settle(io);
            CHECK(srv.data_count(msg.message_id()) == 1);
        }
    }

    TEST_CASE("mailer: partial or total cancellation during a transaction: no retry after it")
    {
        for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
            CAPTURE(static_cast<int>(type));
            asio::io_context io;
            // The final dot is refused, slowly: without the cancellation this would be retried.
            fake_listener srv(io, first_connection({{.message = 0,
                                                     .command = ".",
                                                     .reply = "451 4.3.0 try again later",
                                                     .delay = 300ms}}));
            mailer m(io.get_executor(), one_provider(srv));
            asio::cancellation_signal sig;
            std::optional<std::pair<error_code, send_report>> out;
            const auto msg = message();
            m.async_send(
                msg, asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, send_report r) {
                    out.emplace(ec, std::move(r));
                }));
            test::run_until(io, [&] { return srv.data_count(msg.message_id()) == 1; });
            REQUIRE_FALSE(out.has_value());
            sig.emit(type);
            test::run_until(io, [&] { return out.has_value(); });
            CHECK(out->first.category() == smtp::reply_category());
            CHECK(out->first.value() == 451);
            CHECK(out->second.attempts == 1);
            test::settle(io, 200ms);
            CHECK(srv.data_count(msg.message_id()) == 1);
            CHECK(srv.accepted_count(msg.message_id()) == 0);
        }
    }

    // Regression (fixed in 6851bd4): a server that answers a pipelined MAIL with 421 closes
    // at once (RFC 5321 §3.8), so the RCPT reply never comes; the client reported the lost
    // connection and dropped the 421, so the limiter never heard the slow-down.
    TEST_CASE("mailer: a 421 to a pipelined MAIL, then a close, still slows the provider down")
    {
        asio::io_context io;
        fake_listener srv(
            io, first_connection(
                    {{.message = 0, .command = "MAIL", .reply = "421 4.7.0 Try again later"}}));
        auto p = provider("p", srv);
        p.limits = {.buckets = {{.rate = 1000, .burst = 1000}}};
        mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
        const auto msg = message();
        auto [ec, rep] = run_coro(io, send(&m, msg));
        CHECK_FALSE(ec);
        CHECK(rep.attempts == 2);
        CHECK(srv.accepted_count(msg.message_id()) == 1);
        const auto s = m.snapshot().providers.at(0);
        CHECK(s.replies[4] == 1);
        REQUIRE(s.limiter);
        CHECK(s.limiter->slow_down_signals == 1);
        CHECK(s.limiter->rate_cuts == 1);
    }

    // Regression (fixed in d9bf2f0): close() didn't wake a send sleeping between attempts;
    // it slept out its backoff, then failed with error::pool_closed.
    TEST_CASE("mailer: close() ends a send waiting to retry with operation_aborted")
    {
        asio::io_context io;
        fake_listener srv(
            io, first_connection({{.message = 0, .command = "MAIL", .reply = "451 4.3.0 later"}}));
        auto p = provider("p", srv);
        mailer m(io.get_executor(),
                 {.providers = {p},
                  .retry = {.max_attempts = 3, .initial_backoff = 1s, .max_backoff = 1s}});
        std::optional<std::pair<error_code, send_report>> out;
        m.async_send(message(),
                     [&](error_code ec, send_report r) { out.emplace(ec, std::move(r)); });
        test::run_until(io, [&] { return m.snapshot().providers.at(0).retries == 1; });
        m.close();
        test::run_until(io, [&] { return out.has_value(); });
        CHECK(out->first == asio::error::operation_aborted);
    }

    // Regression (fixed in 1fc414f): limiter::try_acquire enqueued a ticket and cancelled it
    // when the send had to wait, which counted as a cancelled wait in the snapshot.
    TEST_CASE("mailer: sends that wait for the limiter are not counted as cancelled waits")
    {
        asio::io_context io;
        fake_listener srv(io, [](std::size_t) { return sink(); });
        auto p = provider("p", srv);
        p.limits = {.buckets = {{.rate = 50, .burst = 2}}};
        mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
        int done = 0;
        for (int i = 0; i < 6; ++i)
            m.async_send(message(), [&](error_code, send_report) { ++done; });
        test::run_until(io, [&] { return done == 6; });
        const auto s = m.snapshot().providers.at(0);
        REQUIRE(s.limiter);
        CHECK(s.delivered == 6);
        CHECK(s.limiter->granted == 6);
        CHECK(s.limiter->cancelled_waiting == 0);
    }

    TEST_CASE("mailer: four threads, two providers, 400 sends from many strands, each once")
    {
        asio::io_context io(4);
        fake_listener one(io, [](std::size_t) { return sink(); });
        fake_listener two(io, [](std::size_t) { return sink(); });
        mailer m(io.get_executor(), {.providers = {provider("one", one, {"one.example"}),
                                                   provider("two", two, {"two.example"})},
                                     .retry = fast_retry()});
        constexpr int n = 400;
        std::vector<mime::message> msgs;
        for (int i = 0; i < n; ++i)
            msgs.push_back(message(i % 2 ? "a@two.example" : "a@one.example"));
        std::vector<error_code> codes(n);
        std::vector<std::string> routed(n);
        std::atomic<int> done{0};
        for (int i = 0; i < n; ++i)
            asio::co_spawn(asio::make_strand(io), send(&m, msgs[i]),
                           [&, i](std::exception_ptr e, sent r) {
                               codes[i] = e ? make_error_code(error::protocol_error) : r.first;
                               routed[i] = r.second.provider;
                               done.fetch_add(1);
                           });
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] { io.run(); });
        const auto deadline = steady::now() + 20s;
        while (done.load() < n && steady::now() < deadline)
            std::this_thread::sleep_for(5ms);
        std::atomic<bool> shut{false};
        m.async_shutdown([&](error_code) { shut = true; });
        while (!shut.load() && steady::now() < deadline)
            std::this_thread::sleep_for(5ms);
        io.stop();
        for (auto& t : threads)
            t.join();

        REQUIRE(done.load() == n);
        CHECK(shut.load());
        int failed = 0, misrouted = 0;
        for (int i = 0; i < n; ++i) {
            failed += codes[i] ? 1 : 0;
            misrouted += routed[i] != (i % 2 ? "two" : "one");
        }
        CHECK(failed == 0);
        CHECK(misrouted == 0);
        std::map<std::string, int> seen;
        for (auto* s : {&one, &two})
            for (const auto& l : s->sessions())
                for (const auto& id : l.accepted)
                    ++seen[id];
        CHECK(seen.size() == msgs.size());
        int not_once = 0;
        for (const auto& msg : msgs)
            not_once += seen[msg.message_id()] != 1;
        CHECK(not_once == 0);
        CHECK(one.total_accepted() == n / 2);
        CHECK(two.total_accepted() == n / 2);
        CHECK(one.max_open() <= 2);
        CHECK(two.max_open() <= 2);
        const auto s = m.snapshot();
        CHECK(s.sent() == n);
        CHECK(s.providers[0].delivered == n / 2);
        CHECK(s.providers[1].delivered == n / 2);
    }

    // Issue 12: 5 000 sends to a dead server (refused, or accepting and never greeting) end
    // within a few per-phase timeouts and open periods, each with a typed error, instead of
    // hours; once the server is back, sends go through again.
    TEST_CASE("mailer: 5 000 sends to a refused port all fail fast, each with a typed error")
    {
        asio::io_context io;
        const auto port = refused_port(io);
        mailer m(io.get_executor(), {.providers = {dead_provider(port)},
                                     .retry = {.max_attempts = 3,
                                               .initial_backoff = 10ms,
                                               .max_backoff = 40ms,
                                               .deadline = 60s}});
        constexpr int n = 5000;
        unsigned most = 0;
        const auto t0 = steady::now();
        auto codes = send_many(io, m, message(), n, most, 20s);
        MESSAGE("5000 sends to a refused port (timeouts 200 ms, breaker 5 / 300 ms, 3 attempts) "
                "failed in ",
                std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count(),
                " ms");
        // The last attempt met the refusal (its probe or the trip) or the open breaker: every
        // send failed with a typed, retryable error (on a loaded machine a connect's 200 ms
        // deadline may also pass before the refusal is read).
        const auto elapsed = steady::now() - t0;
        CAPTURE(describe(codes));
        CHECK(codes["*transient"] == n);
        CHECK(codes["refused"] > 0);
        CHECK(most == 3);
        const auto s = m.snapshot().providers.at(0);
        CHECK(s.failed == n);
        CHECK(s.in_progress == 0);
        // Two rounds of four connects, then at most one probe per open period.
        CHECK(s.pool.connect_failures >= 5);
        CHECK(s.pool.connect_failures <= static_cast<std::uint64_t>(9 + elapsed / 300ms));
        CHECK(s.pool.breaker_trips >= 2);
        CHECK(s.pool.breaker != pool::breaker_state::closed);
    }

    TEST_CASE("mailer: 5 000 sends to a server that never greets fail fast; it comes back")
    {
        asio::io_context io;
        std::atomic<bool> up{false};
        fake_listener srv(io, [&](std::size_t) { return up ? sink() : script().hang(); });
        mailer m(io.get_executor(), {.providers = {dead_provider(srv.port())},
                                     .retry = {.max_attempts = 3,
                                               .initial_backoff = 10ms,
                                               .max_backoff = 40ms,
                                               .deadline = 60s}});
        constexpr int n = 5000;
        unsigned most = 0;
        const auto t0 = steady::now();
        auto codes = send_many(io, m, message(), n, most, 20s);
        MESSAGE("5000 sends to a silent server (timeouts 200 ms, breaker 5 / 300 ms, 3 "
                "attempts) failed in ",
                std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count(),
                " ms");
        const auto elapsed = steady::now() - t0;
        const auto timeout = make_error_code(error::greeting_timeout).message();
        CAPTURE(describe(codes));
        CHECK(codes["*transient"] == n);
        CHECK(codes[timeout] > 0);
        CHECK(srv.accepted() <= static_cast<std::size_t>(9 + elapsed / 300ms));
        CHECK(srv.total_accepted() == 0);
        CHECK(m.snapshot().providers.at(0).failed == n);

        // Back: once the open period is over, the probe finds it and sends go through.
        up = true;
        test::settle(io, 320ms);
        most = 0;
        codes = send_many(io, m, message(), 100, most);
        CHECK(codes ==
              std::map<std::string, int>{{error_code{}.message(), 100}, {"*transient", 0}});
        CHECK(srv.total_accepted() == 100);
        const auto s = m.snapshot().providers.at(0);
        CHECK(s.delivered == 100);
        CHECK(s.pool.breaker == pool::breaker_state::closed);
    }

    TEST_CASE("mailer: a retry waits for the breaker's probe; past the deadline it isn't made")
    {
        SUBCASE("within the deadline: each attempt after the first is a half-open probe")
        {
            asio::io_context io;
            auto p = dead_provider(refused_port(io));
            p.pool.breaker = {.failures = 1, .open_for = 100ms};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry(3)});
            auto [ec, rep] = run_coro(io, send(&m, message()));
            CHECK(ec == asio::error::connection_refused);
            CHECK(rep.attempts == 3);
            const auto s = m.snapshot().providers.at(0);
            // Retried at once, attempts 2 and 3 would have met circuit_open with no connect.
            CHECK(s.pool.connect_failures == 3);
            CHECK(s.pool.breaker_trips == 3);
            CHECK(s.retries == 2);
        }
        SUBCASE("the open period ends after the deadline: no retry")
        {
            asio::io_context io;
            auto p = dead_provider(refused_port(io));
            p.pool.breaker = {.failures = 1, .open_for = 10s};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry(3)});
            retry_options r = fast_retry(3);
            r.deadline = 1s;
            auto [ec, rep] = run_coro(io, send(&m, message(), {.retry = r}));
            CHECK(ec == asio::error::connection_refused);
            CHECK(rep.attempts == 1);
            CHECK(rep.delivery.diag.detail.find("circuit breaker stays open") != std::string::npos);
            // A new send meets the open breaker, with the connect error in its diagnostics.
            auto [ec2, rep2] = run_coro(io, send(&m, message(), {.retry = r}));
            CHECK(ec2 == error::circuit_open);
            CHECK(ec2 == condition::transient);
            CHECK(rep2.attempts == 1);
            CHECK(rep2.delivery.diag.detail.find(
                      make_error_code(asio::error::connection_refused).message()) !=
                  std::string::npos);
            CHECK(m.snapshot().providers.at(0).pool.connect_failures == 1);
        }
    }

    TEST_CASE("mailer: the deadline bounds the wait for a connection")
    {
        asio::io_context io;
        // The one connection is held by a slow send (its final dot answered after 2 s).
        fake_listener srv(io, first_connection({{.command = ".", .delay = 2s}}));
        auto p = provider("p", srv);
        p.pool.max_connections = 1;
        p.pool.pipeline_depth = 1;
        mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
        const auto slow = message();
        bool slow_done = false;
        m.async_send(slow, [&](error_code, send_report) { slow_done = true; });
        test::run_until(io, [&] { return srv.data_count(slow.message_id()) == 1; });
        retry_options r = fast_retry();
        r.deadline = 200ms;
        const auto msg = message();
        auto [ec, rep] = run_coro(io, send(&m, msg, {.retry = r}));
        CHECK(ec == error::send_deadline_exceeded);
        CHECK(ec == condition::timeout);
        CHECK(rep.attempts == 1);
        CHECK(rep.delivery.diag.to_string().find("connection") != std::string::npos);
        CHECK_FALSE(slow_done); // it ended before the connection came back
        test::run_until(io, [&] { return slow_done; });
        CHECK(srv.data_count(msg.message_id()) == 0);
        CHECK(m.snapshot().providers.at(0).failed == 1);
    }

    TEST_CASE("mailer: the deadline bounds the wait for the rate limiter")
    {
        SUBCASE("first attempt: send_deadline_exceeded")
        {
            asio::io_context io;
            fake_listener srv(io, [](std::size_t) { return sink(); });
            auto p = provider("p", srv);
            p.limits = {.buckets = {{.rate = 1, .burst = 1}}}; // the next token in 1 s
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
            auto [ec0, rep0] = run_coro(io, send(&m, message()));
            REQUIRE(!ec0);
            retry_options r = fast_retry();
            r.deadline = 200ms;
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg, {.retry = r}));
            CHECK(ec == error::send_deadline_exceeded);
            CHECK(rep.delivery.diag.to_string().find("rate limiter") != std::string::npos);
            CHECK(srv.data_count(msg.message_id()) == 0);
            CHECK(m.snapshot().providers.at(0).limiter->waiters == 0);
        }
        SUBCASE("after a failed attempt: that attempt's error, the diagnostics saying why")
        {
            asio::io_context io;
            fake_listener srv(
                io, first_connection({{.command = "MAIL", .reply = "451 4.3.0 not now"}}));
            auto p = provider("p", srv);
            p.limits = {.buckets = {{.rate = 1, .burst = 1}}};
            mailer m(io.get_executor(), {.providers = {p}, .retry = fast_retry()});
            retry_options r = fast_retry();
            r.deadline = 300ms;
            const auto msg = message();
            auto [ec, rep] = run_coro(io, send(&m, msg, {.retry = r}));
            CHECK(ec == smtp::reply_code::local_error);
            CHECK(rep.attempts == 2);
            CHECK(rep.delivery.diag.detail.find("deadline passed while it waited for the rate "
                                                "limiter") != std::string::npos);
            CHECK(srv.accepted_count(msg.message_id()) == 0);
        }
    }
}
