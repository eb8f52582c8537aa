#include "smtp/command.hpp"

#include <doctest/doctest.h>

using mailroom::address;
using mailroom::error;
using mailroom::error_code;
using namespace mailroom::smtp::detail;

namespace {

address addr(std::string_view s)
{
    auto a = address::parse(s);
    REQUIRE_MESSAGE(a, "test address '" << s << "' must parse");
    return *a;
}

// Calls `f(out)` on a buffer that already holds a pipelined command and checks that a failure
// leaves it untouched.
template <class F> std::pair<error_code, std::string> format(F&& f)
{
    std::string out = "RSET\r\n";
    error_code ec = f(out);
    if (ec) {
        CHECK(out == "RSET\r\n");
        return {ec, {}};
    }
    REQUIRE(out.substr(0, 6) == "RSET\r\n");
    return {ec, out.substr(6)};
}

std::string ok(std::pair<error_code, std::string> r)
{
    REQUIRE_MESSAGE(!r.first, r.first.message());
    // Exactly one line: one CRLF, at the end, and no other CR or LF.
    CHECK(r.second.size() >= 2);
    CHECK(r.second.substr(r.second.size() - 2) == "\r\n");
    CHECK(r.second.find_first_of("\r\n") == r.second.size() - 2);
    return r.second;
}

error fails(std::pair<error_code, std::string> r)
{
    REQUIRE_MESSAGE(r.first, "expected a failure, got '" << r.second << "'");
    CHECK(r.first.category() == mailroom::library_category());
    return static_cast<error>(r.first.value());
}

std::string repeat(std::size_t n, char c, std::string_view tail = {})
{
    std::string s(n, c);
    s.append(tail);
    return s;
}

} // namespace

TEST_SUITE("smtp.command")
{
    TEST_CASE("EHLO and HELO")
    {
        auto ehlo = [](std::string_view name) {
            return format([&](std::string& o) { return format_ehlo(o, name); });
        };
        CHECK(ok(ehlo("client.example.com")) == "EHLO client.example.com\r\n");
        CHECK(ok(ehlo("localhost")) == "EHLO localhost\r\n");
        CHECK(ok(ehlo("xn--bcher-kva.example")) == "EHLO xn--bcher-kva.example\r\n");
        CHECK(ok(ehlo("a-1.b2.C3")) == "EHLO a-1.b2.C3\r\n");
        CHECK(ok(ehlo("[192.0.2.1]")) == "EHLO [192.0.2.1]\r\n");
        CHECK(ok(ehlo("[IPv6:2001:db8::1]")) == "EHLO [IPv6:2001:db8::1]\r\n");
        CHECK(ok(ehlo("[ipv6:::1]")) == "EHLO [ipv6:::1]\r\n");
        CHECK(ok(ehlo(repeat(63, 'a', ".com"))) == "EHLO " + repeat(63, 'a', ".com") + "\r\n");
        CHECK(ok(format([](std::string& o) { return format_helo(o, "client.example.com"); })) ==
              "HELO client.example.com\r\n");

        // Injection: CR, LF, NUL, other controls.
        CHECK(fails(ehlo("client.example.com\r\nMAIL FROM:<a@b.c>")) == error::control_character);
        CHECK(fails(ehlo("client\n")) == error::control_character);
        CHECK(fails(ehlo("client\r")) == error::control_character);
        CHECK(fails(ehlo(std::string_view("client\0x", 8))) == error::control_character);
        CHECK(fails(ehlo("client\t")) == error::control_character);
        CHECK(fails(ehlo("client\x7f")) == error::control_character);
        // Not a domain or address literal.
        for (std::string_view bad :
             {"",        " ",       "a b",      "a_b.com",     "-a.com",
              "a-.com",  "a..b",    ".a",       "a.",          "caf\xc3\xa9.fr",
              "a.com ",  "<a.com>", "[1.2.3]",  "[256.1.1.1]", "[IPv6:zz::1]",
              "[a.com]", "[]",      "[1.2.3.4", "1.2.3.4]",    "[IPv6:1.2.3.4]"}) {
            CAPTURE(bad);
            CHECK(fails(ehlo(bad)) == error::invalid_smtp_argument);
        }
        CHECK(fails(ehlo(repeat(64, 'a', ".com"))) == error::invalid_smtp_argument);
        std::string long_name;
        for (int i = 0; i < 64; ++i)
            long_name += "abc.";
        long_name += "com"; // 259
        CHECK(fails(ehlo(long_name)) == error::invalid_smtp_argument);
    }

    TEST_CASE("MAIL FROM")
    {
        auto mail = [](const address& a, mail_parameters p = {}) {
            return format([&](std::string& o) { return format_mail_from(o, a, p); });
        };
        CHECK(ok(mail(addr("alice@example.com"))) == "MAIL FROM:<alice@example.com>\r\n");
        CHECK(ok(mail(address{})) == "MAIL FROM:<>\r\n"); // the null reverse-path
        CHECK(ok(mail(addr("\"john doe\"@example.com"))) ==
              "MAIL FROM:<\"john doe\"@example.com>\r\n");

        mail_parameters p;
        p.size = 12345;
        p.body = body_type::eight_bit_mime;
        p.smtputf8 = true;
        p.ret = dsn_ret::headers;
        p.envid = "QQ314159";
        CHECK(ok(mail(addr("a@example.com"), p)) ==
              "MAIL FROM:<a@example.com> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS "
              "ENVID=QQ314159\r\n");
        p = {};
        p.body = body_type::seven_bit;
        p.ret = dsn_ret::full;
        CHECK(ok(mail(address{}, p)) == "MAIL FROM:<> BODY=7BIT RET=FULL\r\n");
        p = {};
        p.body = body_type::binary_mime;
        p.size = 0;
        CHECK(ok(mail(addr("a@b.example"), p)) ==
              "MAIL FROM:<a@b.example> SIZE=0 BODY=BINARYMIME\r\n");

        // ENVID is xtext (RFC 3461 §4): '+', '=', space and controls as +XX.
        p = {};
        p.envid = "a+b=c d";
        CHECK(ok(mail(address{}, p)) == "MAIL FROM:<> ENVID=a+2Bb+3Dc+20d\r\n");
        p.envid = repeat(100, 'x');
        CHECK(ok(mail(address{}, p)).size() == 12 + 7 + 100 + 2);
        p.envid = repeat(101, 'x');
        CHECK(fails(mail(address{}, p)) == error::invalid_smtp_argument);
        p.envid = repeat(34, '+'); // 102 once encoded
        CHECK(fails(mail(address{}, p)) == error::invalid_smtp_argument);
        p.envid = "id\r\nRCPT TO:<victim@example.com>";
        CHECK(fails(mail(address{}, p)) == error::control_character);
        p.envid = std::string("id\0x", 4);
        CHECK(fails(mail(address{}, p)) == error::control_character);
        p.envid = "caf\xc3\xa9";
        CHECK(fails(mail(address{}, p)) == error::invalid_smtp_argument);

        // A non-ASCII reverse-path needs SMTPUTF8 (RFC 6531 §3.4).
        const address utf8 = addr("j\xc3\xb6rg@example.com");
        CHECK(fails(mail(utf8)) == error::invalid_smtp_argument);
        p = {};
        p.smtputf8 = true;
        CHECK(ok(mail(utf8, p)) == "MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8\r\n");

        // Angle brackets inside a quoted local part are legal, but a lenient server could end
        // the path there and read the rest as parameters.
        auto quoted = address::parse("\"a>b\"@example.com");
        REQUIRE(quoted);
        CHECK(fails(mail(*quoted)) == error::invalid_smtp_argument);
        auto quoted2 = address::parse("\"<x>\"@example.com");
        REQUIRE(quoted2);
        CHECK(fails(mail(*quoted2)) == error::invalid_smtp_argument);
    }

    TEST_CASE("RCPT TO")
    {
        auto rcpt = [](const address& a, rcpt_parameters p = {}) {
            return format([&](std::string& o) { return format_rcpt_to(o, a, p); });
        };
        CHECK(ok(rcpt(addr("bob@example.org"))) == "RCPT TO:<bob@example.org>\r\n");
        CHECK(ok(rcpt(addr("bob@[192.0.2.7]"))) == "RCPT TO:<bob@[192.0.2.7]>\r\n");
        CHECK(fails(rcpt(address{})) == error::invalid_address);

        rcpt_parameters p;
        p.notify = dsn_notify::success | dsn_notify::failure;
        CHECK(ok(rcpt(addr("b@example.org"), p)) ==
              "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE\r\n");
        p.notify = dsn_notify::delay | dsn_notify::failure | dsn_notify::success;
        CHECK(ok(rcpt(addr("b@example.org"), p)) ==
              "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE,DELAY\r\n");
        p.notify = dsn_notify::delay;
        CHECK(ok(rcpt(addr("b@example.org"), p)) == "RCPT TO:<b@example.org> NOTIFY=DELAY\r\n");
        p.notify = dsn_notify::never;
        CHECK(ok(rcpt(addr("b@example.org"), p)) == "RCPT TO:<b@example.org> NOTIFY=NEVER\r\n");
        p.notify = dsn_notify::never | dsn_notify::success; // RFC 3461 §4.1: NEVER alone
        CHECK(fails(rcpt(addr("b@example.org"), p)) == error::invalid_smtp_argument);

        p = {};
        p.orcpt = "Bob+Smith=x@example.org";
        CHECK(ok(rcpt(addr("b@example.org"), p)) ==
              "RCPT TO:<b@example.org> ORCPT=rfc822;Bob+2BSmith+3Dx@example.org\r\n");
        p.notify = dsn_notify::failure;
        CHECK(ok(rcpt(addr("b@example.org"), p)) == "RCPT TO:<b@example.org> NOTIFY=FAILURE "
                                                    "ORCPT=rfc822;Bob+2BSmith+3Dx@example.org\r\n");
        p.orcpt = "b@example.org\r\nDATA";
        CHECK(fails(rcpt(addr("b@example.org"), p)) == error::control_character);
        p.orcpt = "b@example.org\n";
        CHECK(fails(rcpt(addr("b@example.org"), p)) == error::control_character);
        p.orcpt = "j\xc3\xb6rg@example.org";
        CHECK(fails(rcpt(addr("b@example.org"), p)) == error::invalid_smtp_argument);
        p.orcpt = repeat(493, 'x'); // "rfc822;" + 493 = 500
        CHECK_FALSE(rcpt(addr("b@example.org"), p).first);
        p.orcpt = repeat(494, 'x');
        CHECK(fails(rcpt(addr("b@example.org"), p)) == error::invalid_smtp_argument);

        auto quoted = address::parse("\"a>b\"@example.com");
        REQUIRE(quoted);
        CHECK(fails(rcpt(*quoted)) == error::invalid_smtp_argument);
    }

    TEST_CASE("commands without arguments, BDAT")
    {
        std::string out;
        format_rset(out);
        format_noop(out);
        format_quit(out);
        format_data(out);
        format_starttls(out);
        CHECK(out == "RSET\r\nNOOP\r\nQUIT\r\nDATA\r\nSTARTTLS\r\n");
        out.clear();
        format_bdat(out, 0, true);
        format_bdat(out, 86, false);
        format_bdat(out, 18446744073709551615ull, true);
        CHECK(out == "BDAT 0 LAST\r\nBDAT 86\r\nBDAT 18446744073709551615 LAST\r\n");
    }

    TEST_CASE("AUTH")
    {
        auto auth = [](std::string_view mech, std::optional<std::string_view> ir) {
            return format([&](std::string& o) { return format_auth(o, mech, ir); });
        };
        // RFC 4954 §4.1 example: "test" NUL "test" NUL "1234".
        CHECK(ok(auth("PLAIN", std::string_view("test\0test\0"
                                                "1234",
                                                14))) == "AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=\r\n");
        CHECK(ok(auth("PLAIN", std::nullopt)) == "AUTH PLAIN\r\n");
        CHECK(ok(auth("EXTERNAL", std::string_view())) == "AUTH EXTERNAL =\r\n");
        CHECK(ok(auth("SCRAM-SHA-256", std::nullopt)) == "AUTH SCRAM-SHA-256\r\n");
        CHECK(ok(auth("X_Y-1", std::nullopt)) == "AUTH X_Y-1\r\n");

        CHECK(fails(auth("PLAIN\r\nMAIL FROM:<>", std::nullopt)) == error::control_character);
        CHECK(fails(auth("plain", std::nullopt)) == error::invalid_smtp_argument);
        CHECK(fails(auth("", std::nullopt)) == error::invalid_smtp_argument);
        CHECK(fails(auth("PLAIN X", std::nullopt)) == error::invalid_smtp_argument);
        CHECK(fails(auth("ABCDEFGHIJKLMNOPQRSTU", std::nullopt)) == error::invalid_smtp_argument);

        // RFC 4954 §4: the line with its initial response stays within 512 octets.
        // "AUTH XOAUTH2 " is 13, CRLF 2: 497 octets of base64 fit, i.e. 372 raw (496 chars).
        CHECK(auth_initial_response_fits("XOAUTH2", 372));
        CHECK_FALSE(auth_initial_response_fits("XOAUTH2", 373));
        const std::string big(372, 'x');
        CHECK(ok(auth("XOAUTH2", std::string_view(big))).size() == 13 + 496 + 2);
        const std::string bigger(373, 'x');
        CHECK(fails(auth("XOAUTH2", std::string_view(bigger))) == error::invalid_smtp_argument);

        std::string out;
        format_auth_response(out, "tim b913a602c7eda7a495b4e6e7334d3890");
        format_auth_response(out, "");
        format_auth_response(out, std::string_view("\0", 1));
        format_auth_cancel(out);
        CHECK(out == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n\r\nAA==\r\n*\r\n");
    }

    TEST_CASE("xtext")
    {
        auto x = [](std::string_view in) {
            std::string out;
            xtext_append(out, in);
            return out;
        };
        CHECK(x("") == "");
        CHECK(x("simple") == "simple");
        CHECK(x("!~") == "!~");
        CHECK(x("+") == "+2B");
        CHECK(x("=") == "+3D");
        CHECK(x(" ") == "+20");
        CHECK(x("\r\n") == "+0D+0A");
        CHECK(x(std::string_view("\0", 1)) == "+00");
        CHECK(x("\x7f\xff") == "+7F+FF");
        CHECK(x("a+b@example.com") == "a+2Bb@example.com");
    }
}
