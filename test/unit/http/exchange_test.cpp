// The exchange without I/O (lib/http/exchange.hpp): the request as written, responses fed in
// pieces (one byte at a time, all at once), interim 1xx responses, the size cap, redirects,
// what isn't HTTP, connections closed early, and Retry-After.

#include "http/exchange.hpp"

#include <mailroom/version.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace mailroom;
using mailroom::http::detail::exchange;
using state = exchange::state;

namespace {

http::url parse_ok(std::string_view text)
{
    diagnostics diag;
    auto r = http::url::parse(text, diag);
    REQUIRE(r.has_value());
    return *r;
}

exchange make(std::size_t max = 64 * 1024)
{
    return exchange(parse_ok("https://login.example.com/token"), {{"a", "b c"}}, max);
}

// Feeds `bytes` in pieces of `step`, then the close if `eof`.
state feed(exchange& x, std::string_view bytes, std::size_t step, bool eof = false)
{
    for (std::size_t k = 0; k < bytes.size() && x.current() == state::reading; k += step)
        x.on_read(bytes.substr(k, step));
    if (eof)
        x.on_eof(true);
    return x.current();
}

} // namespace

TEST_SUITE("http.exchange")
{
    TEST_CASE("the request as written")
    {
        const exchange x(parse_ok("https://login.example.com:8443/o/token?v=2"),
                         {{"grant_type", "refresh_token"}, {"refresh_token", "a/b c"}}, 1024);
        const std::string body = "grant_type=refresh_token&refresh_token=a%2Fb+c";
        CHECK(x.request_bytes() == "POST /o/token?v=2 HTTP/1.1\r\n"
                                   "Host: login.example.com:8443\r\n"
                                   "User-Agent: mailroom/" MAILROOM_VERSION_STRING "\r\n"
                                   "Accept: application/json\r\n"
                                   "Content-Type: application/x-www-form-urlencoded\r\n"
                                   "Connection: close\r\n"
                                   "Content-Length: " +
                                       std::to_string(body.size()) + "\r\n\r\n" + body);
        CHECK(http::detail::host_field(parse_ok("https://[::1]/")) == "[::1]");
        CHECK(http::detail::host_field(parse_ok("http://[::1]:8080/")) == "[::1]:8080");
        CHECK(http::detail::host_field(parse_ok("http://localhost:80/")) == "localhost");
    }

    TEST_CASE("a response in any pieces")
    {
        const std::string r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 18\r\n\r\n{\"access_token\":1}";
        for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, r.size()}) {
            CAPTURE(step);
            exchange x = make();
            CHECK(feed(x, r, step) == state::done);
            const http::response resp = x.take();
            CHECK(resp.status == 200);
            CHECK(resp.content_type == "application/json");
            CHECK(resp.body == "{\"access_token\":1}");
            CHECK(resp.retry_after == 0);
        }
    }

    TEST_CASE("chunked, to the close, after 1xx")
    {
        exchange c = make();
        CHECK(feed(c,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
                   "2\r\nde\r\n0\r\n\r\n",
                   5) == state::done);
        CHECK(c.take().body == "abcde");

        exchange e = make();
        CHECK(feed(e, "HTTP/1.1 200 OK\r\n\r\nall of it", 4) == state::reading);
        CHECK(e.on_eof(true) == state::done);
        CHECK(e.take().body == "all of it");

        exchange t = make(); // the same, but the TLS peer closed without close_notify
        CHECK(feed(t, "HTTP/1.1 200 OK\r\n\r\nall of it", 4) == state::reading);
        CHECK(t.on_eof(false) == state::failed);
        CHECK(t.error() == error::connection_lost);

        exchange h = make();
        CHECK(feed(h,
                   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <x>\r\n\r\n"
                   "HTTP/1.1 204 No Content\r\n\r\n",
                   3) == state::done);
        CHECK(h.take().status == 204);

        exchange u = make();
        CHECK(feed(u, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", 100) ==
              state::failed);
        CHECK(u.error() == error::http_protocol_error);
    }

    TEST_CASE("4xx, 5xx and Retry-After")
    {
        exchange x = make();
        CHECK(feed(x, "HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n", 9) ==
              state::done);
        const http::response r = x.take();
        CHECK(r.status == 503);
        CHECK(r.retry_after == 120);
        using http::detail::retry_after_seconds;
        CHECK(retry_after_seconds(" 30 ") == 30);
        CHECK(retry_after_seconds("0") == 0);
        CHECK(retry_after_seconds("99999999999") == 4294967295u);
        CHECK(retry_after_seconds("Fri, 31 Dec 1999 23:59:59 GMT") == 0);
        CHECK(retry_after_seconds("-5") == 0);
        CHECK(retry_after_seconds("1.5") == 0);
        CHECK(retry_after_seconds("") == 0);
    }

    TEST_CASE("redirects are refused")
    {
        for (const char* status : {"301", "302", "303", "307", "308", "300", "304"}) {
            exchange x = make();
            CHECK(feed(x,
                       std::string("HTTP/1.1 ") + status +
                           " Moved\r\nLocation: https://evil.example/?code=secret\r\n"
                           "Content-Length: 0\r\n\r\n",
                       11) == state::failed);
            CHECK(x.error() == error::http_redirect_refused);
            const http::response r = x.take();
            CHECK(r.diag.detail.find(status) != std::string::npos);
            CHECK(r.diag.detail.find("secret") == std::string::npos);
        }
    }

    TEST_CASE("the size cap counts the head and the body")
    {
        exchange big = make(100);
        CHECK(feed(big, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 1000) == state::failed);
        CHECK(big.error() == error::http_response_too_large);

        exchange head = make(100);
        CHECK(feed(head, "HTTP/1.1 200 OK\r\nX: " + std::string(200, 'x'), 10) == state::failed);
        CHECK(head.error() == error::http_response_too_large);

        exchange chunked = make(100);
        std::string r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (int k = 0; k < 20; ++k)
            r += "5\r\n01234\r\n";
        CHECK(feed(chunked, r + "0\r\n\r\n", 16) == state::failed);
        CHECK(chunked.error() == error::http_response_too_large);

        exchange eof = make(100);
        CHECK(feed(eof, "HTTP/1.1 200 OK\r\n\r\n" + std::string(200, 'y'), 50) == state::failed);
        CHECK(eof.error() == error::http_response_too_large);

        const std::string exact = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        exchange fits = make(exact.size());
        CHECK(feed(fits, exact, 1) == state::done);
    }

    TEST_CASE("what isn't HTTP fails at once")
    {
        for (const char* text :
             {"SSH-2.0-OpenSSH\r\n", "220 smtp.example ESMTP\r\n", "H", "HTTP/1.1 2x0 OK\r\n\r\n",
              "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
            CAPTURE(text);
            exchange x = make();
            feed(x, text, 1);
            if (std::string_view(text) == "H") {
                CHECK(x.current() == state::reading);
                continue;
            }
            CHECK(x.current() == state::failed);
            CHECK(x.error() == error::http_protocol_error);
            CHECK(x.take().diag.field == "reading the response");
        }
    }

    TEST_CASE("a connection closed early is connection_lost")
    {
        exchange none = make();
        CHECK(none.on_eof(true) == state::failed);
        CHECK(none.error() == error::connection_lost);

        exchange head = make();
        CHECK(feed(head, "HTTP/1.1 200 OK\r\nContent-Le", 3, true) == state::failed);
        CHECK(head.error() == error::connection_lost);

        exchange body = make();
        CHECK(feed(body, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123", 3, true) ==
              state::failed);
        CHECK(body.error() == error::connection_lost);

        exchange chunk = make();
        CHECK(feed(chunk, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 3,
                   true) == state::failed);
        CHECK(chunk.error() == error::connection_lost);
    }

    TEST_CASE("after the end, more bytes and the close change nothing")
    {
        exchange x = make();
        CHECK(feed(x, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 100) == state::done);
        CHECK(x.on_eof(false) == state::done);
        CHECK(x.take().body == "ok");
    }
}
