#include "smtp/reply_parser.hpp"

#include <mailroom/smtp/capabilities.hpp>
#include <mailroom/smtp/reply.hpp>

#include <doctest/doctest.h>

using mailroom::error_code;
using mailroom::smtp::capabilities;
using mailroom::smtp::reply;
using mailroom::smtp::detail::reply_parser;

namespace {

// From wire bytes, through the reply parser, as the client will do it.
capabilities parse_wire(std::string_view wire)
{
    reply_parser p;
    error_code ec;
    const std::size_t n = p.feed(wire, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(n == wire.size());
    REQUIRE(p.has_reply());
    return capabilities::parse(p.take());
}

capabilities parse_lines(std::vector<std::string> lines)
{
    reply r;
    r.code = 250;
    r.lines = std::move(lines);
    return capabilities::parse(r);
}

using strings = std::vector<std::string>;

} // namespace

TEST_SUITE("smtp.capabilities")
{
    TEST_CASE("a Postfix submission server")
    {
        auto caps = parse_wire("250-mail.example.com\r\n"
                               "250-PIPELINING\r\n"
                               "250-SIZE 10240000\r\n"
                               "250-VRFY\r\n"
                               "250-ETRN\r\n"
                               "250-STARTTLS\r\n"
                               "250-AUTH PLAIN LOGIN\r\n"
                               "250-AUTH=PLAIN LOGIN\r\n"
                               "250-ENHANCEDSTATUSCODES\r\n"
                               "250-8BITMIME\r\n"
                               "250-DSN\r\n"
                               "250-SMTPUTF8\r\n"
                               "250 CHUNKING\r\n");
        CHECK(caps.greeting == "mail.example.com");
        CHECK(caps.pipelining);
        CHECK(caps.size == 10240000u);
        CHECK(caps.starttls);
        CHECK(caps.enhanced_status_codes);
        CHECK(caps.eight_bit_mime);
        CHECK(caps.dsn);
        CHECK(caps.smtputf8);
        CHECK(caps.chunking);
        CHECK_FALSE(caps.binary_mime);
        CHECK(caps.auth == strings{"PLAIN", "LOGIN"}); // both forms, each mechanism once
        CHECK(caps.has("VRFY"));
        CHECK(caps.has("etrn"));
        CHECK_FALSE(caps.has("XCLIENT"));
        CHECK(caps.extensions.size() == 12);
        CHECK(caps.has_auth("plain"));
        CHECK_FALSE(caps.has_auth("CRAM-MD5"));
    }

    TEST_CASE("nothing advertised")
    {
        auto caps = parse_wire("250 mx.example.org says hi\r\n");
        CHECK(caps.greeting == "mx.example.org says hi");
        CHECK(caps == [] {
            capabilities c;
            c.greeting = "mx.example.org says hi";
            return c;
        }());
        CHECK_FALSE(caps.size);
        CHECK(capabilities::parse(reply{}) == capabilities{});
    }

    TEST_CASE("keywords are case-insensitive")
    {
        auto caps = parse_lines({"x", "pipelining", "8bitmime", "SmtpUtf8", "dsn",
                                 "EnhancedStatusCodes", "chunking", "binarymime", "starttls",
                                 "size 42", "auth cram-md5 scram-sha-256"});
        CHECK(caps.pipelining);
        CHECK(caps.eight_bit_mime);
        CHECK(caps.smtputf8);
        CHECK(caps.dsn);
        CHECK(caps.enhanced_status_codes);
        CHECK(caps.chunking);
        CHECK(caps.binary_mime);
        CHECK(caps.starttls);
        CHECK(caps.size == 42u);
        CHECK(caps.auth == strings{"CRAM-MD5", "SCRAM-SHA-256"});
        REQUIRE(caps.find("Size"));
        CHECK(caps.find("Size")->keyword == "SIZE");
        CHECK(caps.find("size")->params == strings{"42"});
    }

    TEST_CASE("SIZE")
    {
        CHECK(parse_lines({"x", "SIZE"}).size == 0u);   // advertised, no limit given
        CHECK(parse_lines({"x", "SIZE 0"}).size == 0u); // RFC 1870: 0 means no fixed limit
        CHECK(parse_lines({"x", "SIZE 35882577"}).size == 35882577u);
        CHECK(parse_lines({"x", "SIZE 18446744073709551615"}).size == UINT64_MAX);
        CHECK(parse_lines({"x", "SIZE 18446744073709551616"}).size == 0u);    // overflow
        CHECK(parse_lines({"x", "SIZE 99999999999999999999999"}).size == 0u); // overflow
        CHECK(parse_lines({"x", "SIZE abc"}).size == 0u);
        CHECK(parse_lines({"x", "SIZE -1"}).size == 0u);
        CHECK(parse_lines({"x", "SIZE 12k"}).size == 0u);
        CHECK_FALSE(parse_lines({"x", "PIPELINING"}).size);
    }

    TEST_CASE("AUTH in both forms")
    {
        CHECK(parse_lines({"x", "AUTH=LOGIN"}).auth == strings{"LOGIN"});
        CHECK(parse_lines({"x", "AUTH=LOGIN PLAIN"}).auth == strings{"LOGIN", "PLAIN"});
        CHECK(parse_lines({"x", "auth=login plain"}).auth == strings{"LOGIN", "PLAIN"});
        CHECK(parse_lines({"x", "AUTH LOGIN", "AUTH PLAIN LOGIN XOAUTH2"}).auth ==
              strings{"LOGIN", "PLAIN", "XOAUTH2"});
        CHECK(parse_lines({"x", "AUTH"}).auth.empty());
        // Mechanism names that aren't RFC 4422 sasl-mech are dropped.
        CHECK(parse_lines({"x", "AUTH PLAIN THIS-NAME-IS-FAR-TOO-LONG X.Y GSSAPI"}).auth ==
              strings{"PLAIN", "GSSAPI"});
        // The old form alone still means AUTH is there, through the mechanism list.
        auto caps = parse_lines({"x", "AUTH=PLAIN"});
        CHECK(caps.has_auth("PLAIN"));
        CHECK(caps.has("AUTH="));
    }

    TEST_CASE("unknown extensions are kept")
    {
        auto caps = parse_lines(
            {"x", "XCLIENT NAME ADDR PROTO HELO", "X-EXPS GSSAPI NTLM", "DELIVERBY 300", "XFOO"});
        REQUIRE(caps.extensions.size() == 4);
        CHECK(caps.extensions[0] ==
              capabilities::extension{"XCLIENT", {"NAME", "ADDR", "PROTO", "HELO"}});
        CHECK(caps.extensions[1] == capabilities::extension{"X-EXPS", {"GSSAPI", "NTLM"}});
        CHECK(caps.find("deliverby")->params == strings{"300"});
        CHECK(caps.has("XFOO"));
    }

    TEST_CASE("white space between words is tolerated")
    {
        auto caps = parse_lines({"x", "AUTH  PLAIN   LOGIN ", " SIZE 100", "DSN\t"});
        CHECK(caps.auth == strings{"PLAIN", "LOGIN"});
        CHECK(caps.size == 100u);
        CHECK(caps.dsn);
    }

    TEST_CASE("lines that aren't extensions are ignored")
    {
        auto caps = parse_lines({"x", "", "-BAD", "BAD_KEYWORD", "B@D", "\xc3\xa9T\xc3\xa9",
                                 "FOO bar\xc3\xa9", "8BITMIME"});
        CHECK(caps.extensions.size() == 1);
        CHECK(caps.eight_bit_mime);
    }
}
