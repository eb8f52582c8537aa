// Fault × stage matrix through the mailer, with retries (the habit of Beast's fail-count test
// stream): a fault (close, reset, stall, 421, garbage) is placed at every step of a send
// (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, the body, the final dot, QUIT) on the first
// connection; later connections work. Then the same steps with the caller's terminal
// cancellation instead of a fault. Each run checks, at the server:
// - no message accepted twice, and none reported delivered that the server didn't accept;
// - a fault before the final dot loses nothing: the retry delivers the message;
// - after the final dot, only `unknown` (never retried) or delivered;
// - no hang (every send completes), and once the mailer is gone no file descriptor is left
//   open and no timer or operation is left on the client's io_context.
// The server runs on its own io_context and thread, so the client's can be checked alone.

#include "fake_listener.hpp"

#include "../common/run_coro.hpp"

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <dirent.h>

#include <optional>
#include <string>
#include <thread>

using namespace mailroom;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using test::fake_listener;
using test::run_coro;
using test::script;
using test::sink_options;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

enum class stage { greeting, ehlo, starttls, auth, mail, rcpt, data, body, dot, quit };
enum class fault { close, reset, stall, busy, garbage };

const char* name(stage s)
{
    constexpr const char* names[] = {"greeting", "EHLO", "STARTTLS", "AUTH", "MAIL",
                                     "RCPT",     "DATA", "body",     ".",    "QUIT"};
    return names[static_cast<int>(s)];
}
const char* name(fault f)
{
    constexpr const char* names[] = {"close", "reset", "stall", "421", "garbage"};
    return names[static_cast<int>(f)];
}

// Open file descriptors of this process.
std::size_t open_fds()
{
    std::size_t n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (readdir(d))
            ++n;
        closedir(d);
    }
    return n;
}

asio::ssl::context server_tls()
{
    asio::ssl::context ctx(asio::ssl::context::tls_server);
    ctx.use_certificate_chain_file(test::test_pki() + "/localhost.pem");
    ctx.use_private_key_file(test::test_pki() + "/localhost.key", asio::ssl::context::pem);
    return ctx;
}

const std::string greeting = "220 fake.test ESMTP";
const std::string ehlo_auth = "250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN";
const std::string ehlo_tls = "250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS";
const sink_options working{.greeting = "", .extensions = {"PIPELINING", "8BITMIME", "AUTH PLAIN"}};

// A working connection: (STARTTLS,) AUTH PLAIN, any number of messages.
script working_connection(bool tls)
{
    script s;
    if (tls) {
        s.reply(greeting)
            .expect("EHLO")
            .reply(ehlo_tls)
            .expect("STARTTLS")
            .reply("220 2.0.0 go ahead")
            .starttls()
            .sink(working);
    } else {
        sink_options o = working;
        o.greeting = greeting;
        s.sink(o);
    }
    return s;
}

void inject(script& s, fault f, stage at)
{
    // In the body the server stops reading, so the client's writes block (the message is
    // larger than the socket buffers); anywhere else a stall reads on and never answers.
    const bool body = at == stage::body;
    switch (f) {
    case fault::close: s.close(); break;
    case fault::reset: s.reset(); break;
    case fault::stall:
        if (body)
            s.delay(5s).close();
        else
            s.hang();
        break;
    case fault::busy: s.reply("421 4.3.2 service shutting down").close(); break;
    case fault::garbage:
        s.reply("garbage \x7f not a reply");
        if (body)
            s.delay(5s).close();
        else
            s.hang();
        break;
    }
}

// The first connection: a faithful server up to `at`, where `f` happens (or, with no fault,
// where it stalls for the caller's cancellation).
script first_connection(bool tls, stage at, std::optional<fault> f)
{
    script s;
    auto here = [&](stage st) {
        if (st != at)
            return false;
        if (f)
            inject(s, *f, st);
        else
            s.hang();
        return true;
    };
    if (here(stage::greeting))
        return s;
    s.reply(greeting).expect("EHLO");
    if (here(stage::ehlo))
        return s;
    if (tls) {
        s.reply(ehlo_tls).expect("STARTTLS");
        if (here(stage::starttls))
            return s;
        s.reply("220 2.0.0 go ahead").starttls().expect("EHLO");
    }
    s.reply(ehlo_auth).expect("AUTH PLAIN");
    if (here(stage::auth))
        return s;
    s.reply("235 2.7.0 authenticated").expect("MAIL FROM");
    if (here(stage::mail))
        return s;
    s.reply("250 2.1.0 ok").expect("RCPT TO");
    if (here(stage::rcpt))
        return s;
    s.reply("250 2.1.5 ok").expect("DATA");
    if (here(stage::data))
        return s;
    s.reply("354 go ahead");
    if (here(stage::body))
        return s;
    s.data();
    if (here(stage::dot))
        return s;
    s.reply("250 2.0.0 ok: queued as Q1").expect("QUIT");
    here(stage::quit);
    return s;
}

// The server, on its own io_context and thread.
struct server {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::optional<fake_listener> listener;
    std::thread thread;

    server(fake_listener::factory make, asio::ssl::context* tls)
    {
        listener.emplace(io, std::move(make), tls);
        thread = std::thread([this] { io.run(); });
    }
    ~server()
    {
        io.stop();
        thread.join();
        listener.reset();
    }
};

mailer_options options(std::uint16_t port, bool tls, bool large = false)
{
    smtp::client_options o;
    o.host = "127.0.0.1";
    o.port = port;
    o.helo_name = "client.test";
    o.tls.mode = tls ? smtp::tls_mode::required : smtp::tls_mode::none;
    o.tls.ca_file = tls ? test::test_pki() + "/ca.pem" : "";
    o.tls.verify_name = "localhost";
    o.auth = smtp::credentials{.username = "user", .password = "secret", .allow_plaintext = !tls};
    o.timeouts.cap(500ms); // the stalls wait for it
    if (large) {
        // 24 MiB through the fake server (in this process, under sanitizers too) takes its
        // time: each write gets 2 s (the server's stall in the body is 5 s), the final reply
        // as long as the server needs to read it all.
        o.timeouts.data_block = 2s;
        o.timeouts.data_end = 30s;
    }
    provider_options p{.name = "p", .server = o, .pool = {.max_connections = 2}};
    p.pool.reconnect = {.initial = 10ms, .max = 20ms};
    return {.providers = {p},
            .retry = {.max_attempts = 3, .initial_backoff = 10ms, .max_backoff = 40ms}};
}

mime::message small_message()
{
    return mime::message_builder()
        .from("a@example.com")
        .to("b@example.org")
        .subject("fault matrix")
        .text("Hello\n.a line with a dot\n")
        .build_or_throw();
}

// Larger than the socket buffers, so that a server that stops reading blocks the writes.
mime::message large_message()
{
    std::string text;
    const std::string line(75, 'x');
    while (text.size() < (24u << 20))
        text += line + "\n";
    return mime::message_builder()
        .from("a@example.com")
        .to("b@example.org")
        .subject("fault matrix, large")
        .text(std::move(text))
        .build_or_throw();
}

using sent = std::pair<error_code, send_report>;

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
asio::awaitable<sent> send(mailer* m, mime::message msg)
{
    auto [ec, rep] = co_await m->async_send(std::move(msg), use_tuple);
    co_return sent{ec, std::move(rep)};
}

// Sends, and cancels (terminal) as soon as `reached()` says the server got that far.
template <class Pred>
asio::awaitable<sent> send_and_cancel(mailer* m, mime::message msg, Pred reached)
{
    auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal cancel;
    std::optional<sent> result;
    m->async_send(std::move(msg),
                  asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, send_report r) {
                      result.emplace(ec, std::move(r));
                  }));
    asio::steady_timer t(ex);
    bool emitted = false;
    while (!result) {
        if (!emitted && reached()) {
            cancel.emit(asio::cancellation_type::terminal);
            emitted = true;
        }
        t.expires_after(2ms);
        co_await t.async_wait(use_tuple);
    }
    CHECK(emitted);
    co_return std::move(*result);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Shuts the mailer down, destroys it, and checks that nothing of it is left on the client's
// io_context (no timer, no operation); the caller counts file descriptors once the server is
// gone too.
void finish(asio::io_context& io, std::optional<mailer>& m)
{
    std::optional<error_code> done;
    m->async_shutdown([&](error_code ec) { done = ec; });
    test::run_until(io, [&] { return done.has_value(); });
    m.reset();
    io.restart();
    io.run_for(2s);
    CHECK_MESSAGE(io.stopped(), "work left on the client's io_context");
}

// The client's io_context after one send, so that its lazily made parts (the reactor, the
// resolver's thread) don't count as left over.
void warm_up(asio::io_context& io, bool tls, asio::ssl::context* ctx)
{
    server srv([tls](std::size_t) { return working_connection(tls); }, ctx);
    std::optional<mailer> m;
    m.emplace(io.get_executor(), options(srv.listener->port(), tls));
    REQUIRE_FALSE(run_coro(io, send(&*m, small_message())).first);
    finish(io, m);
}

std::vector<stage> stages(bool tls, bool with_quit)
{
    std::vector<stage> out;
    for (int i = 0; i <= static_cast<int>(stage::quit); ++i) {
        const auto s = static_cast<stage>(i);
        if ((s == stage::starttls && !tls) || (s == stage::quit && !with_quit))
            continue;
        out.push_back(s);
    }
    return out;
}

} // namespace

TEST_SUITE("pool")
{
    TEST_CASE("fault matrix: every fault at every step of a send through the mailer")
    {
        auto tls_ctx = server_tls();
        const auto large = large_message();
        for (const bool tls : {false, true}) {
            asio::io_context io;
            warm_up(io, tls, &tls_ctx);
            for (const stage at : stages(tls, true)) {
                for (const fault f :
                     {fault::close, fault::reset, fault::stall, fault::busy, fault::garbage}) {
                    CAPTURE(tls);
                    const std::string stage_name = name(at);
                    CAPTURE(stage_name);
                    const std::string fault_name = name(f);
                    CAPTURE(fault_name);
                    const auto fds_before = open_fds();
                    const auto msg = at == stage::body ? large : small_message();
                    {
                        server srv(
                            [&](std::size_t k) {
                                return k == 0 ? first_connection(tls, at, f)
                                              : working_connection(tls);
                            },
                            &tls_ctx);
                        std::optional<mailer> m;
                        m.emplace(io.get_executor(),
                                  options(srv.listener->port(), tls, at == stage::body));
                        auto [ec, rep] = run_coro(io, send(&*m, msg));
                        finish(io, m);
                        // The first connection's script accepts the message only before QUIT.
                        const std::size_t accepted =
                            srv.listener->total_accepted() + (at == stage::quit ? 1u : 0u);
                        CAPTURE(ec.message());
                        CAPTURE(rep.delivery.diag.to_string());
                        CHECK(accepted <= 1); // never twice
                        if (!ec)
                            CHECK(accepted == 1); // delivered means the server took it
                        if (ec == condition::unknown)
                            CHECK(rep.delivery.outcome == smtp::outcome::unknown);
                        else if (ec)
                            CHECK(accepted == 0);
                        if (at < stage::dot || at == stage::quit) {
                            // Before the final dot nothing may be lost: the retry delivers.
                            CHECK_FALSE(ec);
                            CHECK(rep.delivery.outcome == smtp::outcome::delivered);
                        } else if (f == fault::busy) {
                            CHECK_FALSE(ec); // a 421 to the dot refuses it: sent again
                        } else if (f != fault::garbage) {
                            CHECK(ec == error::delivery_status_unknown);
                            CHECK(rep.attempts == 1); // an unknown outcome is never retried
                        }
                    }
                    CHECK(open_fds() == fds_before);
                }
            }
        }
    }

    TEST_CASE("fault matrix: the caller's terminal cancellation at every step")
    {
        auto tls_ctx = server_tls();
        for (const bool tls : {false, true}) {
            asio::io_context io;
            warm_up(io, tls, &tls_ctx);
            for (const stage at : stages(tls, false)) {
                if (at == stage::body)
                    continue; // no server-side sign marks "in the body" without a race
                CAPTURE(tls);
                const std::string stage_name = name(at);
                CAPTURE(stage_name);
                const auto fds_before = open_fds();
                {
                    server srv(
                        [&](std::size_t k) {
                            return k == 0 ? first_connection(tls, at, std::nullopt)
                                          : working_connection(tls);
                        },
                        &tls_ctx);
                    auto& l = *srv.listener;
                    auto reached = [&, at]() -> bool {
                        if (at == stage::greeting)
                            return l.accepted() > 0;
                        const auto logs = l.sessions();
                        if (logs.empty())
                            return false;
                        const std::string& r = logs[0].received;
                        switch (at) {
                        case stage::ehlo: return r.find("EHLO") != std::string::npos;
                        case stage::starttls: return r.find("STARTTLS") != std::string::npos;
                        case stage::auth: return r.find("AUTH PLAIN") != std::string::npos;
                        case stage::mail: return r.find("MAIL FROM") != std::string::npos;
                        case stage::rcpt: return r.find("RCPT TO") != std::string::npos;
                        case stage::data: return r.find("DATA\r\n") != std::string::npos;
                        case stage::dot: return r.find("\r\n.\r\n") != std::string::npos;
                        default: return false;
                        }
                    };
                    std::optional<mailer> m;
                    m.emplace(io.get_executor(), options(l.port(), tls));
                    auto [ec, rep] = run_coro(io, send_and_cancel(&*m, small_message(), reached));
                    CAPTURE(ec.message());
                    if (at == stage::dot) {
                        CHECK(ec == error::delivery_status_unknown);
                        CHECK(rep.delivery.outcome == smtp::outcome::unknown);
                    } else {
                        CHECK(ec == asio::error::operation_aborted);
                        CHECK(rep.delivery.outcome != smtp::outcome::delivered);
                    }
                    CHECK(rep.attempts <= 1); // no retry after a cancellation
                    CHECK(l.total_accepted() == 0);
                    finish(io, m);
                    CHECK(l.accepted() == 1); // nothing reconnected for it
                }
                CHECK(open_fds() == fds_before);
            }
        }
    }
}
