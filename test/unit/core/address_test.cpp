#include <mailroom/address.hpp>

#include <doctest/doctest.h>

using mailroom::address;
using mailroom::diagnostics;
using mailroom::error;
using mailroom::mailbox;

namespace {

error parse_error(std::string_view text)
{
    auto r = mailbox::parse(text);
    REQUIRE_MESSAGE(!r, "expected a failure for '" << text << "'");
    return static_cast<error>(r.error().value());
}

// Built with append rather than operator+: GCC 12 warns falsely (-Warray-bounds) on
// std::string(n, c) + "literal".
std::string repeat(std::size_t n, char c, std::string_view tail = {})
{
    std::string s(n, c);
    s.append(tail);
    return s;
}

} // namespace

TEST_SUITE("address")
{
    TEST_CASE("plain addr-spec")
    {
        auto a = address::parse("user.name+tag@example.com");
        REQUIRE(a);
        CHECK(a->local_part() == "user.name+tag");
        CHECK(a->domain() == "example.com");
        CHECK(a->str() == "user.name+tag@example.com");
        CHECK_FALSE(a->needs_smtputf8());
        CHECK(address::parse("  x@y.org  ").has_value());
    }

    TEST_CASE("name-addr forms")
    {
        auto m = mailbox::parse("Alice Example <alice@example.com>");
        REQUIRE(m);
        CHECK(m->display_name() == "Alice Example");
        CHECK(m->address().str() == "alice@example.com");

        m = mailbox::parse(R"("Doe, Jane \"JJ\"" <jane@example.com>)");
        REQUIRE(m);
        CHECK(m->display_name() == R"(Doe, Jane "JJ")");

        m = mailbox::parse("John Q. Public <jqp@example.com>");
        REQUIRE(m);
        CHECK(m->display_name() == "John Q. Public");

        m = mailbox::parse("Jörg Müller <joerg@example.com>");
        REQUIRE(m);
        CHECK(m->display_name() == "Jörg Müller");

        m = mailbox::parse("<bare@example.com>");
        REQUIRE(m);
        CHECK(m->display_name().empty());
    }

    TEST_CASE("comments around an address are allowed and dropped")
    {
        auto m = mailbox::parse("alice@example.com (Alice (the first))");
        REQUIRE(m);
        CHECK(m->address().str() == "alice@example.com");
        m = mailbox::parse("(team) Bob <bob@example.com>");
        REQUIRE(m);
        CHECK(m->display_name() == "Bob");
    }

    TEST_CASE("quoted local parts")
    {
        auto a = address::parse(R"("john doe"@example.com)");
        REQUIRE(a);
        CHECK(a->local_part() == R"("john doe")");
        // Quotes that aren't needed are dropped (RFC 5321 §4.1.2).
        a = address::parse(R"("john.doe"@example.com)");
        REQUIRE(a);
        CHECK(a->local_part() == "john.doe");
        a = address::parse(R"("a\"b"@example.com)");
        REQUIRE(a);
        CHECK(a->local_part() == R"("a\"b")");
    }

    TEST_CASE("international domains become A-labels; UTF-8 local parts need SMTPUTF8")
    {
        auto a = address::parse("info@bücher.de");
        REQUIRE(a);
        CHECK(a->domain() == "bücher.de");
        CHECK(a->domain_ascii() == "xn--bcher-kva.de");
        CHECK(a->str() == "info@xn--bcher-kva.de");
        CHECK_FALSE(a->needs_smtputf8());

        a = address::parse("用户@例子.广告");
        REQUIRE(a);
        CHECK(a->needs_smtputf8());
        CHECK(a->domain_ascii() == "xn--fsqu00a.xn--4rr70v");
    }

    TEST_CASE("address literals")
    {
        CHECK(address::parse("root@[192.0.2.1]").has_value());
        CHECK(address::parse("root@[IPv6:2001:db8::1]").has_value());
        CHECK(address::parse("root@[300.0.0.1]").error() == error::invalid_domain);
        CHECK(address::parse("root@[example.com]").error() == error::invalid_domain);
    }

    TEST_CASE("hostile and malformed input is rejected, never reinterpreted")
    {
        CHECK(parse_error("a@b@c") == error::invalid_address);
        CHECK(parse_error("user@good.com(x)evil.com") == error::invalid_address);
        CHECK(parse_error("user@good.com evil.com") == error::invalid_address);
        CHECK(parse_error("user@good.com\r\nRCPT TO:<x@evil.com>") == error::control_character);
        CHECK(parse_error("user@good.com\n") == error::control_character);
        CHECK(parse_error(std::string("user@good.com\0x", 15)) == error::control_character);
        CHECK(parse_error("user\t@good.com") == error::control_character);
        CHECK(parse_error("Name\x7f <a@b.com>") == error::control_character);
        CHECK(parse_error("a@b.com, c@d.com") == error::invalid_address);
        CHECK(parse_error("group: a@b.com;") == error::invalid_address);
        CHECK(parse_error("<a@b.com> trailing") == error::invalid_address);
        CHECK(parse_error("<a@b.com") == error::invalid_address);
        CHECK(parse_error("A <a@b.com> <c@d.com>") == error::invalid_address);
        CHECK(parse_error("Doe, Jane <a@b.com>") == error::invalid_address);
        CHECK(parse_error("\"unterminated <a@b.com>") == error::invalid_address);
        CHECK(parse_error("(unterminated a@b.com") == error::invalid_address);
        CHECK(parse_error("a..b@c.com") == error::invalid_address);
        CHECK(parse_error(".a@c.com") == error::invalid_address);
        CHECK(parse_error("a.@c.com") == error::invalid_address);
        CHECK(parse_error("a @ c.com") == error::invalid_address);
        CHECK(parse_error("@c.com") == error::invalid_address);
        CHECK(parse_error("a@") == error::invalid_domain);
        CHECK(parse_error("") == error::invalid_address);
        CHECK(parse_error("a@-bad.com") == error::invalid_domain);
        CHECK(parse_error("a@bad-.com") == error::invalid_domain);
        CHECK(parse_error("a@b..com") == error::invalid_domain);
        CHECK(parse_error("a@under_score.com") == error::invalid_domain);
        CHECK(parse_error("\xff@example.com") == error::invalid_utf8);
        CHECK(parse_error("\xc0\xaf@example.com") == error::invalid_utf8); // overlong '/'
        CHECK(parse_error("a@\xed\xa0\x80.com") == error::invalid_utf8);   // surrogate
    }

    TEST_CASE("RFC 5321 length limits")
    {
        const std::string local64(64, 'a');
        CHECK(address::parse(local64 + "@example.com").has_value());
        CHECK(address::parse(local64 + "a@example.com").error() == error::address_too_long);
        const std::string label63(63, 'b');
        CHECK(address::parse("a@" + label63 + ".com").has_value());
        CHECK(address::parse("a@" + label63 + "b.com").error() == error::invalid_domain);
        std::string domain;
        while (domain.size() < 260)
            domain += label63 + ".";
        domain += "com";
        CHECK(address::parse("a@" + domain).error() == error::address_too_long);
    }

    TEST_CASE("diagnostics say what was wrong")
    {
        diagnostics d;
        auto r = address::parse("a@b@c", d);
        REQUIRE_FALSE(r);
        CHECK(d.detail == "more than one '@'");
        CHECK(r.error() == mailroom::condition::invalid_input);
    }

    TEST_CASE("adversarial input fails fast")
    {
        // 1 MiB of nesting and quotes: rejected by size at once; nesting past the cap within
        // the size limit is rejected without recursion.
        CHECK_FALSE(mailbox::parse(std::string(1 << 20, '(')));
        CHECK_FALSE(mailbox::parse(std::string(1 << 20, '"')));
        CHECK_FALSE(mailbox::parse(repeat(4000, '(', "a@b.com")));
        CHECK(parse_error(repeat(20, '(', "x") + repeat(20, ')', "a@b.com")) ==
              error::invalid_address);
        std::string many_quotes;
        while (many_quotes.size() < 4000)
            many_quotes += "\"x\" ";
        CHECK_FALSE(mailbox::parse(many_quotes + "a@b.com"));
    }
}
