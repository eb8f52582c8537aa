// The SMTP session algos without sockets: table tests of connect and send against scripted
// replies, the log they write, and a fail-at-every-step sweep (after Boost.MySQL's
// algo_test::check_network_errors and Beast's fail-count stream): every action of a
// transaction is failed in turn with each kind of failure, and the result must name that
// failure, nothing may be asked for after it, and `unknown` must be reported exactly when the
// write holding the final dot had begun.

#include "smtp/connect_algo.hpp"
#include "smtp/send_algo.hpp"

#include "smtp/reply_parser.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <mailroom/auth/token_source.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <deque>
#include <string>
#include <vector>

using namespace mailroom;
using namespace mailroom::smtp;
using namespace mailroom::smtp::detail;
using kind = action::kind;

namespace {

const error_code aborted = boost::asio::error::operation_aborted;

// The peer: replies as the server sends them, and everything the client wrote.
struct script {
    // Raw server text per read. Bytes after the first reply of an entry stay "buffered", as
    // when the server sent more than was asked for.
    std::deque<std::string> replies;
    std::string written;
    std::vector<action> steps; // every action asked for, done excluded
    std::size_t handshakes = 0;

    // Failure injection: the action numbered `fail_at` completes with `fail_with`.
    std::optional<std::size_t> fail_at;
    error_code fail_with;
    bool cancel_first = false; // terminal cancellation just before the failure (send only)
    bool failed = false;
    bool asked_after_failure = false;
    // Access tokens handed out for get_token, in order.
    std::deque<std::string> tokens;
};

template <class Algo> action run(Algo& a, script& s)
{
    io_result r;
    for (std::size_t n = 0;; ++n) {
        const action x = a.resume(r);
        r = {};
        if (x.k == kind::done)
            return x;
        if (s.failed)
            s.asked_after_failure = true;
        REQUIRE(n < 10000);
        s.steps.push_back(x);
        if (s.fail_at && *s.fail_at == n) {
            if constexpr (requires { a.cancel(); })
                if (s.cancel_first)
                    a.cancel();
            s.failed = true;
            r.ec = s.fail_with;
            continue;
        }
        switch (x.k) {
        case kind::write: s.written.append(x.bytes); break;
        case kind::handshake: ++s.handshakes; break;
        case kind::token:
            REQUIRE_MESSAGE(!s.tokens.empty(), "the client asks for a token never scripted");
            r.token = s.tokens.front();
            s.tokens.pop_front();
            break;
        case kind::read: {
            REQUIRE_MESSAGE(!s.replies.empty(), "the client waits for a reply never scripted");
            const std::string text = s.replies.front();
            s.replies.pop_front();
            reply_parser p;
            error_code ec;
            const std::size_t used = p.feed(text, ec);
            REQUIRE(!ec);
            REQUIRE(p.has_reply());
            *x.into = p.take();
            r.more_buffered = used < text.size();
            break;
        }
        case kind::done: break;
        }
    }
}

std::vector<std::string> captured;

logger capture_log()
{
    captured.clear();
    return logger{log_level::trace, [](log_level, std::string_view line) {
                      captured.emplace_back(line);
                  }};
}

mime::message message(std::vector<std::string> rcpts,
                      std::string body = "Subject: hi\r\n\r\nhello\r\n")
{
    envelope env;
    env.from = *address::parse("from@example.com");
    for (auto& r : rcpts)
        env.recipients.push_back(*address::parse(r));
    return mime::message::from_bytes(std::move(body), std::move(env), "<id@example.com>");
}

capabilities caps(bool pipelining, bool chunking)
{
    capabilities c;
    c.pipelining = pipelining;
    c.chunking = chunking;
    return c;
}

// One send, as the client would run it.
struct send_case {
    mime::message msg = message({"to@example.com"});
    send_options options{};
    session_state session{};
    logger log{};
    session_log slog{};
    std::string out;
    delivery_report report;

    send_case(bool pipelining, bool chunking, mime::message m = message({"to@example.com"}))
        : msg(std::move(m))
    {
        session.caps = caps(pipelining, chunking);
        slog.log = &log;
        slog.prefix = "smtp[test#1]";
    }
    send_algo algo(bool envelope_sent = false, const next_envelope_fn* next = nullptr)
    {
        return send_algo({.msg = msg,
                          .options = options,
                          .session = session,
                          .envelope_sent = envelope_sent,
                          .log = slog,
                          .out = out,
                          .next_envelope = next},
                         report);
    }
};

struct send_row {
    const char* name;
    bool pipelining, chunking;
    std::vector<std::string> rcpts;
    std::vector<std::string> replies;
    std::string wire; // what the client writes, in full
    error_code ec;    // the result
    outcome out;      // the report's outcome
    bool close;       // the connection must be closed
};

const error_code ok{};

} // namespace

TEST_SUITE("smtp.send_algo")
{
    TEST_CASE("table: one transaction per row, bytes, result, outcome and connection")
    {
        const std::string env1 = "MAIL FROM:<from@example.com>\r\nRCPT TO:<to@example.com>\r\n";
        const std::string env2 = "MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.com>\r\n"
                                 "RCPT TO:<b@example.com>\r\n";
        const std::string data = "Subject: hi\r\n\r\nhello\r\n.\r\n";
        const std::string bdat = "BDAT 22 LAST\r\nSubject: hi\r\n\r\nhello\r\n";
        const std::vector<send_row> rows = {
            {"pipelined DATA",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 2.0.0 queued as ABC123\r\n"},
             env1 + "DATA\r\n" + data,
             ok,
             outcome::delivered,
             false},
            {"lock-step DATA",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"},
             env1 + "DATA\r\n" + data,
             ok,
             outcome::delivered,
             false},
            {"pipelined BDAT",
             true,
             true,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "250 ok\r\n"},
             env1 + bdat,
             ok,
             outcome::delivered,
             false},
            {"one recipient refused: partial",
             true,
             false,
             {"a@example.com", "b@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "550 no such user\r\n", "354 go\r\n", "250 ok\r\n"},
             env2 + "DATA\r\n" + data,
             ok,
             outcome::partial,
             false},
            {"MAIL refused: no transaction, nothing to reset",
             false,
             false,
             {"to@example.com"},
             {"550 sender refused\r\n"},
             "MAIL FROM:<from@example.com>\r\n",
             reply_code(550),
             outcome::failed,
             false},
            {"every recipient refused, lock-step: no DATA, RSET",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "550 no\r\n", "250 reset\r\n"},
             env1 + "RSET\r\n",
             reply_code(550),
             outcome::failed,
             false},
            {"every recipient refused, pipelined: empty data, RSET",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "550 no\r\n", "354 go\r\n", "554 no valid recipients\r\n",
              "250 reset\r\n"},
             env1 + "DATA\r\n.\r\nRSET\r\n",
             reply_code(550),
             outcome::failed,
             false},
            {"RSET refused after a refusal: closed",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "550 no\r\n", "500 what\r\n"},
             env1 + "RSET\r\n",
             reply_code(550),
             outcome::failed,
             true},
            {"421 to RCPT: the server's answer, closed",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "421 closing\r\n", "503 no\r\n"},
             env1 + "DATA\r\n",
             reply_code(421),
             outcome::failed,
             true},
            {"out-of-step replies: protocol error, closed",
             true,
             false,
             {"to@example.com"},
             {"354 go\r\n", "250 ok\r\n", "354 go\r\n"},
             env1 + "DATA\r\n",
             make_error_code(error::protocol_error),
             outcome::failed,
             true},
            {"final reply refused: failed, connection kept",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "552 too big\r\n"},
             env1 + "DATA\r\n" + data,
             reply_code(552),
             outcome::failed,
             false},
            {"final 421: failed, closed",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "421 bye\r\n"},
             env1 + "DATA\r\n" + data,
             reply_code(421),
             outcome::failed,
             true},
            // RFC 5321 §4.2.1, §4.3.2: a code the client doesn't know is judged by its first
            // digit.
            {"unknown 4yz to MAIL: refused, transient",
             false,
             false,
             {"to@example.com"},
             {"471 try later\r\n"},
             "MAIL FROM:<from@example.com>\r\n",
             reply_code(471),
             outcome::failed,
             false},
            {"unknown 5yz to RCPT: refused, RSET",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "559 no\r\n", "250 reset\r\n"},
             env1 + "RSET\r\n",
             reply_code(559),
             outcome::failed,
             false},
            {"unknown 2yz to MAIL and RCPT: accepted",
             false,
             false,
             {"to@example.com"},
             {"299 fine\r\n", "252 maybe\r\n", "354 go\r\n", "250 ok\r\n"},
             env1 + "DATA\r\n" + data,
             ok,
             outcome::delivered,
             false},
            {"any 3yz to DATA asks for the data",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "355 go ahead\r\n", "250 ok\r\n"},
             env1 + "DATA\r\n" + data,
             ok,
             outcome::delivered,
             false},
            {"unknown 4yz to DATA: refused, RSET",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "471 not now\r\n", "250 reset\r\n"},
             env1 + "DATA\r\nRSET\r\n",
             reply_code(471),
             outcome::failed,
             false},
            {"pipelined: every recipient refused, 3yz to DATA: empty data, RSET",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "550 no\r\n", "355 go\r\n", "554 no valid recipients\r\n",
              "250 reset\r\n"},
             env1 + "DATA\r\n.\r\nRSET\r\n",
             reply_code(550),
             outcome::failed,
             false},
            {"unknown 5yz to the final dot: failed, connection kept",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "559 refused\r\n"},
             env1 + "DATA\r\n" + data,
             reply_code(559),
             outcome::failed,
             false},
            {"a 3yz to the final dot: neither accepted nor refused, unknown, closed",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "354 again?\r\n"},
             env1 + "DATA\r\n" + data,
             make_error_code(error::delivery_status_unknown),
             outcome::unknown,
             true},
            {"a 3yz to the last BDAT: unknown, closed",
             true,
             true,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "334 what\r\n"},
             env1 + bdat,
             make_error_code(error::delivery_status_unknown),
             outcome::unknown,
             true},
            {"RSET answered with another 2yz: connection kept",
             false,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "550 no\r\n", "251 reset\r\n"},
             env1 + "RSET\r\n",
             reply_code(550),
             outcome::failed,
             false},
            {"unsolicited bytes after the final reply: delivered, closed",
             true,
             false,
             {"to@example.com"},
             {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n250 ok\r\n"},
             env1 + "DATA\r\n" + data,
             ok,
             outcome::delivered,
             true},
        };
        for (const send_row& row : rows) {
            CAPTURE(std::string(row.name));
            send_case c(row.pipelining, row.chunking, message(row.rcpts));
            script s;
            s.replies.assign(row.replies.begin(), row.replies.end());
            auto a = c.algo();
            const action x = run(a, s);
            CHECK(s.written == row.wire);
            CHECK(x.ec == row.ec);
            CHECK(c.report.outcome == row.out);
            CHECK(x.close.empty() == !row.close);
            CHECK(s.replies.empty());
            if (row.ec)
                CHECK(!c.report.diag.field.empty());
        }
    }

    TEST_CASE("a refused recipient is data in the report, with the reply")
    {
        send_case c(true, false, message({"a@example.com", "b@example.com"}));
        script s;
        s.replies = {"250 ok\r\n", "250 ok\r\n", "550 5.1.1 no such user\r\n", "354 go\r\n",
                     "250 2.0.0 Ok: queued as 4Q1x2\r\n"};
        auto a = c.algo();
        CHECK(!run(a, s).ec);
        REQUIRE(c.report.recipients.size() == 2);
        CHECK(c.report.recipients[0].accepted());
        CHECK(c.report.recipients[1].response.code == 550);
        CHECK(c.report.queue_id == "4Q1x2");
        CHECK(c.report.message_id == "<id@example.com>");
    }

    TEST_CASE("the next envelope rides behind the final dot; its send reads without writing")
    {
        send_case c(true, false);
        next_envelope_fn next = [](std::string& out) {
            out += "MAIL FROM:<n@example.com>\r\n";
            return true;
        };
        script s;
        s.replies = {"250 ok\r\n", "250 ok\r\n", "354 go\r\n",
                     "250 ok\r\n250 next mail\r\n"}; // the next MAIL's reply is already here
        auto a = c.algo(false, &next);
        const action x = run(a, s);
        CHECK(!x.ec);
        CHECK(x.close.empty()); // those bytes answer the pipelined MAIL: not unsolicited
        CHECK(a.next_pipelined());
        CHECK(s.written.ends_with(".\r\nMAIL FROM:<n@example.com>\r\n"));

        send_case second(true, false);
        script s2;
        s2.replies = {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"};
        auto b = second.algo(true);
        CHECK(!run(b, s2).ec);
        CHECK(s2.written == "Subject: hi\r\n\r\nhello\r\n.\r\n"); // no envelope written again
        CHECK(s2.steps.front().k == kind::read);
    }

    TEST_CASE("checks made before anything is written fail without a step")
    {
        send_case c(true, false, message({}));
        script s;
        auto a = c.algo();
        const action x = run(a, s);
        CHECK(x.ec == error::no_recipients);
        CHECK(s.steps.empty());
        CHECK(x.close.empty());
        CHECK(c.report.diag.field == "envelope");

        send_case big(true, false);
        big.session.caps.size = 10;
        script s2;
        auto b = big.algo();
        CHECK(run(b, s2).ec == error::size_exceeded);
        CHECK(s2.steps.empty());
    }

    TEST_CASE("cancelled while its envelope rode behind the previous message: closed at once")
    {
        send_case c(true, false);
        script s;
        auto a = c.algo(true);
        a.cancel();
        const action x = run(a, s);
        CHECK(x.ec == aborted);
        CHECK(!x.close.empty());
        CHECK(s.steps.empty());
        CHECK(c.report.diag.field == "queued");
    }

    TEST_CASE("each action's phase is the one RFC 5321 §4.5.3.2 times")
    {
        send_case c(false, false);
        script s;
        s.replies = {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"};
        auto a = c.algo();
        run(a, s);
        std::vector<std::string> phases;
        for (const action& x : s.steps)
            phases.push_back(std::string(x.k == kind::write ? "w:" : "r:") + to_string(x.ph));
        CHECK(phases == std::vector<std::string>{"w:mail", "r:mail", "w:rcpt", "r:rcpt", "w:data",
                                                 "r:data", "w:data_block", "r:data_end"});
    }

    TEST_CASE("the transcript: commands, replies, the data only as its size")
    {
        send_case c(true, false);
        c.log = capture_log();
        script s;
        s.replies = {"250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 queued\r\n"};
        auto a = c.algo();
        run(a, s);
        CHECK(captured == std::vector<std::string>{
                              "smtp[test#1] C: MAIL FROM:<from@example.com>",
                              "smtp[test#1] C: RCPT TO:<to@example.com>",
                              "smtp[test#1] C: DATA",
                              "smtp[test#1] S: 250 ok",
                              "smtp[test#1] S: 250 ok",
                              "smtp[test#1] S: 354 go",
                              "smtp[test#1] C: [message data, 22 octets]",
                              "smtp[test#1] S: 250 queued",
                          });
    }

    TEST_CASE("sweep: every action fails in turn, with every kind of failure")
    {
        // Big enough for several data writes before the final one.
        std::string big = "Subject: big\r\n\r\n";
        while (big.size() < 3 * write_block)
            big += std::string(70, 'x') + "\r\n";
        struct config {
            const char* name;
            bool pipelining, chunking;
            std::string body;
            std::vector<std::string> replies;
        };
        const std::vector<config> configs = {
            {"pipelined DATA",
             true,
             false,
             "Subject: a\r\n\r\nb\r\n",
             {"250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"}},
            {"lock-step DATA",
             false,
             false,
             "Subject: a\r\n\r\nb\r\n",
             {"250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"}},
            {"pipelined DATA, large",
             true,
             false,
             big,
             {"250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"}},
            {"BDAT, large", true, true, big, std::vector<std::string>(10, "250 ok\r\n")},
            {"lock-step BDAT",
             false,
             true,
             "Subject: a\r\n\r\nb\r\n",
             {"250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "250 ok\r\n"}},
        };
        const std::vector<std::string> rcpts = {"a@example.com", "b@example.com"};
        std::size_t runs = 0;
        for (const config& cfg : configs) {
            CAPTURE(std::string(cfg.name));
            // The transaction without a failure: its actions, and which write ends the data.
            send_case clean(cfg.pipelining, cfg.chunking, message(rcpts, cfg.body));
            script s0;
            s0.replies.assign(cfg.replies.begin(), cfg.replies.end());
            auto a0 = clean.algo();
            REQUIRE(!run(a0, s0).ec);
            REQUIRE(clean.report.outcome == outcome::delivered);
            std::size_t final_write = 0;
            for (std::size_t i = 0; i < s0.steps.size(); ++i)
                if (s0.steps[i].k == kind::write)
                    final_write = i;
            REQUIRE(final_write > 0);

            for (std::size_t at = 0; at < s0.steps.size(); ++at) {
                const phase ph = s0.steps[at].ph;
                const error_code timeout =
                    make_error_code(ph == phase::mail         ? error::mail_timeout
                                    : ph == phase::rcpt       ? error::rcpt_timeout
                                    : ph == phase::data       ? error::data_timeout
                                    : ph == phase::data_block ? error::data_block_timeout
                                                              : error::data_end_timeout);
                struct failure {
                    const char* what;
                    error_code ec;
                    bool cancel;
                };
                const failure failures[] = {
                    {"connection lost", make_error_code(error::connection_lost), false},
                    {"the phase's timeout", timeout, false},
                    {"an I/O error", make_error_code(boost::system::errc::io_error), false},
                    {"terminal cancellation", aborted, true},
                };
                for (const failure& f : failures) {
                    CAPTURE(at);
                    CAPTURE(std::string(f.what));
                    send_case c(cfg.pipelining, cfg.chunking, message(rcpts, cfg.body));
                    script s;
                    s.replies.assign(cfg.replies.begin(), cfg.replies.end());
                    s.fail_at = at;
                    s.fail_with = f.ec;
                    s.cancel_first = f.cancel;
                    auto a = c.algo();
                    const action x = run(a, s);
                    ++runs;
                    CHECK(s.failed);
                    CHECK_FALSE(s.asked_after_failure); // nothing after a failure
                    CHECK_FALSE(x.close.empty());       // the connection can't be trusted
                    CHECK_FALSE(c.report.diag.field.empty());
                    const bool dot_may_have_arrived = at >= final_write;
                    if (dot_may_have_arrived) {
                        CHECK(c.report.outcome == outcome::unknown);
                        CHECK(x.ec == error::delivery_status_unknown);
                    } else {
                        CHECK(c.report.outcome == outcome::failed);
                        CHECK(x.ec == (f.cancel ? aborted : f.ec));
                    }
                    // What was written is a prefix of the clean run's bytes: never more,
                    // never different.
                    CHECK(s0.written.starts_with(s.written));
                }
            }
        }
        CHECK(runs > 100);
    }

    TEST_CASE("sweep over the refusal path: a failed RSET only closes the connection")
    {
        // The recipient refused in lock-step: MAIL, RCPT, RSET, each written then answered.
        for (std::size_t at = 0; at < 6; ++at) {
            CAPTURE(at);
            send_case c(false, false);
            script s;
            s.replies = {"250 ok\r\n", "550 refused\r\n", "250 reset\r\n"};
            s.fail_at = at;
            s.fail_with = make_error_code(error::connection_lost);
            auto a = c.algo();
            const action x = run(a, s);
            CHECK_FALSE(s.asked_after_failure);
            CHECK_FALSE(x.close.empty());
            CHECK(c.report.outcome == outcome::failed);
            CHECK(x.ec == (at < 4 ? make_error_code(error::connection_lost) : reply_code(550)));
        }
    }
}

namespace {

struct connect_case {
    client_options opts;
    session_state session;
    diagnostics diag;
    logger log{};
    session_log slog;
    connect_case(tls_mode mode)
    {
        opts.host = "mail.example.com";
        opts.helo_name = "client.example.com";
        opts.tls.mode = mode;
        slog.log = &log;
        slog.prefix = "smtp[test#1]";
    }
    connect_algo algo() { return connect_algo(opts, session, diag, slog); }
};

struct connect_row {
    const char* name;
    tls_mode mode;
    bool auth;
    std::vector<std::string> replies;
    std::string wire;
    error_code ec;
    std::size_t handshakes;
};

} // namespace

TEST_SUITE("smtp.connect_algo")
{
    TEST_CASE("table: one session set-up per row")
    {
        const std::string ehlo = "EHLO client.example.com\r\n";
        const std::string plain = "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n";
        const std::vector<connect_row> rows = {
            {"plaintext", tls_mode::none, false, {"220 hi\r\n", "250 mx\r\n"}, ehlo, ok, 0},
            {"greeting refused",
             tls_mode::none,
             false,
             {"554 go away\r\n"},
             "",
             reply_code(554),
             0},
            {"EHLO refused: HELO where TLS isn't required",
             tls_mode::none,
             false,
             {"220 hi\r\n", "502 no\r\n", "250 mx\r\n"},
             ehlo + "HELO client.example.com\r\n",
             ok,
             0},
            {"EHLO refused and TLS required: no HELO",
             tls_mode::required,
             false,
             {"220 hi\r\n", "502 no\r\n"},
             ehlo,
             reply_code(502),
             0},
            {"STARTTLS, then EHLO again",
             tls_mode::required,
             false,
             {"220 hi\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n", "250 mx\r\n"},
             ehlo + "STARTTLS\r\n" + ehlo,
             ok,
             1},
            {"STARTTLS required, not offered",
             tls_mode::required,
             false,
             {"220 hi\r\n", "250 mx\r\n"},
             ehlo,
             make_error_code(error::starttls_unavailable),
             0},
            {"STARTTLS opportunistic, not offered: plaintext",
             tls_mode::opportunistic,
             false,
             {"220 hi\r\n", "250 mx\r\n"},
             ehlo,
             ok,
             0},
            {"STARTTLS opportunistic, refused: plaintext",
             tls_mode::opportunistic,
             false,
             {"220 hi\r\n", "250-mx\r\n250 STARTTLS\r\n", "454 not now\r\n"},
             ehlo + "STARTTLS\r\n",
             ok,
             0},
            {"bytes after the 220 to STARTTLS: injection (CVE-2011-0411)",
             tls_mode::required,
             false,
             {"220 hi\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n250 forged\r\n"},
             ehlo + "STARTTLS\r\n",
             make_error_code(error::starttls_injection),
             0},
            {"implicit TLS: handshake first",
             tls_mode::implicit,
             false,
             {"220 hi\r\n", "250 mx\r\n"},
             ehlo,
             ok,
             1},
            {"AUTH PLAIN after STARTTLS",
             tls_mode::required,
             true,
             {"220 hi\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n",
              "250-mx\r\n250 AUTH PLAIN\r\n", "235 ok\r\n"},
             ehlo + "STARTTLS\r\n" + ehlo + plain,
             ok,
             1},
            {"AUTH refused",
             tls_mode::implicit,
             true,
             {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n", "535 bad credentials\r\n"},
             ehlo + plain,
             reply_code(535),
             1},
            // RFC 5321 §4.2.1, §4.3.2: judged by the first digit.
            {"greeting with another 2yz: go ahead",
             tls_mode::none,
             false,
             {"250 hi\r\n", "250 mx\r\n"},
             ehlo,
             ok,
             0},
            {"greeting with an unknown 4yz: transient",
             tls_mode::none,
             false,
             {"471 busy\r\n"},
             "",
             reply_code(471),
             0},
            {"greeting with a 3yz: out of step",
             tls_mode::none,
             false,
             {"354 what\r\n"},
             "",
             make_error_code(error::protocol_error),
             0},
            {"EHLO with an unknown 5yz: permanent",
             tls_mode::required,
             false,
             {"220 hi\r\n", "559 no\r\n"},
             ehlo,
             reply_code(559),
             0},
            {"EHLO with a 3yz: out of step",
             tls_mode::none,
             false,
             {"220 hi\r\n", "334 what\r\n"},
             ehlo,
             make_error_code(error::protocol_error),
             0},
            {"EHLO with another 2yz: its capabilities",
             tls_mode::required,
             false,
             {"220 hi\r\n", "251-mx\r\n251 STARTTLS\r\n", "220 go\r\n", "250 mx\r\n"},
             ehlo + "STARTTLS\r\n" + ehlo,
             ok,
             1},
            {"STARTTLS answered 3yz: out of step, even opportunistic",
             tls_mode::opportunistic,
             false,
             {"220 hi\r\n", "250-mx\r\n250 STARTTLS\r\n", "334 what\r\n"},
             ehlo + "STARTTLS\r\n",
             make_error_code(error::protocol_error),
             0},
            {"AUTH 454: temporary authentication failure (RFC 4954 §6)",
             tls_mode::implicit,
             true,
             {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n", "454 4.7.0 try later\r\n"},
             ehlo + plain,
             reply_code(454),
             1},
            {"AUTH with an unknown 4yz: transient",
             tls_mode::implicit,
             true,
             {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n", "471 later\r\n"},
             ehlo + plain,
             reply_code(471),
             1},
            {"opportunistic TLS stripped, credentials: kept back, starttls_unavailable",
             tls_mode::opportunistic,
             true,
             {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n"},
             ehlo,
             make_error_code(error::starttls_unavailable),
             0},
            {"opportunistic STARTTLS refused, credentials: kept back, starttls_unavailable",
             tls_mode::opportunistic,
             true,
             {"220 hi\r\n", "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", "454 not now\r\n"},
             ehlo + "STARTTLS\r\n",
             make_error_code(error::starttls_unavailable),
             0},
            {"credentials never sent in plaintext",
             tls_mode::none,
             true,
             {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n"},
             ehlo,
             make_error_code(error::plaintext_auth_refused),
             0},
        };
        for (const connect_row& row : rows) {
            CAPTURE(std::string(row.name));
            connect_case c(row.mode);
            if (row.auth)
                c.opts.auth = credentials{.username = "user", .password = "secret"};
            script s;
            s.replies.assign(row.replies.begin(), row.replies.end());
            auto a = c.algo();
            const action x = run(a, s);
            CHECK(s.written == row.wire);
            CHECK(x.ec == row.ec);
            CHECK(s.handshakes == row.handshakes);
            CHECK(s.replies.empty());
            if (!x.ec)
                CHECK(c.session.tls == (row.handshakes > 0));
            if (row.ec)
                CHECK(!c.diag.field.empty());
            if (!row.ec && row.auth)
                CHECK(c.session.auth_used == auth_mechanism::plain);
        }
    }

    TEST_CASE("credentials kept back for want of TLS: stripped is transient, TLS off permanent")
    {
        // An attacker who strips STARTTLS must not be able to make the message bounce
        // (lib/error.cpp); a configuration without TLS fails the same way every time.
        for (const tls_mode mode : {tls_mode::opportunistic, tls_mode::none}) {
            CAPTURE(static_cast<int>(mode));
            connect_case c(mode);
            c.opts.auth = credentials{.username = "user", .password = "secret"};
            script s;
            s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN LOGIN\r\n"};
            auto a = c.algo();
            const error_code ec = run(a, s).ec;
            CHECK(s.written.find("AUTH") == std::string::npos);
            if (mode == tls_mode::opportunistic) {
                CHECK(ec == error::starttls_unavailable);
                CHECK(ec == condition::transient);
                CHECK(c.diag.field == "STARTTLS");
            } else {
                CHECK(ec == error::plaintext_auth_refused);
                CHECK(ec == condition::permanent);
                CHECK_FALSE(ec == condition::transient);
                CHECK(c.diag.field == "AUTH");
            }
        }
        // Allowed in the clear: no refusal.
        connect_case c(tls_mode::opportunistic);
        c.opts.auth =
            credentials{.username = "user", .password = "secret", .allow_plaintext = true};
        script s;
        s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n", "235 ok\r\n"};
        auto a = c.algo();
        CHECK(!run(a, s).ec);
    }

    TEST_CASE("unexpected_reply: 4yz and 5yz keep their code, 2yz and 3yz are out of step")
    {
        for (int code : {421, 450, 454, 471, 499, 500, 554, 559, 599}) {
            CAPTURE(code);
            reply r;
            r.code = code;
            const error_code ec = unexpected_reply(r);
            CHECK(ec.category() == reply_category());
            CHECK(ec.value() == code);
            CHECK(ec == (code < 500 ? condition::transient : condition::permanent));
        }
        for (int code : {220, 250, 299, 334, 354, 399}) {
            CAPTURE(code);
            reply r;
            r.code = code;
            CHECK(unexpected_reply(r) == error::protocol_error);
        }
    }

    TEST_CASE("capabilities learned before STARTTLS are forgotten")
    {
        connect_case c(tls_mode::required);
        script s;
        s.replies = {"220 hi\r\n", "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "220 go\r\n",
                     "250-mx\r\n250 CHUNKING\r\n"};
        auto a = c.algo();
        CHECK(!run(a, s).ec);
        CHECK(c.session.tls);
        CHECK_FALSE(c.session.caps.pipelining);
        CHECK(c.session.caps.chunking);
    }

    TEST_CASE("XOAUTH2: a refused token is refreshed once and tried again")
    {
        connect_case c(tls_mode::implicit);
        std::vector<bool> asked;
        c.opts.auth = credentials{.username = "user@example.com",
                                  .token_provider =
                                      [&](bool refresh) {
                                          asked.push_back(refresh);
                                          return std::string(refresh ? "fresh" : "stale");
                                      },
                                  .mechanism = auth_mechanism::xoauth2};
        script s;
        // RFC 7628 §3.2.2: the failure arrives as a 334 challenge, answered with an empty
        // line, then the 535.
        s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH XOAUTH2\r\n",
                     "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n", "535 bad token\r\n", "235 ok\r\n"};
        auto a = c.algo();
        CHECK(!run(a, s).ec);
        CHECK(asked == std::vector<bool>{false, true});
        CHECK(c.session.auth_used == auth_mechanism::xoauth2);
    }

    TEST_CASE("token source: a refused token is dropped, a fresh one fetched, AUTH retried once")
    {
        boost::asio::io_context io;
        auto source =
            auth::token_source::from_callback(io.get_executor(), [](bool, auth::token_handler) {});
        connect_case c(tls_mode::implicit);
        c.opts.auth =
            credentials{.username = "user@example.com", .mechanism = auth_mechanism::xoauth2};
        c.opts.auth->tokens = source;
        script s;
        s.tokens = {"stale", "fresh"};
        s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH XOAUTH2\r\n",
                     "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n", "535 5.7.8 bad token\r\n", "235 ok\r\n"};
        auto a = c.algo();
        CHECK(!run(a, s).ec);
        CHECK(s.tokens.empty());
        // user=user@example.com^Aauth=Bearer stale^A^A, then the same with "fresh".
        CHECK(s.written.find(
                  "AUTH XOAUTH2 dXNlcj11c2VyQGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIHN0YWxlAQE=\r\n") !=
              std::string::npos);
        CHECK(s.written.find("\r\n\r\n") != std::string::npos); // the empty line after the 334
        CHECK(s.written.find(
                  "AUTH XOAUTH2 dXNlcj11c2VyQGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIGZyZXNoAQE=\r\n") !=
              std::string::npos);
        CHECK_FALSE(c.session.token_retry_needs_reconnect);
    }

    TEST_CASE("token source: refused twice fails with the 535, no third try")
    {
        boost::asio::io_context io;
        auto source =
            auth::token_source::from_callback(io.get_executor(), [](bool, auth::token_handler) {});
        connect_case c(tls_mode::implicit);
        c.opts.auth = credentials{.username = "u", .mechanism = auth_mechanism::oauthbearer};
        c.opts.auth->tokens = source;
        script s;
        s.tokens = {"t1", "t2"};
        s.replies = {"220 hi\r\n",
                     "250-mx\r\n250 AUTH OAUTHBEARER\r\n",
                     "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n",
                     "535 5.7.8 no\r\n",
                     "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n",
                     "535 5.7.8 no\r\n"};
        auto a = c.algo();
        const auto x = run(a, s);
        CHECK(x.ec == reply_code(535));
        CHECK(s.replies.empty());
    }

    TEST_CASE("token source: the server closes after the 535: retry on a new connection")
    {
        boost::asio::io_context io;
        auto source =
            auth::token_source::from_callback(io.get_executor(), [](bool, auth::token_handler) {});
        for (bool retry_allowed : {true, false}) {
            CAPTURE(retry_allowed);
            connect_case c(tls_mode::implicit);
            c.opts.auth = credentials{.username = "u", .mechanism = auth_mechanism::xoauth2};
            c.opts.auth->tokens = source;
            script s;
            s.tokens = {"t1", "t2"};
            s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH XOAUTH2\r\n",
                         "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n", "535 5.7.8 bad\r\n"};
            // Actions: handshake, read greeting, write EHLO, read, token, write AUTH, read 334,
            // write the empty line, read 535, then (allowed) token, write AUTH: fails.
            s.fail_at = 10;
            s.fail_with = make_error_code(error::connection_lost);
            auto a = connect_algo(c.opts, c.session, c.diag, c.slog, retry_allowed);
            const auto x = run(a, s);
            if (retry_allowed) {
                CHECK(x.ec == error::connection_lost);
                CHECK(c.session.token_retry_needs_reconnect);
            } else {
                CHECK(x.ec == reply_code(535)); // no second try on the second connection
                CHECK_FALSE(c.session.token_retry_needs_reconnect);
            }
        }
    }

    TEST_CASE("token source: a failed get fails the connect with the source's error")
    {
        boost::asio::io_context io;
        auto source =
            auth::token_source::from_callback(io.get_executor(), [](bool, auth::token_handler) {});
        connect_case c(tls_mode::implicit);
        c.opts.auth = credentials{.username = "u", .mechanism = auth_mechanism::xoauth2};
        c.opts.auth->tokens = source;
        script s;
        s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH XOAUTH2\r\n"};
        s.fail_at = 4; // handshake, greeting, EHLO, its reply, then the get_token action
        s.fail_with = make_error_code(error::token_refresh_refused);
        auto a = c.algo();
        CHECK(run(a, s).ec == error::token_refresh_refused);
        CHECK(c.diag.field == "AUTH token");
        CHECK(s.written.find("AUTH") == std::string::npos);
    }

    TEST_CASE("the transcript never shows credentials")
    {
        connect_case c(tls_mode::implicit);
        c.log = capture_log();
        c.opts.auth = credentials{.username = "user", .password = "secret"};
        script s;
        s.replies = {"220 hi\r\n", "250-mx\r\n250 AUTH PLAIN\r\n", "235 ok\r\n"};
        auto a = c.algo();
        CHECK(!run(a, s).ec);
        CHECK(captured == std::vector<std::string>{
                              "smtp[test#1] S: 220 hi",
                              "smtp[test#1] C: EHLO client.example.com",
                              "smtp[test#1] S: 250-mx",
                              "smtp[test#1] S: 250 AUTH PLAIN",
                              "smtp[test#1] C: AUTH PLAIN [redacted]",
                              "smtp[test#1] S: 235 ok",
                          });
        for (const auto& line : captured)
            CHECK(line.find("AHVzZXIAc2VjcmV0") == std::string::npos);
    }

    TEST_CASE("a failed step is logged once, as a warning with the step")
    {
        connect_case c(tls_mode::none);
        c.log = capture_log();
        c.log.level = log_level::warning;
        script s;
        s.replies = {"554 no service\r\n"};
        auto a = c.algo();
        CHECK(run(a, s).ec == reply_code(554));
        CHECK(captured == std::vector<std::string>{"smtp[test#1] greeting failed: 554 no service"});
        CHECK(c.diag.field == "greeting");
    }

    TEST_CASE("sweep: every action fails in turn, with every kind of failure")
    {
        const std::vector<std::string> replies = {
            "220 hi\r\n",
            "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n",
            "220 go\r\n",
            "250-mx\r\n250 AUTH LOGIN\r\n",
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            "235 ok\r\n"};
        connect_case clean(tls_mode::required);
        clean.opts.auth = credentials{.username = "user", .password = "secret"};
        script s0;
        s0.replies.assign(replies.begin(), replies.end());
        auto a0 = clean.algo();
        REQUIRE(!run(a0, s0).ec);
        REQUIRE(clean.session.auth_used == auth_mechanism::login);
        REQUIRE(s0.steps.size() == 14);
        for (std::size_t at = 0; at < s0.steps.size(); ++at) {
            const error_code timeout = make_error_code(
                s0.steps[at].ph == phase::greeting        ? error::greeting_timeout
                : s0.steps[at].ph == phase::tls_handshake ? error::tls_handshake_timeout
                                                          : error::command_timeout);
            for (const error_code& f : {make_error_code(error::connection_lost), timeout, aborted,
                                        make_error_code(error::certificate_rejected)}) {
                CAPTURE(at);
                CAPTURE(f.message());
                connect_case c(tls_mode::required);
                c.opts.auth = credentials{.username = "user", .password = "secret"};
                script s;
                s.replies.assign(replies.begin(), replies.end());
                s.fail_at = at;
                s.fail_with = f;
                auto a = c.algo();
                const action x = run(a, s);
                CHECK(s.failed);
                CHECK_FALSE(s.asked_after_failure);
                CHECK(x.ec == f);
                CHECK_FALSE(c.session.auth_used.has_value());
                CHECK(s0.written.starts_with(s.written));
                if (s0.steps[at].k != kind::handshake) // the driver records handshake errors
                    CHECK_FALSE(c.diag.field.empty());
            }
        }
    }
}
