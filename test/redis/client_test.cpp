// redis::client against real redis-server processes (Debian's 7.0), each test starting its own
// on 127.0.0.1 and a free port, in a temporary directory, with no persistence, and stopping
// it by its process id: commands, pipelining from many coroutines and threads, AUTH with
// requirepass and ACL users, SELECT, a server killed and restarted, a stopped server (request
// and connect deadlines), close(), the counters, and TLS (rediss://) with the test PKI.

#include "../common/run_coro.hpp"
#include "redis_server.hpp"

#include <mailroom/redis/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;
using namespace mailroom;
namespace asio = boost::asio;
using asio::awaitable;
using mailroom::redis::reply;
using mailroom::test::free_port;
using mailroom::test::redis_server;
using mailroom::test::run_coro;
using mailroom::test::test_pki;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Log lines, from any thread.
struct log_capture {
    std::mutex mutex;
    std::vector<std::string> lines;

    logger make(log_level level = log_level::debug)
    {
        return logger{level, [this](log_level, std::string_view l) {
                          std::lock_guard lock(mutex);
                          lines.emplace_back(l);
                      }};
    }
    bool has(std::string_view part)
    {
        std::lock_guard lock(mutex);
        return std::any_of(lines.begin(), lines.end(),
                           [&](const std::string& l) { return l.find(part) != std::string::npos; });
    }
    std::string all()
    {
        std::lock_guard lock(mutex);
        std::string s;
        for (const auto& l : lines)
            s += l + "\n";
        return s;
    }
};

redis::options opts_for(const redis_server& s, std::string_view userinfo = {}, unsigned db = 0)
{
    diagnostics diag;
    auto o = redis::options::from_url(s.url(userinfo, db), diag);
    REQUIRE_MESSAGE(o.has_value(), diag.to_string());
    return *o;
}

struct outcome {
    error_code ec;
    reply r;
};

awaitable<outcome> exec(redis::client& c, std::vector<std::string> args)
{
    auto [ec, r] = co_await c.async_exec(std::move(args), use_tuple);
    co_return outcome{ec, std::move(r)};
}

// Runs one command to its end.
outcome run(asio::io_context& io, redis::client& c, std::vector<std::string> args)
{
    return run_coro(io, exec(c, std::move(args)), 20s);
}

awaitable<void> sleep_for(steady::duration d)
{
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(use_tuple);
}

// PING until it works; false if it didn't within `limit`.
awaitable<bool> ping_until_ok(redis::client& c, steady::duration limit)
{
    const auto end = steady::now() + limit;
    while (steady::now() < end) {
        // Named, not a braced list: GCC 12 can't keep an initializer_list across co_await.
        std::vector<std::string> ping{"PING"};
        auto [ec, r] = co_await c.async_exec(std::move(ping), use_tuple);
        if (!ec && r.str == "PONG")
            co_return true;
        co_await sleep_for(50ms);
    }
    co_return false;
}

} // namespace

TEST_SUITE("redis")
{
    TEST_CASE("simple commands, every reply type, counters and the connect log line")
    {
        redis_server server;
        asio::io_context io;
        log_capture logs;
        auto o = opts_for(server);
        o.log = logs.make();
        redis::client c(io.get_executor(), o);
        CHECK(c.snapshot().state == redis::state::idle);

        auto r = run(io, c, {"SET", "greeting", std::string("hi\0there\r\n", 10)});
        CHECK_FALSE(r.ec);
        CHECK(r.r.kind == reply::type::status);
        CHECK(r.r.str == "OK");
        r = run(io, c, {"GET", "greeting"});
        CHECK(r.r.kind == reply::type::string);
        CHECK(r.r.str == std::string("hi\0there\r\n", 10));
        r = run(io, c, {"GET", "missing"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.kind == reply::type::nil);
        r = run(io, c, {"INCRBY", "n", "41"});
        CHECK(r.r.kind == reply::type::integer);
        CHECK(r.r.integer == 41);
        r = run(io, c, {"MGET", "n", "missing"});
        REQUIRE(r.r.kind == reply::type::array);
        REQUIRE(r.r.elements.size() == 2);
        CHECK(r.r.elements[0].str == "41");
        CHECK(r.r.elements[1].kind == reply::type::nil);
        // An error reply is a reply, not an error code.
        r = run(io, c, {"INCR", "greeting"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.is_error("ERR"));
        r = run(io, c, {"EVALSHA", "0000000000000000000000000000000000000000", "0"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.is_error("NOSCRIPT"));
        // No command at all.
        r = run(io, c, {});
        CHECK(r.ec == asio::error::invalid_argument);

        const auto s = c.snapshot();
        CHECK(s.state == redis::state::connected);
        CHECK(s.requests == 8);
        CHECK(s.replies == 7);
        CHECK(s.failed == 1);
        CHECK(s.connects == 1);
        CHECK(s.connect_failures == 0);
        CHECK(s.timeouts == 0);
        CHECK(s.pending == 0);
        CHECK(logs.has("redis[127.0.0.1:" + std::to_string(server.port()) + "] connected"));
    }

    TEST_CASE("handlers run on their associated executor, never inside async_exec")
    {
        redis_server server;
        asio::io_context io;
        redis::client c(io.get_executor(), opts_for(server));
        auto strand = asio::make_strand(io);
        bool returned = false, ran = false, on_strand = false;
        c.async_exec({"PING"}, asio::bind_executor(strand, [&](error_code ec, reply r) {
                         CHECK(returned);
                         CHECK_FALSE(ec);
                         CHECK(r.str == "PONG");
                         on_strand = strand.running_in_this_thread();
                         ran = true;
                     }));
        returned = true;
        mailroom::test::run_until(
            io, [&] { return ran; }, 10s);
        CHECK(on_strand);

        // Completed at once (closed), still not inline.
        c.close();
        bool inline_call = true, done = false;
        c.async_exec({"PING"}, [&](error_code ec, reply) {
            CHECK(ec == asio::error::operation_aborted);
            CHECK_FALSE(inline_call);
            done = true;
        });
        inline_call = false;
        mailroom::test::run_until(
            io, [&] { return done; }, 10s);
    }

    TEST_CASE("1000 INCRs from 1000 coroutines are pipelined and answered in order")
    {
        redis_server server;
        asio::io_context io;
        redis::client c(io.get_executor(), opts_for(server));
        constexpr int n = 1000;
        std::vector<long long> got(n, -1);
        std::vector<bool> error(n, false);
        int done = 0;
        std::size_t max_pending = 0;
        for (int i = 0; i < n; ++i) {
            asio::co_spawn(
                io,
                [&, i]() -> awaitable<void> {
                    std::vector<std::string> incr{"INCR", "counter"};
                    auto [ec, r] = co_await c.async_exec(std::move(incr), use_tuple);
                    error[i] = static_cast<bool>(ec);
                    got[i] = r.integer;
                    ++done;
                },
                asio::detached);
        }
        mailroom::test::run_until(
            io,
            [&] {
                max_pending = std::max(max_pending, c.snapshot().pending);
                return done == n;
            },
            20s);
        for (int i = 0; i < n; ++i) {
            CAPTURE(i);
            CHECK_FALSE(error[i]);
            CHECK(got[i] == i + 1);
        }
        // They were all waiting at once on the one connection: pipelined, not one by one.
        CHECK(max_pending > 100);
        CHECK(c.snapshot().connects == 1);
        CHECK(c.snapshot().replies == n);
    }

    TEST_CASE("from four threads at once: each caller's requests in its order, none lost")
    {
        redis_server server;
        asio::io_context io;
        redis::client c(io.get_executor(), opts_for(server));
        constexpr int callers = 8, each = 125;
        std::mutex mutex;
        std::vector<std::vector<long long>> seen(callers);
        std::atomic<int> finished{0};
        auto work = asio::make_work_guard(io);
        for (int k = 0; k < callers; ++k) {
            // Each caller on its own strand, so the calls come from several threads.
            asio::co_spawn(
                asio::make_strand(io),
                [&, k]() -> awaitable<void> {
                    for (int i = 0; i < each; ++i) {
                        std::vector<std::string> incr{"INCR", "shared"};
                        auto [ec, r] = co_await c.async_exec(std::move(incr), use_tuple);
                        std::lock_guard lock(mutex);
                        seen[k].push_back(ec ? -1 : r.integer);
                    }
                    ++finished;
                },
                asio::detached);
        }
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] { io.run(); });
        const auto end = steady::now() + 20s;
        while (finished < callers && steady::now() < end) {
            (void)c.snapshot(); // read from yet another thread meanwhile
            std::this_thread::sleep_for(5ms);
        }
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
        REQUIRE(finished == callers);
        std::vector<long long> all;
        for (const auto& s : seen) {
            REQUIRE(s.size() == each);
            CHECK(std::is_sorted(s.begin(), s.end()));
            all.insert(all.end(), s.begin(), s.end());
        }
        std::sort(all.begin(), all.end());
        for (int i = 0; i < callers * each; ++i)
            REQUIRE(all[i] == i + 1);
    }

    TEST_CASE("requirepass: the right password works; a wrong or missing one is auth_failed")
    {
        redis_server server({"--requirepass", "s3cret-pw"});
        asio::io_context io;
        log_capture logs;

        auto good = opts_for(server, ":s3cret-pw");
        good.log = logs.make(log_level::trace);
        redis::client ok(io.get_executor(), good);
        auto r = run(io, ok, {"PING"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "PONG");

        auto bad = opts_for(server, ":not-the-pw");
        bad.log = logs.make(log_level::trace);
        redis::client wrong(io.get_executor(), bad);
        r = run(io, wrong, {"PING"});
        CHECK(r.ec == error::redis_auth_failed);
        CHECK(r.ec == condition::permanent);
        CHECK(wrong.snapshot().connect_failures == 1);
        CHECK(wrong.snapshot().state == redis::state::reconnecting);
        CHECK(logs.has("AUTH refused"));

        // No password at all: the server says NOAUTH to the request itself.
        auto none = opts_for(server);
        none.log = logs.make(log_level::trace);
        redis::client missing(io.get_executor(), none);
        r = run(io, missing, {"SET", "k", "v"});
        CHECK(r.ec == error::redis_auth_failed);
        CHECK(r.r.is_error("NOAUTH"));

        const std::string all = logs.all();
        CHECK(all.find("s3cret-pw") == std::string::npos);
        CHECK(all.find("not-the-pw") == std::string::npos);
    }

    TEST_CASE("ACL user: AUTH user password, its key patterns, NOPERM, a wrong password")
    {
        redis_server server;
        asio::io_context io;
        redis::client admin(io.get_executor(), opts_for(server));
        auto r = run(io, admin, {"ACL", "SETUSER", "app", "on", ">app%pw", "~app:*", "+@all"});
        REQUIRE_FALSE(r.ec);
        REQUIRE(r.r.str == "OK");

        // '%' percent-encoded in the URL.
        redis::client app(io.get_executor(), opts_for(server, "app:app%25pw"));
        r = run(io, app, {"SET", "app:x", "1"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "OK");
        r = run(io, app, {"ACL", "WHOAMI"});
        CHECK(r.r.str == "app");
        r = run(io, app, {"SET", "other:x", "1"});
        CHECK(r.ec == error::redis_auth_failed);
        CHECK(r.r.is_error("NOPERM"));
        // The connection is still good.
        r = run(io, app, {"GET", "app:x"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "1");

        redis::client wrong(io.get_executor(), opts_for(server, "app:nope"));
        r = run(io, wrong, {"GET", "app:x"});
        CHECK(r.ec == error::redis_auth_failed);
        redis::client nobody(io.get_executor(), opts_for(server, "ghost:pw"));
        r = run(io, nobody, {"GET", "app:x"});
        CHECK(r.ec == error::redis_auth_failed);
    }

    TEST_CASE("SELECT: a key written in one database is seen only there")
    {
        redis_server server;
        asio::io_context io;
        redis::client db3(io.get_executor(), opts_for(server, {}, 3));
        redis::client db0(io.get_executor(), opts_for(server, {}, 0));
        auto r = run(io, db3, {"SET", "only-in-3", "yes"});
        REQUIRE_FALSE(r.ec);
        r = run(io, db0, {"GET", "only-in-3"});
        CHECK(r.r.kind == reply::type::nil);
        r = run(io, db3, {"GET", "only-in-3"});
        CHECK(r.r.str == "yes");
        redis::client db3b(io.get_executor(), opts_for(server, {}, 3));
        r = run(io, db3b, {"EXISTS", "only-in-3"});
        CHECK(r.r.integer == 1);

        // The server has 16 databases.
        redis::client db99(io.get_executor(), opts_for(server, {}, 99));
        r = run(io, db99, {"PING"});
        CHECK(r.ec == error::invalid_redis_options);
    }

    TEST_CASE("server killed: pending and new requests are unavailable; restarted: it reconnects")
    {
        redis_server server;
        asio::io_context io;
        log_capture logs;
        auto o = opts_for(server);
        o.request_timeout = 10s;
        o.reconnect_initial = 1500ms; // the first step waits 0.75 to 1.5 s
        o.reconnect_max = 2s;
        o.log = logs.make();
        redis::client c(io.get_executor(), o);
        REQUIRE_FALSE(run(io, c, {"PING"}).ec);

        // A request the server holds (BLPOP waits for a list), pending when the server dies.
        bool blpop_done = false;
        error_code blpop_ec;
        c.async_exec({"BLPOP", "never", "0"}, [&](error_code ec, reply) {
            blpop_ec = ec;
            blpop_done = true;
        });
        mailroom::test::settle(io, 200ms);
        REQUIRE_FALSE(blpop_done);
        CHECK(c.snapshot().pending == 1);
        server.stop();
        mailroom::test::run_until(
            io, [&] { return blpop_done; }, 10s);
        CHECK(blpop_ec == error::redis_unavailable);
        CHECK(blpop_ec == condition::transient);
        CHECK(logs.has("lost: "));
        CHECK(c.snapshot().state == redis::state::reconnecting);

        // Within the backoff (0.75 s at least): fails at once, no connect tried.
        const auto t0 = steady::now();
        auto r = run(io, c, {"PING"});
        CHECK(r.ec == error::redis_unavailable);
        CHECK(steady::now() - t0 < 400ms);
        CHECK(c.snapshot().connect_failures == 0);

        // After the backoff, with nobody listening: the connect fails, refused.
        std::this_thread::sleep_for(1600ms); // past the backoff
        r = run(io, c, {"PING"});
        CHECK(r.ec == error::redis_unavailable);
        CHECK(c.snapshot().connect_failures == 1);
        CHECK(logs.has("connect failed"));

        REQUIRE(server.start());
        const auto t1 = steady::now();
        CHECK(run_coro(io, ping_until_ok(c, 10s), 15s));
        CHECK(steady::now() - t1 < 8s);
        const auto s = c.snapshot();
        CHECK(s.connects == 2);
        CHECK(s.state == redis::state::connected);
        CHECK(s.pending == 0);
    }

    TEST_CASE("a connection closed while idle is re-made at once by the next request")
    {
        redis_server server;
        asio::io_context io;
        auto o = opts_for(server);
        o.reconnect_initial = 2s; // a backoff would fail the PING below
        o.reconnect_max = 4s;
        redis::client c(io.get_executor(), o);
        redis::client admin(io.get_executor(), opts_for(server));
        REQUIRE_FALSE(run(io, c, {"CLIENT", "SETNAME", "victim"}).ec);
        auto r = run(io, admin, {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
        REQUIRE(r.r.integer == 1);
        mailroom::test::run_until(
            io, [&] { return c.snapshot().state == redis::state::reconnecting; }, 5s);
        r = run(io, c, {"PING"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "PONG");
        CHECK(c.snapshot().connects == 2);
        CHECK(c.snapshot().failed == 0);
    }

    TEST_CASE("server stopped: redis_timeout for the request and those behind it; it recovers")
    {
        redis_server server;
        asio::io_context io;
        log_capture logs;
        auto o = opts_for(server);
        o.request_timeout = 300ms;
        o.reconnect_initial = 100ms;
        o.reconnect_max = 200ms;
        o.log = logs.make();
        redis::client c(io.get_executor(), o);
        REQUIRE_FALSE(run(io, c, {"PING"}).ec);

        server.pause();
        int done = 0;
        std::vector<error_code> ecs(3);
        const auto t0 = steady::now();
        steady::duration took{};
        for (int i = 0; i < 3; ++i)
            c.async_exec({"INCR", "x"}, [&, i](error_code ec, reply) {
                ecs[i] = ec;
                if (++done == 3)
                    took = steady::now() - t0;
            });
        mailroom::test::run_until(
            io, [&] { return done == 3; }, 10s);
        for (const auto& ec : ecs) {
            CHECK(ec == error::redis_timeout);
            CHECK(ec == condition::timeout);
        }
        CHECK(took >= 250ms);
        CHECK(took < 5s);
        CHECK(c.snapshot().timeouts == 3);
        CHECK(logs.has("no reply within 300 ms"));

        server.resume();
        CHECK(run_coro(io, ping_until_ok(c, 10s), 15s));
        CHECK(c.snapshot().connects >= 2);
        auto r = run(io, c, {"GET", "x"});
        CHECK_FALSE(r.ec);
    }

    TEST_CASE("the connect deadline covers AUTH: a stopped server that accepts but never answers")
    {
        redis_server server({"--requirepass", "pw"});
        asio::io_context io;
        auto o = opts_for(server, ":pw");
        o.connect_timeout = 300ms;
        o.request_timeout = 10s;
        redis::client c(io.get_executor(), o);
        server.pause(); // the kernel still completes TCP connects into the listen backlog
        const auto t0 = steady::now();
        auto r = run(io, c, {"PING"});
        CHECK(r.ec == error::redis_timeout);
        CHECK(steady::now() - t0 >= 250ms);
        CHECK(steady::now() - t0 < 5s);
        CHECK(c.snapshot().connect_failures == 1);
        server.resume();
        CHECK(run_coro(io, ping_until_ok(c, 10s), 15s));
    }

    TEST_CASE("nobody listening: redis_unavailable, then at once during the backoff")
    {
        asio::io_context io;
        redis::options o;
        o.port = free_port();
        o.reconnect_initial = 2s;
        o.reconnect_max = 4s;
        redis::client c(io.get_executor(), o);
        auto r = run(io, c, {"PING"});
        CHECK(r.ec == error::redis_unavailable);
        CHECK(c.snapshot().connect_failures == 1);
        CHECK(c.snapshot().state == redis::state::reconnecting);
        const auto t0 = steady::now();
        r = run(io, c, {"PING"});
        CHECK(r.ec == error::redis_unavailable);
        CHECK(steady::now() - t0 < 500ms);
        CHECK(c.snapshot().connect_failures == 1); // no new attempt
        CHECK(c.snapshot().failed == 2);
    }

    TEST_CASE("close() and destruction abort what is pending, and later requests")
    {
        redis_server server;
        asio::io_context io;
        int aborted = 0;
        {
            redis::client c(io.get_executor(), opts_for(server));
            REQUIRE_FALSE(run(io, c, {"PING"}).ec);
            bool done = false;
            c.async_exec({"BLPOP", "never", "0"}, [&](error_code ec, reply) {
                CHECK(ec == asio::error::operation_aborted);
                done = true;
            });
            mailroom::test::settle(io, 100ms);
            REQUIRE_FALSE(done);
            c.close();
            CHECK(c.snapshot().state == redis::state::closed);
            mailroom::test::run_until(
                io, [&] { return done; }, 5s);
            auto r = run(io, c, {"PING"});
            CHECK(r.ec == asio::error::operation_aborted);

            redis::client d(io.get_executor(), opts_for(server));
            REQUIRE_FALSE(run(io, d, {"PING"}).ec);
            d.async_exec({"BLPOP", "never", "0"}, [&](error_code ec, reply) {
                CHECK(ec == asio::error::operation_aborted);
                ++aborted;
            });
            mailroom::test::settle(io, 100ms);
        } // d destroyed with BLPOP pending
        mailroom::test::run_until(
            io, [&] { return aborted == 1; }, 5s);
    }

    TEST_CASE("io_context shutdown drops pending handlers unrun")
    {
        redis_server server;
        auto token = std::make_shared<int>(0);
        std::weak_ptr<int> watch = token;
        bool ran = false;
        {
            asio::io_context io;
            redis::client c(io.get_executor(), opts_for(server));
            REQUIRE_FALSE(run(io, c, {"PING"}).ec);
            c.async_exec({"BLPOP", "never", "0"},
                         [&ran, t = std::move(token)](error_code, reply) { ran = true; });
            mailroom::test::settle(io, 100ms);
            // The client's close() posts its work; the io_context goes without running it.
            io.stop();
        }
        CHECK_FALSE(ran);
        CHECK(watch.expired());
    }

    TEST_CASE("rediss://: verified against the test CA, by address and by name")
    {
        redis_server server({}, true);
        asio::io_context io;
        log_capture logs;
        auto o = opts_for(server);
        REQUIRE(o.tls);
        o.tls_settings.ca_file = test_pki() + "/ca.pem";
        o.log = logs.make();
        redis::client c(io.get_executor(), o);
        auto r = run(io, c, {"SET", "tls", "yes"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "OK");
        CHECK(logs.has("connected (TLS)"));

        auto named = o;
        named.tls_settings.verify_name = "localhost";
        redis::client n(io.get_executor(), named);
        r = run(io, n, {"GET", "tls"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "yes");

        // 1000 pipelined over TLS too.
        int done = 0;
        std::vector<long long> got(1000);
        for (int i = 0; i < 1000; ++i)
            n.async_exec({"INCR", "t"}, [&, i](error_code ec, reply rr) {
                got[i] = ec ? -1 : rr.integer;
                ++done;
            });
        mailroom::test::run_until(
            io, [&] { return done == 1000; }, 20s);
        for (int i = 0; i < 1000; ++i)
            REQUIRE(got[i] == i + 1);
    }

    TEST_CASE("rediss://: a server the CA didn't sign, or of another name, is refused")
    {
        redis_server server({}, true);
        asio::io_context io;
        log_capture logs;
        auto o = opts_for(server);
        o.tls_settings.ca_file = test_pki() + "/self-signed.pem"; // not the server's issuer
        o.log = logs.make();
        redis::client c(io.get_executor(), o);
        auto r = run(io, c, {"PING"});
        CHECK(r.ec == error::redis_unavailable);
        CHECK(logs.has("certificate"));
        CHECK(c.snapshot().connects == 0);

        auto wrong_name = opts_for(server);
        wrong_name.tls_settings.ca_file = test_pki() + "/ca.pem";
        wrong_name.tls_settings.verify_name = "wrong.example";
        redis::client w(io.get_executor(), wrong_name);
        r = run(io, w, {"PING"});
        CHECK(r.ec == error::redis_unavailable);

        // Unverified (tests only): the same server works.
        auto lax = o;
        lax.tls_settings.verify = false;
        redis::client l(io.get_executor(), lax);
        r = run(io, l, {"PING"});
        CHECK_FALSE(r.ec);
        CHECK(r.r.str == "PONG");

        // A CA file that isn't there.
        auto missing = opts_for(server);
        missing.tls_settings.ca_file = "/nonexistent/ca.pem";
        redis::client m(io.get_executor(), missing);
        CHECK(run(io, m, {"PING"}).ec == error::redis_unavailable);
    }

    TEST_CASE("bad options throw invalid_redis_options")
    {
        asio::io_context io;
        redis::options o;
        o.request_timeout = 0s;
        try {
            redis::client c(io.get_executor(), o);
            FAIL("no exception");
        } catch (const boost::system::system_error& e) {
            CHECK(e.code() == error::invalid_redis_options);
            CHECK(std::string(e.what()).find("request_timeout") != std::string::npos);
        }
    }
}
