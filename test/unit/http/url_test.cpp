// http::url::parse and to_string, and http::encode_form (lib/http/exchange.cpp): the URL forms
// accepted, each refused one with the field the diagnostics name, and the WHATWG
// application/x-www-form-urlencoded serializer's vectors.

#include <mailroom/http/client.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace mailroom;

namespace {

http::url parse_ok(std::string_view text)
{
    diagnostics diag;
    auto r = http::url::parse(text, diag);
    INFO(text, " -> ", diag.to_string());
    REQUIRE(r.has_value());
    CHECK(diag.to_string().empty());
    return *r;
}

// The field a bad URL is blamed on ("" if it parsed).
std::string bad_field(std::string_view text)
{
    diagnostics diag;
    auto r = http::url::parse(text, diag);
    if (r.has_value())
        return "";
    CHECK(r.error() == error::invalid_url);
    CHECK(r.error() == condition::invalid_input);
    CHECK_FALSE(diag.detail.empty());
    return diag.field;
}

} // namespace

TEST_SUITE("http.url")
{
    TEST_CASE("https URLs, default and explicit ports, path and query")
    {
        const http::url a = parse_ok("https://oauth2.googleapis.com/token");
        CHECK(a.tls);
        CHECK(a.host == "oauth2.googleapis.com");
        CHECK(a.port == 443);
        CHECK(a.target == "/token");
        CHECK(a.to_string() == "https://oauth2.googleapis.com/token");

        const http::url b = parse_ok("HTTPS://Login.Example.COM:8443/a/b?c=d&e=%20f");
        CHECK(b.host == "login.example.com");
        CHECK(b.port == 8443);
        CHECK(b.target == "/a/b?c=d&e=%20f");
        CHECK(b.to_string() == "https://login.example.com:8443/a/b?c=d&e=%20f");

        CHECK(parse_ok("https://h").target == "/");
        CHECK(parse_ok("https://h?x=1").target == "/?x=1");
        CHECK(parse_ok("https://h:443/").to_string() == "https://h/");
        CHECK(parse_ok("https://h:/x").port == 443);
        CHECK(parse_ok("https://192.0.2.1:65535/t").port == 65535);
    }

    TEST_CASE("IPv6 literals: brackets in the URL, none in host")
    {
        const http::url u = parse_ok("https://[::1]:8443/x");
        CHECK(u.host == "::1");
        CHECK(u.port == 8443);
        CHECK(u.target == "/x");
        CHECK(u.to_string() == "https://[::1]:8443/x");
        CHECK(parse_ok("https://[2001:DB8::1]/").host == "2001:db8::1");
        CHECK(parse_ok("http://[::1]/t").port == 80);
    }

    TEST_CASE("plain http only to loopback")
    {
        CHECK(parse_ok("http://127.0.0.1:8080/token").port == 8080);
        CHECK_FALSE(parse_ok("http://127.5.6.7/").tls);
        CHECK(parse_ok("http://localhost/").port == 80);
        CHECK(parse_ok("http://LOCALHOST/").host == "localhost");
        CHECK(parse_ok("http://[::1]/").to_string() == "http://[::1]/");
        CHECK(bad_field("http://example.com/token") == "scheme");
        CHECK(bad_field("http://192.0.2.1/token") == "scheme");
        CHECK(bad_field("http://[2001:db8::1]/") == "scheme");
        CHECK(bad_field("http://[::ffff:127.0.0.1]/") == "scheme");
        CHECK(bad_field("http://localhost.example.com/") == "scheme");
    }

    TEST_CASE("refused: schemes, hosts, ports")
    {
        CHECK(bad_field("ftp://h/") == "scheme");
        CHECK(bad_field("https:/h/") == "scheme");
        CHECK(bad_field("//h/") == "scheme");
        CHECK(bad_field("") == "scheme");
        CHECK(bad_field("https://") == "host");
        CHECK(bad_field("https:///x") == "host");
        CHECK(bad_field("https://:443/x") == "host");
        CHECK(bad_field("https://h%41/") == "host");
        CHECK(bad_field("https://[::1/") == "host");
        CHECK(bad_field("https://[::1]x/") == "host");
        CHECK(bad_field("https://[not-v6]/") == "host");
        CHECK(bad_field("https://[fe80::1%25eth0]/") == "host");
        CHECK(bad_field("https://h:0/") == "port");
        CHECK(bad_field("https://h:65536/") == "port");
        CHECK(bad_field("https://h:-1/") == "port");
        CHECK(bad_field("https://h:8x/") == "port");
        CHECK(bad_field("https://h:443:1/") == "port");
    }

    TEST_CASE("refused: user info, fragments, spaces, controls, bytes beyond ASCII")
    {
        CHECK(bad_field("https://user:secret@h/token") == "url");
        CHECK(bad_field("https://user@h/") == "url");
        CHECK(bad_field("https://h/token#frag") == "url");
        CHECK(bad_field("https://h/#") == "url");
        CHECK(bad_field("https://h/a b") == "url");
        CHECK(bad_field(" https://h/") == "url");
        CHECK(bad_field("https://h/a\r\nHost: evil") == "url");
        CHECK(bad_field("https://h/\t") == "url");
        CHECK(bad_field(std::string_view("https://h/\0x", 12)) == "url");
        CHECK(bad_field("https://h/\x7f") == "url");
        CHECK(bad_field("https://b\xC3\xBC"
                        "cher.example/") == "url");
    }

    TEST_CASE("encode_form: the WHATWG urlencoded serializer")
    {
        using F = http::form;
        CHECK(http::encode_form({}) == "");
        CHECK(http::encode_form(F{{"a", "b"}}) == "a=b");
        CHECK(http::encode_form(F{{"a", "b"}, {"c", "d"}}) == "a=b&c=d");
        CHECK(http::encode_form(F{{"a", ""}}) == "a=");
        CHECK(http::encode_form(F{{"", "b"}}) == "=b");
        CHECK(http::encode_form(F{{"", ""}}) == "=");
        CHECK(http::encode_form(F{{"a", ""}, {"", ""}}) == "a=&=");
        CHECK(http::encode_form(F{{"a b", "b c"}}) == "a+b=b+c");
        CHECK(http::encode_form(F{{"a", "b+c"}}) == "a=b%2Bc");
        CHECK(http::encode_form(F{{"a=b", "c"}}) == "a%3Db=c");
        CHECK(http::encode_form(F{{"a", "b&c"}}) == "a=b%26c");
        CHECK(http::encode_form(F{{"a", "b\nc"}}) == "a=b%0Ac");
        CHECK(http::encode_form(F{{"a", "b\rc"}}) == "a=b%0Dc");
        CHECK(http::encode_form(F{{"a", "b\r\nc"}}) == "a=b%0D%0Ac");
        CHECK(http::encode_form(F{{"a", std::string("\0", 1)}}) == "a=%00");
        CHECK(http::encode_form(F{{"a", "\xF0\x9F\x92\xA9"}}) == "a=%F0%9F%92%A9");
        CHECK(http::encode_form(F{{"a", "\xC3\xA9"}}) == "a=%C3%A9");
        CHECK(http::encode_form(F{{"*-._", "~!'()"}}) == "*-._=%7E%21%27%28%29");
        CHECK(http::encode_form(F{{"AZaz09", "/:?#[]@"}}) == "AZaz09=%2F%3A%3F%23%5B%5D%40");
        CHECK(http::encode_form(F{{"a", "%"}}) == "a=%25");
    }
}
