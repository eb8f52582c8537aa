// redis::options::from_url and the option checks (lib/redis/options.cpp, codec.cpp): the URL
// forms, percent-decoding, IPv6 literals, and each way a URL or an option can be wrong,
// with the field the diagnostics name. Also reply::is_error and to_string(state).

#include "redis/codec.hpp"

#include <mailroom/redis/client.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace std::chrono_literals;
using namespace mailroom;
using mailroom::redis::options;

namespace {

options parse_ok(std::string_view url)
{
    diagnostics diag;
    auto r = options::from_url(url, diag);
    INFO(url, " -> ", diag.to_string());
    REQUIRE(r.has_value());
    return *r;
}

// The field a bad URL is blamed on ("" if it parsed).
std::string bad_field(std::string_view url)
{
    diagnostics diag;
    auto r = options::from_url(url, diag);
    if (r.has_value())
        return "";
    CHECK(r.error() == error::invalid_redis_options);
    CHECK(r.error() == condition::invalid_input);
    return diag.field;
}

} // namespace

TEST_SUITE("redis.options")
{
    TEST_CASE("the simplest URLs take the defaults")
    {
        const options o = parse_ok("redis://localhost");
        CHECK(o.host == "localhost");
        CHECK(o.port == 6379);
        CHECK(o.db == 0);
        CHECK_FALSE(o.tls);
        CHECK(o.username.empty());
        CHECK(o.password.empty());

        const options s = parse_ok("rediss://cache.example.com");
        CHECK(s.tls);
        CHECK(s.port == 6379);
        CHECK(s.tls_settings.verify);
        CHECK(parse_ok("REDIS://h").host == "h");
    }

    TEST_CASE("host, port and database")
    {
        const options o = parse_ok("redis://10.1.2.3:6380/7");
        CHECK(o.host == "10.1.2.3");
        CHECK(o.port == 6380);
        CHECK(o.db == 7);
        CHECK(parse_ok("redis://h:1/").db == 0);
        CHECK(parse_ok("redis://h:65535").port == 65535);
        CHECK(parse_ok("redis://h/15").db == 15);
        CHECK(parse_ok("redis://redis_master.svc").host == "redis_master.svc");
    }

    TEST_CASE("IPv6 literals go in brackets and come out without")
    {
        const options o = parse_ok("redis://[::1]:7000/2");
        CHECK(o.host == "::1");
        CHECK(o.port == 7000);
        CHECK(o.db == 2);
        CHECK(parse_ok("rediss://[2001:db8::10]").host == "2001:db8::10");
        CHECK(redis::detail::endpoint_name(o) == "[::1]:7000");
        CHECK(redis::detail::endpoint_name(parse_ok("redis://h:1")) == "h:1");
    }

    TEST_CASE("user and password, percent-decoded")
    {
        const options a = parse_ok("redis://:s3cret@h");
        CHECK(a.username.empty());
        CHECK(a.password == "s3cret");

        const options b = parse_ok("redis://app:pa%3Ass%40w%2Frd%25@h:1/3");
        CHECK(b.username == "app");
        CHECK(b.password == "pa:ss@w/rd%");
        CHECK(b.db == 3);

        // A raw '@' or ':' in the password: the userinfo ends at the last '@', the user at the
        // first ':'.
        const options c = parse_ok("redis://u%20x:a:b@c@h");
        CHECK(c.username == "u x");
        CHECK(c.password == "a:b@c");
        CHECK(c.host == "h");

        // An empty password field: nothing to AUTH with.
        CHECK(parse_ok("redis://:@h").password.empty());
    }

    TEST_CASE("bad URLs name the part at fault")
    {
        CHECK(bad_field("localhost:6379") == "scheme");
        CHECK(bad_field("http://h") == "scheme");
        CHECK(bad_field("redis:/h") == "scheme");
        CHECK(bad_field("redis://") == "host");
        CHECK(bad_field("redis://:6379") == "host");
        CHECK(bad_field("redis://a b") == "host");
        CHECK(bad_field("redis://h\r\n") == "host");
        CHECK(bad_field("redis://[::1") == "host");
        CHECK(bad_field("redis://[::1]x") == "host");
        CHECK(bad_field("redis://[nope]") == "host");
        CHECK(bad_field("redis://h:") == "port");
        CHECK(bad_field("redis://[::1]:") == "port");
        CHECK(bad_field("redis://h:0") == "port");
        CHECK(bad_field("redis://h:65536") == "port");
        CHECK(bad_field("redis://h:99999999999999999999") == "port");
        CHECK(bad_field("redis://h:-1") == "port");
        CHECK(bad_field("redis://h:6379x") == "port");
        CHECK(bad_field("redis://h/x") == "db");
        CHECK(bad_field("redis://h/-1") == "db");
        CHECK(bad_field("redis://h/1/2") == "db");
        CHECK(bad_field("redis://h/99999999999") == "db");
        CHECK(bad_field("redis://h/2147483648") == "db");
        CHECK(bad_field("redis://h?db=1") == "url");
        CHECK(bad_field("redis://h#x") == "url");
        CHECK(bad_field("redis://u%zz:p@h") == "username");
        CHECK(bad_field("redis://user@h") == "password"); // a user needs a password
        CHECK(bad_field("redis://h/2147483647").empty());
    }

    TEST_CASE("a bad password is reported without its text")
    {
        diagnostics diag;
        auto r = options::from_url("redis://u:hunter2%G@h", diag);
        REQUIRE_FALSE(r.has_value());
        CHECK(diag.field == "password");
        CHECK(diag.to_string().find("hunter2") == std::string::npos);
    }

    TEST_CASE("option ranges")
    {
        auto field = [](options o) {
            diagnostics diag;
            const error_code ec = redis::detail::validate(o, diag);
            if (ec)
                CHECK(ec == error::invalid_redis_options);
            return ec ? diag.field : std::string();
        };
        CHECK(field(options{}).empty());
        CHECK(field(options{.host = ""}) == "host");
        CHECK(field(options{.port = 0}) == "port");
        CHECK(field(options{.username = "u"}) == "password");
        CHECK(field(options{.username = "u", .password = "p"}).empty());
        CHECK(field(options{.connect_timeout = 0s}) == "connect_timeout");
        CHECK(field(options{.request_timeout = -1s}) == "request_timeout");
        CHECK(field(options{.reconnect_initial = 0s}) == "reconnect_initial");
        CHECK(field(options{.reconnect_initial = 2s, .reconnect_max = 1s}) == "reconnect_max");
    }

    TEST_CASE("reply::is_error compares the first word")
    {
        redis::reply r{.kind = redis::reply::type::error, .str = "WRONGPASS invalid password"};
        CHECK(r.is_error());
        CHECK(r.is_error("WRONGPASS"));
        CHECK_FALSE(r.is_error("WRONG"));
        CHECK_FALSE(r.is_error(""));
        redis::reply s{.kind = redis::reply::type::status, .str = "WRONGPASS"};
        CHECK_FALSE(s.is_error("WRONGPASS"));
        CHECK(redis::reply{.kind = redis::reply::type::error, .str = "NOSCRIPT"}.is_error(
            "NOSCRIPT"));
    }

    TEST_CASE("state names")
    {
        using redis::state;
        CHECK(std::string(redis::to_string(state::idle)) == "idle");
        CHECK(std::string(redis::to_string(state::connecting)) == "connecting");
        CHECK(std::string(redis::to_string(state::connected)) == "connected");
        CHECK(std::string(redis::to_string(state::reconnecting)) == "reconnecting");
        CHECK(std::string(redis::to_string(state::closed)) == "closed");
    }
}
