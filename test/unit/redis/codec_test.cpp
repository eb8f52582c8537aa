// The Redis codec (lib/redis/codec.hpp) with no sockets: commands formatted by hiredis and
// read back by the decoder, replies fed whole, byte by byte and in odd pieces, nested arrays,
// nil, errors, protocol garbage, the caps, and the client's judgement of replies.

#include "redis/codec.hpp"

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace mailroom;
using mailroom::redis::reply;
using mailroom::redis::detail::decoder;
using mailroom::redis::detail::decoder_limits;
using type = reply::type;

namespace {

// Every reply in `bytes`, fed in pieces of `step` bytes; the decoder must end idle.
std::vector<reply> decode_all(decoder& d, std::string_view bytes, std::size_t step)
{
    std::vector<reply> out;
    for (std::size_t at = 0; at < bytes.size(); at += step) {
        REQUIRE(d.feed(bytes.substr(at, step)));
        while (auto r = d.next())
            out.push_back(std::move(*r));
        REQUIRE_FALSE(d.failed());
    }
    return out;
}

std::vector<reply> decode_all(std::string_view bytes, std::size_t step = 1 << 20)
{
    decoder d;
    auto out = decode_all(d, bytes, step);
    CHECK(d.buffered() == 0);
    return out;
}

// Feeds `bytes` and reads until an error; returns the error text ("" if none came).
std::string decode_error(std::string_view bytes, decoder_limits limits = {})
{
    decoder d(limits);
    d.feed(bytes);
    while (d.next()) {
    }
    return d.failed() ? d.error_text() : std::string();
}

} // namespace

TEST_SUITE("redis.codec")
{
    TEST_CASE("encode: a command is an array of bulk strings, binary-safe")
    {
        std::string out;
        REQUIRE_FALSE(redis::detail::encode({"SET", "k", "v"}, out));
        CHECK(out == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");

        out.clear();
        const std::string bin("a\0\r\nb", 5);
        REQUIRE_FALSE(redis::detail::encode({"SET", "", bin}, out));
        CHECK(out == std::string("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\0\r\nb\r\n", 30));

        // Appends: commands pipelined into one buffer.
        REQUIRE_FALSE(redis::detail::encode({"PING"}, out));
        CHECK(out.ends_with("*1\r\n$4\r\nPING\r\n"));
    }

    TEST_CASE("encode: no command at all is refused")
    {
        std::string out = "x";
        CHECK(redis::detail::encode({}, out) == boost::asio::error::invalid_argument);
        CHECK(out == "x");
    }

    TEST_CASE("round trip: the encoding of a command decodes as an array of its strings")
    {
        const std::vector<std::string> args{"EVALSHA", std::string(3000, 'x'), "1", "",
                                            std::string("\0\xff", 2)};
        std::string bytes;
        REQUIRE_FALSE(redis::detail::encode(args, bytes));
        for (std::size_t step : {std::size_t(1), std::size_t(7), bytes.size()}) {
            CAPTURE(step);
            auto replies = decode_all(bytes, step);
            REQUIRE(replies.size() == 1);
            const reply& r = replies[0];
            REQUIRE(r.kind == type::array);
            REQUIRE(r.elements.size() == args.size());
            for (std::size_t i = 0; i < args.size(); ++i) {
                CHECK(r.elements[i].kind == type::string);
                CHECK(r.elements[i].str == args[i]);
            }
        }
    }

    TEST_CASE("every reply type")
    {
        const std::string wire = "+OK\r\n"
                                 "-ERR wrong type\r\n"
                                 ":-42\r\n"
                                 "$5\r\nhello\r\n"
                                 "$0\r\n\r\n"
                                 "$-1\r\n"
                                 "*-1\r\n"
                                 "*0\r\n"
                                 ":9223372036854775807\r\n";
        for (std::size_t step : {std::size_t(1), std::size_t(2), std::size_t(5), wire.size()}) {
            CAPTURE(step);
            auto r = decode_all(wire, step);
            REQUIRE(r.size() == 9);
            CHECK(r[0].kind == type::status);
            CHECK(r[0].str == "OK");
            CHECK(r[1].kind == type::error);
            CHECK(r[1].str == "ERR wrong type");
            CHECK(r[1].is_error("ERR"));
            CHECK(r[2].kind == type::integer);
            CHECK(r[2].integer == -42);
            CHECK(r[3].kind == type::string);
            CHECK(r[3].str == "hello");
            CHECK(r[4].kind == type::string);
            CHECK(r[4].str.empty());
            CHECK(r[5].kind == type::nil);
            CHECK(r[6].kind == type::nil);
            CHECK(r[7].kind == type::array);
            CHECK(r[7].elements.empty());
            CHECK(r[8].integer == 9223372036854775807LL);
        }
    }

    TEST_CASE("nested arrays, with nil and errors inside")
    {
        const std::string wire = "*3\r\n"
                                 ":1\r\n"
                                 "*2\r\n$1\r\na\r\n*1\r\n$-1\r\n"
                                 "-NOSCRIPT no script\r\n";
        for (std::size_t step = 1; step <= wire.size(); ++step) {
            CAPTURE(step);
            auto r = decode_all(wire, step);
            REQUIRE(r.size() == 1);
            REQUIRE(r[0].elements.size() == 3);
            CHECK(r[0].elements[0].integer == 1);
            const reply& inner = r[0].elements[1];
            REQUIRE(inner.kind == type::array);
            REQUIRE(inner.elements.size() == 2);
            CHECK(inner.elements[0].str == "a");
            REQUIRE(inner.elements[1].elements.size() == 1);
            CHECK(inner.elements[1].elements[0].kind == type::nil);
            CHECK(r[0].elements[2].is_error("NOSCRIPT"));
        }
    }

    TEST_CASE("a partial reply waits for its end and keeps its bytes buffered")
    {
        decoder d;
        REQUIRE(d.feed("$10\r\n01234"));
        CHECK_FALSE(d.next());
        CHECK_FALSE(d.failed());
        CHECK(d.buffered() >= 5); // hiredis may have consumed the header
        REQUIRE(d.feed("56789\r"));
        CHECK_FALSE(d.next());
        REQUIRE(d.feed("\n:1"));
        auto r = d.next();
        REQUIRE(r);
        CHECK(r->str == "0123456789");
        CHECK_FALSE(d.next());
        REQUIRE(d.feed("\r\n"));
        r = d.next();
        REQUIRE(r);
        CHECK(r->integer == 1);
        CHECK(d.buffered() == 0);
    }

    TEST_CASE("protocol garbage is an error, and the decoder stays failed")
    {
        CHECK_FALSE(decode_error("hello\r\n").empty());
        CHECK_FALSE(decode_error("HTTP/1.1 400 Bad Request\r\n").empty());
        CHECK_FALSE(decode_error(":12a\r\n").empty());
        CHECK_FALSE(decode_error("$-7\r\n").empty());
        CHECK_FALSE(decode_error("*-5\r\n").empty());
        CHECK_FALSE(decode_error("*3000000000\r\n").empty());
        CHECK_FALSE(decode_error("+OK\r\n?\r\n").empty());

        decoder d;
        d.feed("+OK\r\n!oops\r\n+OK\r\n");
        auto first = d.next();
        REQUIRE(first); // what came before the garbage is still good
        CHECK(first->str == "OK");
        CHECK_FALSE(d.next());
        CHECK(d.failed());
        CHECK_FALSE(d.feed("+OK\r\n"));
        CHECK_FALSE(d.next());

        d.reset();
        CHECK_FALSE(d.failed());
        REQUIRE(d.feed("+PONG\r\n"));
        auto r = d.next();
        REQUIRE(r);
        CHECK(r->str == "PONG");
    }

    TEST_CASE("caps: reply bytes, announced or buffered")
    {
        const decoder_limits small{.max_reply_bytes = 100, .max_elements = 10, .max_depth = 3};
        // Within the cap.
        CHECK(decode_error("$100\r\n" + std::string(100, 'x') + "\r\n", small).empty());
        // A bulk string over it, whole or still arriving.
        CHECK(decode_error("$101\r\n" + std::string(101, 'x') + "\r\n", small).find("100 bytes") !=
              std::string::npos);
        CHECK_FALSE(decode_error("$999999999\r\n" + std::string(150, 'x'), small).empty());
        // A status line that never ends.
        CHECK_FALSE(decode_error("+" + std::string(200, 'x'), small).empty());
        // Strings of one array together.
        std::string arr = "*3\r\n";
        for (int i = 0; i < 3; ++i)
            arr += "$40\r\n" + std::string(40, 'y') + "\r\n";
        CHECK_FALSE(decode_error(arr, small).empty());
        // Many small replies pipelined are each within the cap.
        std::string many;
        for (int i = 0; i < 50; ++i)
            many += "$10\r\n0123456789\r\n";
        decoder d(small);
        CHECK(decode_all(d, many, many.size()).size() == 50);
    }

    TEST_CASE("caps: elements and nesting")
    {
        const decoder_limits small{.max_reply_bytes = 1000, .max_elements = 10, .max_depth = 3};
        CHECK(decode_error("*10\r\n", small).empty()); // incomplete, but allowed
        CHECK(decode_error("*11\r\n", small).find("10 elements") != std::string::npos);
        CHECK_FALSE(decode_error("*6\r\n*5\r\n", small).empty()); // 11 together
        CHECK(decode_error("*1\r\n*1\r\n*1\r\n:1\r\n", small).empty());
        CHECK(decode_error("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", small).find("nested") !=
              std::string::npos);
        // The default: 7 levels, hiredis's own limit.
        std::string deep;
        for (int i = 0; i < 7; ++i)
            deep += "*1\r\n";
        CHECK(decode_all(deep + ":1\r\n").size() == 1);
        CHECK_FALSE(decode_error("*1\r\n" + deep + ":1\r\n").empty());
        // The counts start again with each reply.
        decoder d(small);
        CHECK(decode_all(d,
                         "*8\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n*8\r\n:1\r\n:1\r\n"
                         ":1\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n",
                         3)
                  .size() == 2);
    }

    TEST_CASE("judging replies: NOAUTH, WRONGPASS and NOPERM are auth failures")
    {
        using redis::detail::judge_reply;
        auto err = [](std::string s) {
            return reply{.kind = type::error, .str = std::move(s)};
        };
        CHECK(judge_reply(err("NOAUTH Authentication required.")) == error::redis_auth_failed);
        CHECK(judge_reply(err("WRONGPASS invalid username-password pair")) ==
              error::redis_auth_failed);
        CHECK(judge_reply(err("NOPERM this user has no permissions")) == error::redis_auth_failed);
        CHECK_FALSE(judge_reply(err("ERR unknown command")));
        CHECK_FALSE(judge_reply(err("NOSCRIPT No matching script")));
        CHECK_FALSE(judge_reply(reply{.kind = type::status, .str = "NOAUTH"}));
    }

    TEST_CASE("judging the replies to AUTH and SELECT")
    {
        using redis::detail::judge_prelude;
        auto err = [](std::string s) {
            return reply{.kind = type::error, .str = std::move(s)};
        };
        const reply ok{.kind = type::status, .str = "OK"};
        CHECK_FALSE(judge_prelude(ok, true));
        CHECK_FALSE(judge_prelude(ok, false));
        CHECK(judge_prelude(err("WRONGPASS x"), true) == error::redis_auth_failed);
        CHECK(judge_prelude(err("ERR AUTH <password> called without any password configured"),
                            true) == error::redis_auth_failed);
        CHECK(judge_prelude(err("NOAUTH Authentication required."), false) ==
              error::redis_auth_failed);
        CHECK(judge_prelude(err("ERR DB index is out of range"), false) ==
              error::invalid_redis_options);
        CHECK(judge_prelude(err("ERR something else"), false) == error::redis_error_reply);
        CHECK(judge_prelude(reply{.kind = type::integer, .integer = 1}, false) ==
              error::redis_error_reply);
    }

    TEST_CASE("the prelude: AUTH [user] password, then SELECT")
    {
        using redis::detail::prelude_commands;
        using cmds = std::vector<std::vector<std::string>>;
        CHECK(prelude_commands({}).empty());
        CHECK(prelude_commands({.password = "p"}) == cmds{{"AUTH", "p"}});
        CHECK(prelude_commands({.username = "u", .password = "p", .db = 3}) ==
              cmds{{"AUTH", "u", "p"}, {"SELECT", "3"}});
        CHECK(prelude_commands({.db = 1}) == cmds{{"SELECT", "1"}});
    }

    TEST_CASE("server text for logs: no controls, no password, bounded")
    {
        using redis::detail::sanitize;
        CHECK(sanitize("ERR bad\r\nthing") == "ERR bad??thing");
        CHECK(sanitize("WRONGPASS for s3cret and s3cret", "s3cret") == "WRONGPASS for *** and ***");
        CHECK(sanitize(std::string(300, 'a')).size() == 203);
        CHECK(sanitize("aaa", "a") == "*********"); // the stars aren't searched again
    }
}
