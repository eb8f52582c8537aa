// The SMTP client against a scripted peer: faults a real server won't produce on demand.

#include "fake_server.hpp"

#include "../common/run_coro.hpp"

#include <mailroom/mime/message_builder.hpp>
#include <mailroom/smtp/client.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <boost/asio/ip/udp.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <map>
#include <poll.h>

using namespace mailroom;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using test::fake_server;
using test::run_coro;
using test::script;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

smtp::client_options options(const fake_server& s, smtp::tls_mode mode = smtp::tls_mode::none)
{
    smtp::client_options o;
    o.host = "127.0.0.1";
    o.port = s.port();
    o.helo_name = "client.test";
    o.tls.mode = mode;
    o.tls.ca_file = mode == smtp::tls_mode::none ? "" : test::test_pki() + "/ca.pem";
    // Short limits: the stall tests wait for them.
    o.timeouts.cap(2s);
    return o;
}

mime::message message(std::string text = "Hello\n.leading dot\n", int rcpts = 1)
{
    mime::message_builder b;
    b.from("a@example.com").subject("test").text(std::move(text));
    for (int i = 0; i < rcpts; ++i)
        b.to("r" + std::to_string(i) + "@example.org");
    b.message_id("fixed@example.com");
    return b.build_or_throw();
}

// A server offering CHUNKING that accepts the envelope, waits for the BDAT data to arrive, and
// answers with `replies` (one per BDAT command expected).
script bdat_script(std::string replies)
{
    script s;
    s.greet({"PIPELINING", "CHUNKING"})
        .expect("MAIL")
        .expect("RCPT")
        .reply("250 ok\r\n250 ok")
        .expect("BDAT ")
        .delay(100ms)
        .reply(std::move(replies));
    return s;
}

asio::ssl::context server_tls(const std::string& name = "localhost")
{
    asio::ssl::context ctx(asio::ssl::context::tls_server);
    ctx.use_certificate_chain_file(test::test_pki() + "/" + name + ".pem");
    ctx.use_private_key_file(test::test_pki() + "/" + name + ".key", asio::ssl::context::pem);
    return ctx;
}

error_code connect(asio::io_context& io, smtp::client& c)
{
    return run_coro(io, [&]() -> asio::awaitable<error_code> {
        auto [ec] = co_await c.async_connect(use_tuple);
        co_return ec;
    }());
}

std::pair<error_code, smtp::delivery_report> send(asio::io_context& io, smtp::client& c,
                                                  mime::message m)
{
    return run_coro(io, [&]() -> asio::awaitable<std::pair<error_code, smtp::delivery_report>> {
        auto [ec, r] = co_await c.async_send(m, use_tuple);
        co_return std::pair{ec, std::move(r)};
    }());
}

// The replies of a server to a pipelined envelope of one recipient.
const std::string envelope_ok = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead";

} // namespace

TEST_SUITE("smtp.fake")
{
    TEST_CASE("a pipelined transaction: one flight for the envelope, dot-stuffed data")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 1000000"})
            .expect("MAIL FROM:<a@example.com> SIZE=")
            .expect("RCPT TO:<r0@example.org>")
            .expect("DATA")
            .reply(envelope_ok)
            .data()
            .reply("250 2.0.0 Ok: queued as 4QX1")
            .expect("QUIT")
            .reply("221 bye");
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        CHECK(c.server_capabilities().pipelining);
        auto [ec, rep] = send(io, c, message());
        CHECK_FALSE(ec);
        CHECK(rep.outcome == smtp::outcome::delivered);
        CHECK(rep.queue_id == "4QX1");
        REQUIRE(rep.final_reply);
        REQUIRE(rep.final_reply->status);
        CHECK(rep.final_reply->status->to_string() == "2.0.0");
        CHECK(srv.received().find("\r\n..leading dot\r\n") != std::string::npos);
        CHECK(run_coro(io, [&]() -> asio::awaitable<error_code> {
                  auto [e] = co_await c.async_quit(use_tuple);
                  co_return e;
              }()) == error_code{});
        CHECK_FALSE(c.is_open());
        CHECK(srv.mismatches().empty());
    }

    TEST_CASE("overlapping sends: the next envelope rides behind the final dot")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"}).expect("MAIL").expect("RCPT").expect("DATA").reply(envelope_ok);
        for (int i = 0; i < 2; ++i) {
            // The server answers the dot only after the next envelope arrived: a client that
            // waited for the answer first would stall here.
            s.data().expect("MAIL").expect("RCPT").expect("DATA");
            s.reply("250 ok " + std::to_string(i) + "\r\n" + envelope_ok);
        }
        s.data().reply("250 ok 2");
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        int done = 0;
        std::vector<error_code> codes(3);
        for (int i = 0; i < 3; ++i)
            c.async_send(message("message " + std::to_string(i)),
                         [&, i](error_code ec, smtp::delivery_report r) {
                             codes[i] = ec;
                             CHECK(r.final_reply->lines.at(0) == "ok " + std::to_string(i));
                             ++done;
                         });
        test::run_until(io, [&] { return done == 3; });
        for (auto ec : codes)
            CHECK_FALSE(ec);
        CHECK(srv.mismatches().empty());
    }

    TEST_CASE("lock-step without PIPELINING, and HELO when EHLO is refused")
    {
        asio::io_context io;
        script s;
        s.reply("220 old.test")
            .expect("EHLO client.test")
            .reply("502 what?")
            .expect("HELO client.test")
            .reply("250 hi")
            .expect("MAIL")
            .reply("250 ok")
            .expect("RCPT")
            .reply("250 ok")
            .expect("DATA")
            .reply("354 go")
            .data()
            .reply("250 done");
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message());
        CHECK_FALSE(ec);
        CHECK(rep.outcome == smtp::outcome::delivered);
        CHECK(srv.mismatches().empty());
    }

    TEST_CASE("partial rejection under pipelining is data in the report")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING", "ENHANCEDSTATUSCODES"})
            .expect("MAIL")
            .expect("RCPT TO:<r0@")
            .expect("RCPT TO:<r1@")
            .expect("DATA")
            .reply("250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go")
            .data()
            .reply("250 queued as Q7");
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message("x", 2));
        CHECK_FALSE(ec);
        CHECK(rep.outcome == smtp::outcome::partial);
        REQUIRE(rep.recipients.size() == 2);
        CHECK_FALSE(rep.recipients[0].accepted());
        CHECK(rep.recipients[0].response.code == 550);
        CHECK(rep.recipients[0].response.status->to_string() == "5.1.1");
        CHECK(rep.recipients[1].accepted());
    }

    TEST_CASE("every recipient refused: no message data is sent")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"})
            .expect("MAIL")
            .expect("RCPT")
            .expect("DATA")
            .reply("250 ok\r\n550 no\r\n554 no valid recipients")
            .expect("RSET")
            .reply("250 reset");
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message("SECRET BODY"));
        CHECK(ec == smtp::reply_code::mailbox_unavailable);
        CHECK(ec == condition::permanent);
        CHECK(rep.outcome == smtp::outcome::failed);
        CHECK(srv.received().find("SECRET BODY") == std::string::npos);
        CHECK(c.is_open());
    }

    TEST_CASE("every recipient refused but DATA accepted: the data is ended empty")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"})
            .expect("MAIL")
            .expect("RCPT")
            .expect("DATA")
            .reply("250 ok\r\n450 try later\r\n354 go")
            .expect(".")
            .reply("554 no recipients")
            .expect("RSET")
            .reply("250 reset");
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message("SECRET BODY"));
        CHECK(ec == condition::transient);
        CHECK(srv.received().find("SECRET BODY") == std::string::npos);
        CHECK(srv.mismatches().empty());
    }

    TEST_CASE("an extra reply injected under pipelining is a protocol error")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"})
            .expect("MAIL")
            .expect("RCPT")
            .expect("DATA")
            .reply("250 ok\r\n250 ok\r\n250 injected\r\n354 go")
            .hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message("SECRET BODY"));
        CHECK(ec == error::protocol_error);
        CHECK(srv.received().find("SECRET BODY") == std::string::npos);
        CHECK_FALSE(c.is_open());
    }

    TEST_CASE("greeting refused: 421 and 554")
    {
        for (const char* greeting : {"421 busy", "554 go away"}) {
            asio::io_context io;
            script s;
            s.reply(greeting).hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            const error_code ec = connect(io, c);
            CHECK(ec.category() == smtp::reply_category());
            CHECK(ec.value() == std::atoi(greeting));
            CHECK(c.last_diagnostics().field == "greeting");
            CHECK_FALSE(c.is_open());
        }
    }

    TEST_CASE("the default token throws error_with_diagnostics: the step and the reply")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"})
            .expect("MAIL")
            .expect("RCPT")
            .expect("DATA")
            .reply("550 sender refused\r\n503 no\r\n503 no")
            .hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        // Caught as the system_error it derives from, so older handlers go on working.
        auto caught = [&](auto op) {
            return run_coro(io, [&]() -> asio::awaitable<std::pair<error_code, diagnostics>> {
                try {
                    co_await op();
                } catch (const boost::system::system_error& e) {
                    const auto* d = dynamic_cast<const error_with_diagnostics*>(&e);
                    co_return std::pair{e.code(), d ? d->get_diagnostics() : diagnostics{}};
                }
                co_return std::pair{error_code{}, diagnostics{}};
            }());
        };
        REQUIRE(caught([&]() -> asio::awaitable<void> { co_await c.async_connect(); }).first ==
                error_code{});
        auto [ec, d] = caught([&]() -> asio::awaitable<void> {
            const smtp::delivery_report r = co_await c.async_send(message());
            (void)r;
        });
        CHECK(ec == smtp::reply_code(550));
        CHECK(d.field == "MAIL FROM");
        CHECK(d.detail == "550 sender refused");

        // A connect's diagnostics come from the client, as they stood at its completion.
        asio::io_context io2;
        script s2;
        s2.reply("554 go away").hang();
        fake_server srv2(io2, s2);
        smtp::client c2(io2.get_executor(), options(srv2));
        auto [ec2, d2] =
            run_coro(io2, [&]() -> asio::awaitable<std::pair<error_code, diagnostics>> {
                try {
                    co_await c2.async_connect();
                } catch (const error_with_diagnostics& e) {
                    co_return std::pair{e.code(), e.get_diagnostics()};
                }
                co_return std::pair{error_code{}, diagnostics{}};
            }());
        CHECK(ec2 == smtp::reply_code(554));
        CHECK(d2.field == "greeting");
        CHECK(d2.detail == "554 go away");
    }

    TEST_CASE("malformed and endless replies")
    {
        const std::pair<std::string, error> cases[] = {
            {"2x0 hello\r\n", error::bad_reply_code},
            {"220-first\r\n221 second\r\n", error::reply_code_mismatch},
            {"220 bare LF\n", error::protocol_error},
            {std::string(5000, '2') + "\r\n", error::reply_line_too_long},
        };
        for (const auto& [bytes, want] : cases) {
            asio::io_context io;
            script s;
            s.raw(bytes).hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            CHECK(connect(io, c) == want);
        }
        // An endless multi-line reply: bounded, not buffered forever.
        asio::io_context io;
        script s;
        std::string endless;
        for (int i = 0; i < 300; ++i)
            endless += "220-still going\r\n";
        s.raw(endless).hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        CHECK(connect(io, c) == error::reply_too_long);
    }

    TEST_CASE("stalls at each phase become that phase's timeout")
    {
        struct stall {
            script s;
            error want;
        };
        std::vector<stall> cases;
        cases.push_back({script().hang(), error::greeting_timeout});
        cases.push_back({script().reply("220 hi").expect("EHLO").hang(), error::command_timeout});
        cases.push_back({script().greet({}).expect("MAIL").hang(), error::mail_timeout});
        cases.push_back({script().greet({}).expect("MAIL").reply("250 ok").expect("RCPT").hang(),
                         error::rcpt_timeout});
        cases.push_back({script()
                             .greet({})
                             .expect("MAIL")
                             .reply("250 ok")
                             .expect("RCPT")
                             .reply("250 ok")
                             .expect("DATA")
                             .hang(),
                         error::data_timeout});
        // STARTTLS accepted, then no handshake: the TLS deadline, not the command's.
        cases.push_back({script().greet({"STARTTLS"}).expect("STARTTLS").reply("220 go").hang(),
                         error::tls_handshake_timeout});
        auto tls_ctx = server_tls();
        for (auto& st : cases) {
            asio::io_context io;
            fake_server srv(io, st.s, &tls_ctx);
            const bool tls = st.want == error::tls_handshake_timeout;
            auto o = options(srv, tls ? smtp::tls_mode::required : smtp::tls_mode::none);
            o.timeouts.cap(300ms);
            smtp::client c(io.get_executor(), o);
            error_code ec = connect(io, c);
            if (!ec)
                ec = send(io, c, message()).first;
            CHECK_MESSAGE(ec == st.want, ec.message());
            CHECK(ec == condition::timeout);
            CHECK(ec == condition::transient);
            CHECK_FALSE(c.is_open());
        }
    }

    TEST_CASE("silence or a close after the final dot: outcome unknown, never retried")
    {
        for (bool close : {false, true}) {
            asio::io_context io;
            script s;
            s.greet({"PIPELINING"}).expect("MAIL").expect("RCPT").expect("DATA");
            s.reply(envelope_ok).data();
            if (close)
                s.close();
            else
                s.hang();
            fake_server srv(io, s);
            auto o = options(srv);
            o.timeouts.cap(300ms);
            smtp::client c(io.get_executor(), o);
            REQUIRE_FALSE(connect(io, c));
            auto [ec, rep] = send(io, c, message());
            CHECK(ec == error::delivery_status_unknown);
            CHECK(rep.outcome == smtp::outcome::unknown);
            CHECK_FALSE(c.is_open());
        }
    }

    TEST_CASE("close() during a send: unknown once the final dot is written, else aborted")
    {
        for (bool after_dot : {false, true}) {
            CAPTURE(after_dot);
            asio::io_context io;
            script s;
            s.greet({"PIPELINING"}).expect("MAIL").expect("RCPT").expect("DATA");
            if (after_dot)
                s.reply(envelope_ok).data().hang();
            else
                s.hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            REQUIRE_FALSE(connect(io, c));
            std::optional<std::pair<error_code, smtp::delivery_report>> out;
            std::optional<error_code> noop;
            c.async_send(message(), [&](error_code ec, smtp::delivery_report r) {
                out.emplace(ec, std::move(r));
            });
            c.async_noop([&](error_code ec) { noop = ec; }); // queued behind it
            test::run_until(io, [&] {
                return srv.received().find(after_dot ? "\r\n.\r\n" : "DATA\r\n") !=
                       std::string::npos;
            });
            c.close();
            test::run_until(io, [&] { return out.has_value() && noop.has_value(); });
            if (after_dot) {
                CHECK(out->first == error::delivery_status_unknown);
                CHECK(out->second.outcome == smtp::outcome::unknown);
            } else {
                CHECK(out->first == asio::error::operation_aborted);
                CHECK(out->second.outcome == smtp::outcome::failed);
            }
            CHECK(*noop == asio::error::operation_aborted);
            CHECK_FALSE(c.is_open());
        }
    }

    TEST_CASE("a close after 354 with the data unsent is a lost connection or unknown")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"}).expect("MAIL").expect("RCPT").expect("DATA").reply(envelope_ok);
        s.reset();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message());
        CHECK((ec == error::delivery_status_unknown || ec == error::connection_lost));
        CHECK_FALSE(c.is_open());
    }

    TEST_CASE("421 at MAIL closes the connection; queued sends fail retryably")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"})
            .expect("MAIL")
            .expect("RCPT")
            .expect("DATA")
            .reply("421 4.3.2 shutting down\r\n503 no\r\n503 no")
            .hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        std::vector<error_code> codes;
        for (int i = 0; i < 2; ++i)
            c.async_send(message(),
                         [&](error_code ec, smtp::delivery_report) { codes.push_back(ec); });
        test::run_until(io, [&] { return codes.size() == 2; });
        CHECK(codes[0] == smtp::reply_code::service_not_available);
        CHECK(codes[0] == condition::transient);
        CHECK(codes[1] == error::connection_lost);
        CHECK_FALSE(c.is_open());
    }

    TEST_CASE("STARTTLS required: missing, refused or with injected bytes")
    {
        {
            asio::io_context io;
            script s;
            s.greet({"PIPELINING"}).hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv, smtp::tls_mode::required));
            CHECK(connect(io, c) == error::starttls_unavailable);
            CHECK(srv.received().find("MAIL") == std::string::npos);
        }
        {
            asio::io_context io;
            script s;
            s.greet({"STARTTLS"}).expect("STARTTLS").reply("454 TLS not available").hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv, smtp::tls_mode::required));
            CHECK(connect(io, c) == error::starttls_unavailable);
        }
        {
            auto ctx = server_tls();
            asio::io_context io;
            script s;
            s.greet({"STARTTLS"})
                .expect("STARTTLS")
                .reply("220 go\r\n250-injected\r\n250 AUTH PLAIN");
            s.hang();
            fake_server srv(io, s, &ctx);
            smtp::client c(io.get_executor(), options(srv, smtp::tls_mode::required));
            CHECK(connect(io, c) == error::starttls_injection);
            CHECK_FALSE(c.is_secure());
        }
    }

    TEST_CASE("STARTTLS: capabilities are learned again after the handshake")
    {
        auto ctx = server_tls();
        asio::io_context io;
        script s;
        s.greet({"STARTTLS", "SIZE 10"}).expect("STARTTLS").reply("220 go").starttls();
        s.expect("EHLO").reply("250-fake.test\r\n250 PIPELINING");
        fake_server srv(io, s, &ctx);
        smtp::client c(io.get_executor(), options(srv, smtp::tls_mode::required));
        REQUIRE_FALSE(connect(io, c));
        CHECK(c.is_secure());
        CHECK(c.server_capabilities().pipelining);
        CHECK_FALSE(c.server_capabilities().size);
        CHECK_FALSE(c.server_capabilities().starttls);
    }

    TEST_CASE("certificates: wrong name, self-signed and expired are rejected")
    {
        for (const char* cert : {"wrong-name", "self-signed", "expired"}) {
            auto ctx = server_tls(cert);
            asio::io_context io;
            script s;
            s.greet({"STARTTLS"}).expect("STARTTLS").reply("220 go").starttls().hang();
            fake_server srv(io, s, &ctx);
            smtp::client c(io.get_executor(), options(srv, smtp::tls_mode::required));
            const error_code ec = connect(io, c);
            CHECK_MESSAGE(ec == error::certificate_rejected, cert << ": " << ec.message());
            CHECK(srv.received().find("EHLO", 10) == std::string::npos);
        }
    }

    TEST_CASE("implicit TLS, then a trusted session")
    {
        auto ctx = server_tls();
        asio::io_context io;
        script s;
        s.greet({"AUTH PLAIN"});
        fake_server srv(io, s, &ctx, true);
        smtp::client c(io.get_executor(), options(srv, smtp::tls_mode::implicit));
        REQUIRE_FALSE(connect(io, c));
        CHECK(c.is_secure());
    }

    TEST_CASE("AUTH refused: 535 and 454; no credentials without TLS")
    {
        for (const char* refusal : {"535 5.7.8 bad credentials", "454 4.7.0 try later"}) {
            asio::io_context io;
            script s;
            s.greet({"AUTH PLAIN LOGIN"}).expect("AUTH PLAIN").reply(refusal).hang();
            fake_server srv(io, s);
            auto o = options(srv);
            o.auth = smtp::credentials{"user", "secret", {}, {}, true};
            smtp::client c(io.get_executor(), o);
            const error_code ec = connect(io, c);
            CHECK(ec.category() == smtp::reply_category());
            CHECK(ec.value() == std::atoi(refusal));
            CHECK(c.last_diagnostics().field.starts_with("AUTH"));
        }
        asio::io_context io;
        script s;
        s.greet({"AUTH PLAIN LOGIN"}).hang();
        fake_server srv(io, s);
        auto o = options(srv);
        o.auth = smtp::credentials{"user", "secret", {}, {}, false};
        smtp::client c(io.get_executor(), o);
        CHECK(connect(io, c) == error::plaintext_auth_refused);
        CHECK(srv.received().find("AUTH") == std::string::npos);
    }

    TEST_CASE("transcript logging never shows AUTH payloads")
    {
        asio::io_context io;
        script s;
        s.greet({"AUTH LOGIN"})
            .expect("AUTH LOGIN")
            .reply("334 VXNlcm5hbWU6")
            .expect("")
            .reply("334 UGFzc3dvcmQ6")
            .expect("")
            .reply("235 ok");
        fake_server srv(io, s);
        auto o = options(srv);
        o.auth = smtp::credentials{"user", "hunter2-secret", {}, {}, true};
        std::string log;
        o.log.level = log_level::trace;
        o.log.sink = [&](log_level, std::string_view line) {
            (log += line) += '\n';
        };
        smtp::client c(io.get_executor(), o);
        REQUIRE_FALSE(connect(io, c));
        CHECK(c.authenticated_with() == smtp::auth_mechanism::login);
        CHECK(log.find("S: 235 ok") != std::string::npos);
        CHECK(log.find("hunter2") == std::string::npos);
        CHECK(log.find("aHVudGVyMi1zZWNyZXQ=") == std::string::npos); // base64 of it
        CHECK(log.find("dXNlcg==") == std::string::npos);
    }

    TEST_CASE("a reset instead of an answer to QUIT is fine")
    {
        asio::io_context io;
        script s;
        s.greet({}).expect("QUIT").reset();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        CHECK(run_coro(io, [&]() -> asio::awaitable<error_code> {
                  auto [e] = co_await c.async_quit(use_tuple);
                  co_return e;
              }()) == error_code{});
    }

    TEST_CASE("cancelling a send: queued ones are removed, a running one closes")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"}).expect("MAIL").hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        asio::cancellation_signal first, second;
        std::vector<std::pair<int, error_code>> done;
        c.async_send(message(), asio::bind_cancellation_slot(
                                    first.slot(), [&](error_code ec, smtp::delivery_report) {
                                        done.emplace_back(1, ec);
                                    }));
        c.async_send(message(), asio::bind_cancellation_slot(
                                    second.slot(), [&](error_code ec, smtp::delivery_report) {
                                        done.emplace_back(2, ec);
                                    }));
        test::settle(io);
        second.emit(asio::cancellation_type::terminal);
        test::settle(io);
        REQUIRE(done.size() == 1);
        CHECK(done[0] == std::pair{2, error_code(asio::error::operation_aborted)});
        CHECK(c.is_open());
        first.emit(asio::cancellation_type::terminal);
        test::settle(io);
        REQUIRE(done.size() == 2);
        CHECK(done[1] == std::pair{1, error_code(asio::error::operation_aborted)});
        CHECK_FALSE(c.is_open());
    }

    TEST_CASE("partial and total cancellation: a queued send leaves, a running one goes on")
    {
        for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
            CAPTURE(static_cast<int>(type));
            asio::io_context io;
            script s;
            s.greet({"PIPELINING"})
                .expect("MAIL")
                .expect("RCPT")
                .expect("DATA")
                .delay(300ms) // the signals arrive while the first send waits here
                .reply(envelope_ok)
                .data()
                .reply("250 ok")
                .hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            REQUIRE_FALSE(connect(io, c));
            asio::cancellation_signal first, second;
            std::vector<std::pair<int, error_code>> done;
            std::optional<smtp::delivery_report> first_report;
            c.async_send(message(), asio::bind_cancellation_slot(
                                        first.slot(), [&](error_code ec, smtp::delivery_report r) {
                                            done.emplace_back(1, ec);
                                            first_report = std::move(r);
                                        }));
            c.async_send(message(), asio::bind_cancellation_slot(
                                        second.slot(), [&](error_code ec, smtp::delivery_report) {
                                            done.emplace_back(2, ec);
                                        }));
            test::settle(io); // the first send has begun; the second is only queued
            first.emit(type);
            second.emit(type);
            test::settle(io);
            REQUIRE(done.size() >= 1);
            CHECK(done[0] == std::pair{2, error_code(asio::error::operation_aborted)});
            for (int i = 0; i < 100 && done.size() < 2; ++i)
                test::settle(io);
            REQUIRE(done.size() == 2);
            CHECK(done[1] == std::pair{1, error_code{}});
            REQUIRE(first_report);
            CHECK(first_report->outcome == smtp::outcome::delivered);
            CHECK(c.is_open());
        }
    }

    TEST_CASE("a CA file that can't be loaded: permanent, and nothing is connected")
    {
        asio::io_context io;
        script s;
        s.greet({"STARTTLS"});
        fake_server srv(io, s);
        const std::string bad = std::string(MAILROOM_SOURCE_DIR) + "/README.md";
        for (auto mode : {smtp::tls_mode::required, smtp::tls_mode::implicit}) {
            auto o = options(srv, mode);
            o.tls.ca_file = bad;
            smtp::client c(io.get_executor(), o);
            const error_code ec = connect(io, c);
            CHECK(ec == error::tls_configuration_invalid);
            CHECK(ec == condition::permanent);
            CHECK_FALSE(ec == condition::transient);
            CHECK(c.last_diagnostics().field == "TLS set-up");
        }
        CHECK(srv.received().empty());
    }

    TEST_CASE("SIZE, SMTPUTF8 and 8BITMIME needs are checked before anything is sent")
    {
        asio::io_context io;
        script s;
        s.greet({"SIZE 2000"}).hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        CHECK(send(io, c, message(std::string(5000, 'x'))).first == error::size_exceeded);
        mime::message_builder b;
        b.from("a@example.com").to("用户@例子.广告").text("x");
        CHECK(send(io, c, b.build_or_throw()).first == error::smtputf8_unavailable);
        mime::message_builder b8;
        b8.from("a@example.com").to("b@example.com").text("Grüße");
        b8.mode(mime::transfer_mode::eight_bit);
        CHECK(send(io, c, b8.build_or_throw()).first == error::eight_bit_unavailable);
        CHECK(srv.received().find("MAIL") == std::string::npos);
        CHECK(c.is_open());
    }

    TEST_CASE("BDAT when CHUNKING is offered")
    {
        asio::io_context io;
        fake_server srv(io, bdat_script("250 2.0.0 queued as B1"));
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, message("line\n.dot\n"));
        CHECK_FALSE(ec);
        CHECK(rep.queue_id == "B1");
        // BDAT carries the message as it is: no dot-stuffing, no terminator.
        CHECK(srv.received().find("\r\n.dot\r\n") != std::string::npos);
        CHECK(srv.received().find(" LAST\r\n") != std::string::npos);
        CHECK(srv.received().find("\r\n.\r\n") == std::string::npos);
    }

    TEST_CASE("a message over 64 KiB goes in BDAT chunks of about 64 KiB, the last with LAST")
    {
        std::string text;
        while (text.size() < 100'000)
            text += "a line of a long message body, seventy-odd characters long, to fill it\n";
        const auto m = message(text);
        asio::io_context io;
        // One reply per BDAT: the client must read both, and the second is the outcome.
        fake_server srv(io, bdat_script("250 2.0.0 chunk\r\n250 2.0.0 queued as B2"));
        smtp::client c(io.get_executor(), options(srv));
        REQUIRE_FALSE(connect(io, c));
        auto [ec, rep] = send(io, c, m);
        CHECK_FALSE(ec);
        CHECK(rep.queue_id == "B2");
        const std::string& got = srv.received();
        const auto first = got.find("BDAT ");
        REQUIRE(first != std::string::npos);
        const auto size1 = std::stoul(got.substr(first + 5));
        CHECK(size1 >= 64 * 1024);
        CHECK(size1 < m.size());
        CHECK(got.substr(first, got.find("\r\n", first) - first) ==
              "BDAT " + std::to_string(size1)); // not LAST: the rest follows
    }
}

TEST_SUITE("smtp.fake")
{
    TEST_CASE("DSN parameters where the server offers DSN, none where it doesn't")
    {
        smtp::send_options so;
        so.dsn.ret = smtp::dsn_options::return_content::headers;
        so.dsn.envid = "batch+42";
        so.dsn.notify_failure = true;
        so.dsn.notify_delay = true;
        so.dsn.original_recipient = true;
        for (bool offered : {true, false}) {
            asio::io_context io;
            script s;
            s.greet(offered ? std::vector<std::string>{"PIPELINING", "DSN"}
                            : std::vector<std::string>{"PIPELINING"});
            if (offered) {
                s.expect("MAIL FROM:<a@example.com> RET=HDRS ENVID=batch+2B42")
                    .expect("RCPT TO:<r0@example.org> NOTIFY=FAILURE,DELAY "
                            "ORCPT=rfc822;r0@example.org");
            } else {
                s.expect("MAIL FROM:<a@example.com>\r").expect("RCPT TO:<r0@example.org>\r");
            }
            s.expect("DATA").reply(envelope_ok).data().reply("250 ok");
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            REQUIRE_FALSE(connect(io, c));
            auto [ec, rep] = run_coro(
                io, [&]() -> asio::awaitable<std::pair<error_code, smtp::delivery_report>> {
                    auto [e, r] = co_await c.async_send(message(), so, use_tuple);
                    co_return std::pair{e, std::move(r)};
                }());
            CHECK_FALSE(ec);
            CHECK(srv.mismatches().empty());
        }
    }
}

TEST_SUITE("smtp.fake")
{
    TEST_CASE("destroying the client completes outstanding sends with operation_aborted")
    {
        asio::io_context io;
        script s;
        s.greet({"PIPELINING"}).hang();
        fake_server srv(io, s);
        std::vector<error_code> codes;
        {
            smtp::client c(io.get_executor(), options(srv));
            REQUIRE_FALSE(connect(io, c));
            for (int i = 0; i < 3; ++i)
                c.async_send(message(),
                             [&](error_code ec, smtp::delivery_report) { codes.push_back(ec); });
        }
        test::settle(io, 200ms);
        REQUIRE(codes.size() == 3);
        for (auto ec : codes)
            CHECK(ec == asio::error::operation_aborted);
    }
}

// ---- reply codes judged by their first digit; TLS kept for credentials --------------------

TEST_SUITE("smtp.fake")
{
    TEST_CASE("a 454 to AUTH is transient, a 535 permanent (RFC 4954 §6)")
    {
        for (const char* refusal : {"454 4.7.0 try later", "471 later", "535 5.7.8 no"}) {
            CAPTURE(refusal);
            asio::io_context io;
            script s;
            s.greet({"AUTH PLAIN"}).expect("AUTH PLAIN").reply(refusal).hang();
            fake_server srv(io, s);
            auto o = options(srv);
            o.auth = smtp::credentials{"user", "secret", {}, {}, true};
            smtp::client c(io.get_executor(), o);
            const error_code ec = connect(io, c);
            CHECK(ec.value() == std::atoi(refusal));
            if (refusal[0] == '4') {
                CHECK(ec == condition::transient);
            } else {
                CHECK(ec == condition::permanent);
                CHECK_FALSE(ec == condition::transient);
            }
        }
    }

    TEST_CASE("a code the client doesn't know is judged by its first digit")
    {
        struct row {
            const char* mail_reply;
            int code;
            condition cond;
        };
        for (const row& r : {row{"471 4.7.1 slow down", 471, condition::transient},
                             row{"559 5.9.9 not here", 559, condition::permanent},
                             row{"554 5.7.1 no", 554, condition::permanent}}) {
            CAPTURE(r.mail_reply);
            asio::io_context io;
            script s;
            s.greet({"ENHANCEDSTATUSCODES"})
                .expect("MAIL FROM")
                .reply(r.mail_reply)
                .expect("RSET")
                .reply("250 ok")
                .hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            REQUIRE_FALSE(connect(io, c));
            auto [ec, rep] = send(io, c, message());
            CHECK(ec.category() == smtp::reply_category());
            CHECK(ec.value() == r.code);
            CHECK(ec == r.cond);
            CHECK(rep.outcome == smtp::outcome::failed);
            CHECK(c.is_open()); // a refusal, not a protocol violation
        }
    }

    TEST_CASE("NOOP: another 2yz is fine, an unknown 4yz transient, a 3yz out of step")
    {
        struct row {
            const char* reply;
            error_code want;
            bool open_after;
        };
        for (const row& r :
             {row{"252 fine", {}, true}, row{"471 later", smtp::reply_code(471), true},
              row{"354 what", make_error_code(error::protocol_error), false}}) {
            CAPTURE(r.reply);
            asio::io_context io;
            script s;
            s.greet().expect("NOOP").reply(r.reply).hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), options(srv));
            REQUIRE_FALSE(connect(io, c));
            const error_code ec = run_coro(io, [&]() -> asio::awaitable<error_code> {
                auto [e] = co_await c.async_noop(use_tuple);
                co_return e;
            }());
            CHECK(ec == r.want);
            CHECK(c.is_open() == r.open_after);
        }
    }

    TEST_CASE("opportunistic TLS stripped: credentials kept back, starttls_unavailable")
    {
        asio::io_context io;
        script s;
        s.greet({"AUTH PLAIN LOGIN"}).hang(); // no STARTTLS offered
        fake_server srv(io, s);
        auto o = options(srv, smtp::tls_mode::opportunistic);
        o.auth = smtp::credentials{"user", "secret", {}, {}, false};
        smtp::client c(io.get_executor(), o);
        const error_code ec = connect(io, c);
        CHECK(ec == error::starttls_unavailable);
        CHECK(ec == condition::transient); // an attacker can't make the message bounce
        CHECK(srv.received().find("AUTH") == std::string::npos);
        CHECK(srv.received().find("secret") == std::string::npos);
    }
}

// ---- DNS inside the connect deadline, and Happy Eyeballs ---------------------------------

namespace {

// A name server on 127.0.0.1:0 (UDP): answers A and AAAA queries for the names it knows,
// NXDOMAIN for others; or, `silent`, swallows every query (a resolver that never answers).
class fake_dns {
public:
    using names = std::map<std::string, std::vector<asio::ip::address>>;

    fake_dns(asio::io_context& io, names n, bool silent = false)
        : sock_(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , names_(std::move(n))
        , silent_(silent)
    {
        receive();
    }
    std::string servers() const
    {
        return "127.0.0.1:" + std::to_string(sock_.local_endpoint().port());
    }
    std::size_t queries() const { return queries_; }

private:
    void receive()
    {
        sock_.async_receive_from(asio::buffer(buf_), from_, [this](error_code ec, std::size_t n) {
            if (ec)
                return;
            ++queries_;
            if (!silent_)
                answer(n);
            receive();
        });
    }

    // RFC 1035 §4.1: header, the question as asked, then one record per address of the type.
    void answer(std::size_t n)
    {
        if (n < 17)
            return;
        std::size_t pos = 12;
        std::string name;
        while (pos < n && buf_[pos] != 0) {
            const std::size_t len = buf_[pos];
            if (len > 63 || pos + 1 + len >= n)
                return;
            if (!name.empty())
                name += '.';
            for (std::size_t i = 0; i < len; ++i)
                name += static_cast<char>(std::tolower(buf_[pos + 1 + i]));
            pos += len + 1;
        }
        if (pos + 5 > n)
            return;
        const int qtype = buf_[pos + 1] << 8 | buf_[pos + 2];
        pos += 5;
        std::string out(reinterpret_cast<const char*>(buf_.data()), pos);
        out[2] = static_cast<char>(0x81); // QR, RD
        out[3] = static_cast<char>(0x80); // RA, NOERROR
        out[6] = out[7] = out[8] = out[9] = out[10] = out[11] = 0;
        const auto it = names_.find(name);
        if (it == names_.end()) {
            out[3] = static_cast<char>(0x83); // NXDOMAIN
        } else {
            int count = 0;
            for (const auto& a : it->second) {
                if ((qtype == 1 && !a.is_v4()) || (qtype == 28 && !a.is_v6()) ||
                    (qtype != 1 && qtype != 28))
                    continue;
                out += std::string("\xc0\x0c\x00", 3) + static_cast<char>(qtype);
                out += std::string("\x00\x01\x00\x00\x00\x3c\x00", 7);
                if (a.is_v4()) {
                    const auto b = a.to_v4().to_bytes();
                    out += static_cast<char>(4);
                    out.append(reinterpret_cast<const char*>(b.data()), b.size());
                } else {
                    const auto b = a.to_v6().to_bytes();
                    out += static_cast<char>(16);
                    out.append(reinterpret_cast<const char*>(b.data()), b.size());
                }
                ++count;
            }
            out[7] = static_cast<char>(count);
        }
        error_code ignored;
        sock_.send_to(asio::buffer(out), from_, 0, ignored);
    }

    asio::ip::udp::socket sock_;
    std::array<unsigned char, 512> buf_{};
    asio::ip::udp::endpoint from_;
    names names_;
    bool silent_;
    std::size_t queries_ = 0;
};

std::size_t entries(const char* dir)
{
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
        ++n;
    return n;
}

smtp::client_options dns_options(const std::string& host, std::uint16_t port, const fake_dns& dns)
{
    smtp::client_options o;
    o.host = host;
    o.port = port;
    o.helo_name = "client.test";
    o.tls.mode = smtp::tls_mode::none;
    o.dns_servers = dns.servers();
    o.timeouts.cap(5s);
    return o;
}

asio::ip::address addr(const char* s)
{
    return asio::ip::make_address(s);
}

} // namespace

TEST_SUITE("smtp.fake.dns")
{
    TEST_CASE("a name server that never answers: connect_timeout, nothing left open")
    {
        asio::io_context io;
        fake_dns dns(io, {}, true);
        const std::size_t fds = entries("/proc/self/fd");
        const std::size_t threads = entries("/proc/self/task");
        {
            auto o = dns_options("mx.mailroom.test", 25, dns);
            o.timeouts.connect = 500ms; // resolution and connect together
            smtp::client c(io.get_executor(), o);
            const error_code ec = connect(io, c);
            CHECK(ec == error::connect_timeout);
            CHECK(ec == condition::transient);
            CHECK(c.last_diagnostics().field == "resolving mx.mailroom.test");
            CHECK(dns.queries() >= 1);
            CHECK_FALSE(c.is_open());
        }
        test::settle(io, 100ms);
        CHECK(entries("/proc/self/fd") == fds);       // c-ares's sockets closed
        CHECK(entries("/proc/self/task") == threads); // and no thread left behind
    }

    TEST_CASE("a name from DNS connects; an unknown one is host_not_found, transient")
    {
        asio::io_context io;
        fake_dns dns(io, {{"mx.mailroom.test", {addr("127.0.0.1")}}});
        script s;
        s.greet().hang();
        fake_server srv(io, s);
        smtp::client c(io.get_executor(), dns_options("MX.mailroom.test", srv.port(), dns));
        CHECK_FALSE(connect(io, c));
        CHECK(c.is_open());
        CHECK(dns.queries() >= 1);

        smtp::client d(io.get_executor(), dns_options("nx.mailroom.test", srv.port(), dns));
        const error_code ec = connect(io, d);
        CHECK(ec == asio::error::host_not_found);
        CHECK(ec == condition::transient);
        CHECK(d.last_diagnostics().field == "resolving nx.mailroom.test");
    }

    TEST_CASE("IP literals and localhost never ask DNS")
    {
        asio::io_context io;
        fake_dns dns(io, {}, true);
        for (const char* host : {"127.0.0.1", "localhost"}) {
            CAPTURE(host);
            script s;
            s.greet().hang();
            fake_server srv(io, s);
            smtp::client c(io.get_executor(), dns_options(host, srv.port(), dns));
            CHECK_FALSE(connect(io, c));
        }
        CHECK(dns.queries() == 0);
    }

    TEST_CASE("close() and cancellation stop a lookup at once")
    {
        asio::io_context io;
        fake_dns dns(io, {}, true);
        const std::size_t fds = entries("/proc/self/fd");
        {
            auto o = dns_options("mx.mailroom.test", 25, dns);
            o.timeouts.connect = 30s;
            smtp::client c(io.get_executor(), o);
            std::optional<error_code> got;
            c.async_connect([&](error_code ec) { got = ec; });
            test::run_until(io, [&] { return dns.queries() >= 1; });
            c.close();
            test::run_until(
                io, [&] { return got.has_value(); }, 5s);
            CHECK(*got == asio::error::operation_aborted);

            asio::cancellation_signal sig;
            got.reset();
            const std::size_t before = dns.queries();
            c.async_connect(
                asio::bind_cancellation_slot(sig.slot(), [&](error_code ec) { got = ec; }));
            test::run_until(io, [&] { return dns.queries() > before; });
            sig.emit(asio::cancellation_type::terminal);
            test::run_until(
                io, [&] { return got.has_value(); }, 5s);
            CHECK(*got == asio::error::operation_aborted);
        }
        test::settle(io, 100ms);
        CHECK(entries("/proc/self/fd") == fds);
    }

    TEST_CASE("Happy Eyeballs: IPv6 refused, IPv4 connects")
    {
        asio::io_context io;
        script s;
        s.greet().hang();
        fake_server srv(io, s); // 127.0.0.1 only: nothing listens on [::1] at this port
        fake_dns dns(io, {{"dual.mailroom.test", {addr("::1"), addr("127.0.0.1")}}});
        std::vector<std::string> lines;
        auto o = dns_options("dual.mailroom.test", srv.port(), dns);
        o.log = logger{log_level::debug, [&](log_level, std::string_view l) {
                           lines.emplace_back(l);
                       }};
        smtp::client c(io.get_executor(), o);
        CHECK_FALSE(connect(io, c));
        const std::string want = "connected to 127.0.0.1:" + std::to_string(srv.port());
        CHECK(std::any_of(lines.begin(), lines.end(),
                          [&](const std::string& l) { return l.ends_with(want); }));
    }

    TEST_CASE("Happy Eyeballs: IPv6 silent, IPv4 started 250 ms later wins")
    {
        asio::io_context io;
        script s;
        s.greet().hang();
        fake_server srv(io, s);
        // [::1]:port, a listener whose backlog is full: a SYN to it is dropped and a connect
        // hangs, as with a black-holed route.
        const int l = ::socket(AF_INET6, SOCK_STREAM, 0);
        REQUIRE(l >= 0);
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        sa.sin6_addr = in6addr_loopback;
        sa.sin6_port = htons(srv.port());
        REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(l, 0) == 0);
        std::vector<int> fillers;
        auto stuck = [&] {
            const int f = ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
            fillers.push_back(f);
            ::connect(f, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
            pollfd p{f, POLLOUT, 0};
            return ::poll(&p, 1, 200) == 0; // still connecting
        };
        bool hangs = false;
        for (int i = 0; i < 4 && !hangs; ++i)
            hangs = stuck();
        REQUIRE_MESSAGE(hangs, "a full backlog did not make connects hang");

        fake_dns dns(io, {{"dual.mailroom.test", {addr("::1"), addr("127.0.0.1")}}});
        std::vector<std::string> lines;
        auto o = dns_options("dual.mailroom.test", srv.port(), dns);
        o.timeouts.connect = 5s; // one address after the other would use it all on [::1]
        o.log = logger{log_level::debug, [&](log_level, std::string_view line) {
                           lines.emplace_back(line);
                       }};
        smtp::client c(io.get_executor(), o);
        CHECK_FALSE(connect(io, c));
        // IPv6 was tried first (RFC 6724 order, RFC 8305 interleaving), so IPv4 won the race.
        CHECK(std::any_of(lines.begin(), lines.end(), [](const std::string& line) {
            return line.ends_with("resolved dual.mailroom.test: ::1, 127.0.0.1");
        }));
        const std::string want = "connected to 127.0.0.1:" + std::to_string(srv.port());
        CHECK(std::any_of(lines.begin(), lines.end(),
                          [&](const std::string& line) { return line.ends_with(want); }));
        for (int f : fillers)
            ::close(f);
        ::close(l);
    }
}
