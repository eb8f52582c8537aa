#include "smtp/reply_parser.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <doctest/doctest.h>

#include <ostream>
#include <random>

namespace mailroom::smtp {
// For doctest's failure messages.
inline std::ostream& operator<<(std::ostream& os, const reply& r)
{
    return os << r.to_string();
}
} // namespace mailroom::smtp

using mailroom::error;
using mailroom::error_code;
using mailroom::smtp::enhanced_status;
using mailroom::smtp::reply;
using mailroom::smtp::detail::reply_limits;
using mailroom::smtp::detail::reply_parser;

namespace {

struct outcome {
    std::vector<reply> replies;
    error_code ec;
    bool idle = true;

    friend bool operator==(const outcome&, const outcome&) = default;
};

// Feeds `pieces` in order, collecting every reply; stops at the first error.
outcome run_pieces(const std::vector<std::string_view>& pieces, reply_limits lim = {},
                   bool enhanced = false)
{
    reply_parser p(lim);
    p.set_enhanced_status_codes(enhanced);
    outcome o;
    for (auto piece : pieces) {
        while (!piece.empty()) {
            error_code ec;
            const std::size_t n = p.feed(piece, ec);
            REQUIRE(n <= piece.size());
            if (ec) {
                o.ec = ec;
                CHECK(p.last_error() == ec);
                return o;
            }
            if (p.has_reply()) {
                // A complete reply ends at the LF it consumed last.
                REQUIRE(n > 0);
                CHECK(piece[n - 1] == '\n');
                o.replies.push_back(p.take());
            } else {
                CHECK(n == piece.size());
            }
            piece.remove_prefix(n);
        }
    }
    o.idle = p.idle();
    return o;
}

outcome run(std::string_view in, reply_limits lim = {}, bool enhanced = false)
{
    return run_pieces({in}, lim, enhanced);
}

// Every way of cutting `in` in two, three (for short inputs) and single bytes must give what
// feeding it whole gives.
void check_split_invariance(std::string_view in, reply_limits lim = {}, bool enhanced = false)
{
    CAPTURE(in);
    const outcome whole = run(in, lim, enhanced);
    for (std::size_t i = 0; i <= in.size(); ++i) {
        CAPTURE(i);
        REQUIRE(run_pieces({in.substr(0, i), in.substr(i)}, lim, enhanced) == whole);
    }
    if (in.size() <= 80) {
        for (std::size_t i = 0; i <= in.size(); ++i) {
            for (std::size_t j = i; j <= in.size(); ++j) {
                CAPTURE(i);
                CAPTURE(j);
                REQUIRE(run_pieces({in.substr(0, i), in.substr(i, j - i), in.substr(j)}, lim,
                                   enhanced) == whole);
            }
        }
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < in.size(); ++i)
        bytes.push_back(in.substr(i, 1));
    REQUIRE(run_pieces(bytes, lim, enhanced) == whole);
}

reply make(int code, std::vector<std::string> lines)
{
    reply r;
    r.code = code;
    r.lines = std::move(lines);
    return r;
}

error parse_error(std::string_view in, reply_limits lim = {})
{
    const outcome o = run(in, lim);
    REQUIRE_MESSAGE(o.ec, "expected a failure for '" << in << "'");
    CHECK(o.ec.category() == mailroom::library_category());
    return static_cast<error>(o.ec.value());
}

} // namespace

TEST_SUITE("smtp.reply")
{
    TEST_CASE("single-line replies")
    {
        auto o = run("220 mx.example.com ESMTP ready\r\n");
        REQUIRE_FALSE(o.ec);
        REQUIRE(o.replies.size() == 1);
        CHECK(o.replies[0] == make(220, {"mx.example.com ESMTP ready"}));
        CHECK(o.replies[0].positive_completion());
        CHECK(o.idle);

        // RFC 5321 §4.2: the text is optional on the last line.
        CHECK(run("250\r\n").replies == std::vector{make(250, {""})});
        CHECK(run("250 \r\n").replies == std::vector{make(250, {""})});
        CHECK(run("334 \r\n").replies == std::vector{make(334, {""})});
        CHECK(run("554 5.7.1 no\tthanks\r\n").replies ==
              std::vector{make(554, {"5.7.1 no\tthanks"})});
        // UTF-8 text (RFC 6531 §3.7.4) passes through.
        CHECK(run("550 5.1.1 unbekannt: j\xc3\xb6rg\r\n").replies[0].lines[0] ==
              "5.1.1 unbekannt: j\xc3\xb6rg");
    }

    TEST_CASE("multi-line replies")
    {
        const std::string_view ehlo = "250-mx.example.com Hello\r\n"
                                      "250-PIPELINING\r\n"
                                      "250-SIZE 10240000\r\n"
                                      "250-\r\n"
                                      "250 8BITMIME\r\n";
        auto o = run(ehlo);
        REQUIRE_FALSE(o.ec);
        REQUIRE(o.replies.size() == 1);
        CHECK(o.replies[0] ==
              make(250, {"mx.example.com Hello", "PIPELINING", "SIZE 10240000", "", "8BITMIME"}));
        CHECK(o.replies[0].to_string() ==
              "250-mx.example.com Hello\n250-PIPELINING\n250-SIZE 10240000\n250-\n250 8BITMIME");
    }

    TEST_CASE("pipelined replies in one buffer are returned one at a time")
    {
        const std::string_view in = "250 2.1.0 Ok\r\n"
                                    "250 2.1.5 Ok\r\n"
                                    "550-5.1.1 no such\r\n"
                                    "550 5.1.1 user\r\n"
                                    "354 End data with <CR><LF>.<CR><LF>\r\n";
        reply_parser p;
        p.set_enhanced_status_codes(true);
        error_code ec;
        std::size_t n = p.feed(in, ec);
        REQUIRE_FALSE(ec);
        CHECK(n == 14); // stops after the first reply
        REQUIRE(p.has_reply());
        // Until the reply is taken, nothing more is consumed.
        CHECK(p.feed(in.substr(n), ec) == 0);
        CHECK_FALSE(p.idle());
        reply r = p.take();
        CHECK(r.code == 250);
        CHECK(r.status == enhanced_status{2, 1, 0});
        CHECK(p.idle());

        auto o = run(in, {}, true);
        REQUIRE_FALSE(o.ec);
        REQUIRE(o.replies.size() == 4);
        CHECK(o.replies[1].status == enhanced_status{2, 1, 5});
        CHECK(o.replies[2] == [] {
            reply x = make(550, {"5.1.1 no such", "5.1.1 user"});
            x.status = enhanced_status{5, 1, 1};
            return x;
        }());
        CHECK(o.replies[3].code == 354);
        CHECK_FALSE(o.replies[3].status);
    }

    TEST_CASE("bytes after a reply stay with the caller (STARTTLS injection)")
    {
        // CVE-2011-0411: a command injected after STARTTLS is answered in plaintext before the
        // handshake. The client must see those bytes, not parse them as the next reply.
        const std::string_view in = "220 2.0.0 Ready to start TLS\r\n250 injected\r\n";
        reply_parser p;
        error_code ec;
        const std::size_t n = p.feed(in, ec);
        REQUIRE(p.has_reply());
        CHECK(n == in.find("250"));
        CHECK(in.substr(n) == "250 injected\r\n");
    }

    TEST_CASE("idle() is false in the middle of a reply")
    {
        reply_parser p;
        error_code ec;
        CHECK(p.idle());
        p.feed("25", ec);
        CHECK_FALSE(p.idle());
        p.feed("0-a\r\n", ec);
        CHECK_FALSE(p.idle()); // a continuation line is buffered
        p.feed("250 b\r", ec);
        CHECK_FALSE(p.idle());
        p.feed("\n", ec);
        REQUIRE(p.has_reply());
        CHECK(p.take() == make(250, {"a", "b"}));
        CHECK(p.idle());
    }

    TEST_CASE("enhanced status codes")
    {
        auto status_of = [](std::string_view in, bool enhanced = true) {
            auto o = run(in, {}, enhanced);
            REQUIRE_FALSE(o.ec);
            REQUIRE(o.replies.size() == 1);
            return o.replies[0].status;
        };
        CHECK(status_of("250 2.1.0 Sender ok\r\n") == enhanced_status{2, 1, 0});
        CHECK(status_of("550 5.7.1\r\n") == enhanced_status{5, 7, 1});
        CHECK(status_of("451 4.3.0 x\r\n") == enhanced_status{4, 3, 0});
        CHECK(status_of("550 5.1.10 x\r\n") == enhanced_status{5, 1, 10});
        CHECK(status_of("550 5.123.999 x\r\n") == enhanced_status{5, 123, 999});
        // The first line decides; the text keeps the code.
        auto o = run("550-5.1.1 first\r\n550 5.2.2 second\r\n", {}, true);
        CHECK(o.replies[0].status == enhanced_status{5, 1, 1});
        CHECK(o.replies[0].lines[0] == "5.1.1 first");

        // Only when ENHANCEDSTATUSCODES was advertised.
        CHECK_FALSE(status_of("250 2.1.0 Sender ok\r\n", false));
        // Class must agree with the reply code; 3xx replies carry none.
        CHECK_FALSE(status_of("250 5.1.1 x\r\n"));
        CHECK_FALSE(status_of("550 2.0.0 x\r\n"));
        CHECK_FALSE(status_of("354 2.0.0 go ahead\r\n"));
        CHECK_FALSE(status_of("334 VXNlcm5hbWU6\r\n"));
        // Malformed: leading zeros, four digits, no space after, missing parts, class 3.
        CHECK_FALSE(status_of("550 5.01.1 x\r\n"));
        CHECK_FALSE(status_of("550 5.1.01 x\r\n"));
        CHECK_FALSE(status_of("550 5.1.1000 x\r\n"));
        CHECK_FALSE(status_of("550 5.1.1x\r\n"));
        CHECK_FALSE(status_of("550 5.1.1.2 x\r\n"));
        CHECK_FALSE(status_of("550 5.1 x\r\n"));
        CHECK_FALSE(status_of("550 5..1 x\r\n"));
        CHECK_FALSE(status_of("550 x 5.1.1\r\n"));
        CHECK_FALSE(status_of("550\r\n"));
        CHECK(status_of("550 5.0.0\r\n") == enhanced_status{5, 0, 0});
    }

    TEST_CASE("codes the client doesn't know are replies: judged by their first digit")
    {
        // RFC 5321 §4.2.1, §4.3.2: 471 or 290 is outside the grammar's second digit (0-5),
        // but a client judges a code it doesn't know by its first digit.
        for (int code : {260, 290, 471, 499, 559, 599, 370}) {
            CAPTURE(code);
            const std::string line = std::to_string(code) + " x\r\n";
            const outcome o = run_pieces({line});
            CHECK(!o.ec);
            REQUIRE(o.replies.size() == 1);
            CHECK(o.replies[0].code == code);
        }
        const outcome multi = run_pieces({"471-a\r\n471 b\r\n"});
        REQUIRE(multi.replies.size() == 1);
        CHECK(multi.replies[0].lines.size() == 2);
    }

    TEST_CASE("malformed reply codes")
    {
        for (std::string_view in : {
                 "\r\n",   // empty line
                 "25\r\n", // short
                 "2\r\n",
                 "abc text\r\n", // garbage
                 "HTTP/1.1 400 Bad Request\r\n",
                 "150 x\r\n", // 1xx is not an SMTP reply (RFC 5321 §4.2)
                 "199 x\r\n",
                 "600 x\r\n", // first digit 2-5
                 "099 x\r\n",
                 "25a x\r\n",
                 "2500 x\r\n", // four digits
                 "250_x\r\n",  // separator must be ' ' or '-'
                 "250\tx\r\n",
                 " 250 x\r\n", // leading space
                 "+OK POP3 ready\r\n",
                 "* OK IMAP4rev1\r\n",
             }) {
            CAPTURE(in);
            CHECK(parse_error(in) == error::bad_reply_code);
        }
    }

    TEST_CASE("code changing within a multi-line reply")
    {
        CHECK(parse_error("250-a\r\n251 b\r\n") == error::reply_code_mismatch);
        CHECK(parse_error("250-a\r\n250-b\r\n550 c\r\n") == error::reply_code_mismatch);
        // A continuation line with a bad code is still a bad code.
        CHECK(parse_error("250-a\r\n25\r\n") == error::bad_reply_code);
    }

    TEST_CASE("line ends and control characters")
    {
        CHECK(parse_error("250 ok\n") == error::protocol_error); // bare LF
        CHECK(parse_error("250-a\n250 b\r\n") == error::protocol_error);
        CHECK(parse_error("250 a\rb\r\n") == error::protocol_error); // bare CR
        CHECK(parse_error("250 a\r\r\n") == error::protocol_error);
        CHECK(parse_error(std::string_view("250 a\0b\r\n", 9)) == error::protocol_error);
        CHECK(parse_error("250 a\x1b[31mred\r\n") == error::protocol_error);
        CHECK(parse_error("250 a\x7f\r\n") == error::protocol_error);
        CHECK(parse_error("250 a\x01\r\n") == error::protocol_error);
    }

    TEST_CASE("line length limit")
    {
        reply_limits lim;
        lim.max_line = 20;
        const std::string ok = "250 " + std::string(16, 'x') + "\r\n"; // 20 octets + CRLF
        auto o = run(ok, lim);
        REQUIRE_FALSE(o.ec);
        CHECK(o.replies[0].lines[0].size() == 16);
        const std::string over = "250 " + std::string(17, 'x') + "\r\n";
        CHECK(parse_error(over, lim) == error::reply_line_too_long);
        check_split_invariance(ok, lim);
        check_split_invariance(over, lim);

        // An endless line fails as soon as it passes the limit: memory stays bounded.
        reply_parser p(lim);
        error_code ec;
        std::size_t total = 0;
        for (int i = 0; i < 100 && !ec; ++i)
            total += p.feed("xxxxxxx", ec);
        CHECK(ec == error::reply_line_too_long);
        CHECK(total <= lim.max_line + 1);

        // The default: 2048 octets.
        CHECK_FALSE(run("250 " + std::string(2044, 'x') + "\r\n").ec);
        CHECK(parse_error("250 " + std::string(2045, 'x') + "\r\n") == error::reply_line_too_long);
    }

    TEST_CASE("reply size limits")
    {
        reply_limits lim;
        lim.max_lines = 3;
        CHECK_FALSE(run("250-a\r\n250-b\r\n250 c\r\n", lim).ec);
        CHECK(parse_error("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", lim) == error::reply_too_long);

        lim = {};
        lim.max_text = 10;
        CHECK_FALSE(run("250-12345\r\n250 12345\r\n", lim).ec);
        CHECK(parse_error("250-12345\r\n250 123456\r\n", lim) == error::reply_too_long);

        // Defaults: 100 lines.
        std::string many;
        for (int i = 0; i < 100; ++i)
            many += "250-x\r\n";
        many += "250 x\r\n";
        CHECK(parse_error(many) == error::reply_too_long);

        // The limits are per reply: many small replies are fine.
        std::string replies;
        for (int i = 0; i < 200; ++i)
            replies += "250 ok\r\n";
        auto o = run(replies);
        REQUIRE_FALSE(o.ec);
        CHECK(o.replies.size() == 200);
    }

    TEST_CASE("errors are sticky until reset")
    {
        reply_parser p;
        error_code ec;
        p.feed("250 a\n", ec);
        CHECK(ec == error::protocol_error);
        CHECK_FALSE(p.error_detail().empty());
        CHECK(p.feed("250 ok\r\n", ec) == 0);
        CHECK(ec == error::protocol_error);
        CHECK(ec == mailroom::condition::transient);
        p.reset();
        CHECK(p.feed("250 ok\r\n", ec) == 8);
        CHECK_FALSE(ec);
        CHECK(p.take() == make(250, {"ok"}));
    }

    TEST_CASE("every split position gives the same result")
    {
        for (std::string_view in : {
                 "220 mx.example.com ESMTP\r\n",
                 "250-mx.example.com\r\n250-PIPELINING\r\n250-\r\n250 8BITMIME\r\n",
                 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n",
                 "250\r\n250 \r\n250-\r\n250 x\r\n",
                 "550-5.1.1 a\r\n550 5.1.1 b\r\n",
                 // failures
                 "250 ok\n",
                 "250-a\r\n251 b\r\n",
                 "250 a\rb\r\n",
                 "2500 x\r\n",
                 "250 ok\r\n600 bad\r\n",
                 "250 ok\r\n250 a\x01\r\n",
             }) {
            check_split_invariance(in);
            check_split_invariance(in, {}, true);
        }
    }

    TEST_CASE("random garbage never crashes and stays bounded")
    {
        std::mt19937 rng(12345);
        std::uniform_int_distribution<int> byte(0, 255);
        std::uniform_int_distribution<int> pick(0, 9);
        const std::string_view alphabet = "0123456789 -\r\n250";
        reply_limits lim;
        lim.max_line = 64;
        lim.max_lines = 5;
        lim.max_text = 200;
        for (int round = 0; round < 300; ++round) {
            std::string in;
            const int len = byte(rng) * 4;
            for (int i = 0; i < len; ++i) {
                // Mostly reply-ish characters, so that the parser gets deep.
                in += pick(rng) < 7
                          ? alphabet[static_cast<std::size_t>(byte(rng)) % alphabet.size()]
                          : static_cast<char>(byte(rng));
            }
            const outcome whole = run(in, lim);
            for (const auto& r : whole.replies) {
                CHECK(r.code >= 200);
                CHECK(r.code <= 559);
                CHECK(r.lines.size() <= lim.max_lines);
            }
            const std::string_view v = in;
            const std::size_t cut = v.empty() ? 0 : static_cast<std::size_t>(byte(rng)) % v.size();
            CHECK(run_pieces({v.substr(0, cut), v.substr(cut)}, lim) == whole);
        }
    }
}
