// The http client against a real HTTPS server (https_server.py, Python's http.server over
// ssl) on 127.0.0.1, with the test PKI: what arrives, certificate checks, each deadline, the
// size cap, redirects, responses that aren't HTTP or are cut short, close().

#include "https_server.hpp"

#include <mailroom/http/client.hpp>
#include <mailroom/version.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <optional>

using namespace std::chrono_literals;
using namespace mailroom;
using mailroom::test::https_server;
using steady = std::chrono::steady_clock;
namespace asio = boost::asio;

namespace {

struct outcome {
    error_code ec;
    http::response r;
    steady::duration took{};
};

http::options trusting()
{
    http::options o;
    o.tls.ca_file = mailroom::test::http_test_pki() + "/ca.pem";
    return o;
}

http::url parse(const std::string& text)
{
    diagnostics d;
    auto u = http::url::parse(text, d);
    INFO(text, ": ", d.to_string());
    REQUIRE(u.has_value());
    return *u;
}

// One request on a client of its own; `during` runs once the request has started.
outcome post(const std::string& url, http::options o = trusting(),
             http::form f = {{"grant_type", "client_credentials"}},
             std::function<void(http::client&, asio::io_context&)> during = {})
{
    asio::io_context io;
    http::client c(io.get_executor(), std::move(o));
    std::optional<outcome> out;
    const auto start = steady::now();
    c.async_post_form(parse(url), std::move(f), [&](error_code ec, http::response r) {
        out = outcome{ec, std::move(r), steady::now() - start};
    });
    CHECK_FALSE(out.has_value()); // never inline
    if (during)
        during(c, io);
    io.run();
    REQUIRE(out.has_value());
    INFO(url, ": ", out->ec.message(), " / ", out->r.diag.to_string());
    return std::move(*out);
}

bool has(const std::string& body, const std::string& part)
{
    return body.find(part) != std::string::npos;
}

} // namespace

TEST_SUITE("http.client")
{
    TEST_CASE("a form posted to a token endpoint arrives intact, with the request's fields")
    {
        https_server s;
        const http::form f{{"grant_type", "refresh_token"},
                           {"refresh_token", "1//a b+c&d=e/\xC3\xBC~*"},
                           {"client_id", "id.apps.example"},
                           {"empty", ""}};
        const outcome o = post(s.url("/token?x=1"), trusting(), f);
        REQUIRE_FALSE(o.ec);
        CHECK(o.r.status == 200);
        CHECK(o.r.content_type == "application/json; charset=utf-8");
        CHECK(o.r.retry_after == 0);
        CHECK(o.r.diag.to_string().empty());
        const std::string& b = o.r.body;
        INFO(b);
        CHECK(has(b, R"("form": [["grant_type", "refresh_token"], ["refresh_token", )"
                     R"("1//a b+c&d=e/\u00fc~*"], ["client_id", "id.apps.example"], )"
                     R"(["empty", ""]])"));
        CHECK(has(b, R"("raw": "grant_type=refresh_token&refresh_token=1%2F%2Fa+b%2Bc%26d%3De)"
                     R"(%2F%C3%BC%7E*&client_id=id.apps.example&empty=")"));
        CHECK(has(b, R"("request_line": "POST /token?x=1 HTTP/1.1")"));
        CHECK(has(b, R"("host": "localhost:)" + std::to_string(s.port()) + "\""));
        CHECK(has(b, R"("user-agent": "mailroom/)" MAILROOM_VERSION_STRING "\""));
        CHECK(has(b, R"("accept": "application/json")"));
        CHECK(has(b, R"("content-type": "application/x-www-form-urlencoded")"));
        CHECK(has(b, R"("connection": "close")"));
        CHECK(has(b, R"("sni": "localhost")"));
    }

    TEST_CASE("an IP literal is verified against the certificate's IP address, without SNI")
    {
        https_server s;
        const outcome o = post(s.url("/token", "127.0.0.1"));
        REQUIRE_FALSE(o.ec);
        CHECK(o.r.status == 200);
        CHECK(has(o.r.body, R"("sni": null)"));
    }

    TEST_CASE("a certificate from another CA is rejected")
    {
        https_server s("self-signed");
        const outcome o = post(s.url("/token"));
        CHECK(o.ec == error::certificate_rejected);
        CHECK(o.r.diag.field == "TLS handshake");
        CHECK(has(o.r.diag.detail, "localhost"));
        CHECK(o.r.status == 0);
    }

    TEST_CASE("a certificate for another name is rejected, by name and by address")
    {
        https_server s("wrong-name");
        CHECK(post(s.url("/token", "127.0.0.1")).ec == error::certificate_rejected);
        CHECK(post(s.url("/token")).ec == error::certificate_rejected);
    }

    TEST_CASE("verify = false accepts any certificate")
    {
        https_server s("wrong-name");
        http::options o = trusting();
        o.tls.verify = false;
        const outcome x = post(s.url("/token", "127.0.0.1"), o);
        REQUIRE_FALSE(x.ec);
        CHECK(x.r.status == 200);
        https_server other("self-signed");
        http::options none;
        none.tls.verify = false; // the system store, unused
        CHECK(post(other.url("/token"), none).r.status == 200);
    }

    TEST_CASE("a CA file that doesn't exist is tls_configuration_invalid, before connecting")
    {
        http::options o;
        o.tls.ca_file = "/nonexistent/mailroom/ca.pem";
        const outcome x = post("https://127.0.0.1:9/token", o);
        CHECK(x.ec == error::tls_configuration_invalid);
        CHECK(x.r.diag.field == "TLS set-up");
    }

    TEST_CASE("the system store is the default; it doesn't trust the test CA")
    {
        https_server s;
        CHECK(post(s.url("/token"), http::options{}).ec == error::certificate_rejected);
    }

    TEST_CASE("connect deadline: a listener whose backlog is full")
    {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        a.listen(0);
        asio::ip::tcp::socket filler(io);
        filler.connect(a.local_endpoint()); // fills the accept queue; later SYNs are dropped
        http::options o = trusting();
        o.connect_timeout = 300ms;
        const outcome x =
            post("https://127.0.0.1:" + std::to_string(a.local_endpoint().port()) + "/token", o);
        CHECK(x.ec == error::connect_timeout);
        CHECK(x.r.diag.field.starts_with("connecting to 127.0.0.1:"));
        CHECK(x.took >= 250ms);
        CHECK(x.took < 5s);
    }

    TEST_CASE("handshake deadline: a server that never answers the ClientHello")
    {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        http::options o = trusting();
        o.tls_handshake_timeout = 300ms;
        const outcome x =
            post("https://127.0.0.1:" + std::to_string(a.local_endpoint().port()) + "/token", o);
        CHECK(x.ec == error::tls_handshake_timeout);
        CHECK(x.r.diag.field == "TLS handshake");
        CHECK(x.took < 5s);
    }

    TEST_CASE("response deadline: a server that answers late is http_timeout")
    {
        https_server s;
        http::options o = trusting();
        o.response_timeout = 300ms;
        const outcome x = post(s.url("/slow"), o);
        CHECK(x.ec == error::http_timeout);
        CHECK(x.ec == condition::timeout);
        CHECK(x.r.diag.field == "reading the response");
        CHECK(x.took < 5s);
    }

    TEST_CASE("a response over max_response_size is http_response_too_large")
    {
        https_server s;
        CHECK(post(s.url("/big")).ec == error::http_response_too_large);
        CHECK(post(s.url("/bighead")).ec == error::http_response_too_large);
        CHECK(post(s.url("/chunked"),
                   [] {
                       http::options o = trusting();
                       o.max_response_size = 64;
                       return o;
                   }())
                  .ec == error::http_response_too_large);
        http::options o = trusting();
        o.max_response_size = 200000;
        const outcome x = post(s.url("/big"), o);
        REQUIRE_FALSE(x.ec);
        CHECK(x.r.body.size() == 100000);
    }

    TEST_CASE("a redirect is refused, never followed")
    {
        https_server s;
        const outcome x = post(s.url("/redirect"));
        CHECK(x.ec == error::http_redirect_refused);
        CHECK(has(x.r.diag.detail, "302"));
        CHECK_FALSE(has(x.r.diag.detail, "elsewhere"));
    }

    TEST_CASE("a server that doesn't speak HTTP is http_protocol_error")
    {
        https_server s;
        const outcome x = post(s.url("/garbage"));
        CHECK(x.ec == error::http_protocol_error);
        CHECK(x.r.diag.field == "reading the response");
    }

    TEST_CASE("HTTPS to a plain HTTP server fails the handshake")
    {
        https_server s("");
        CHECK(post(s.url("/token")).ec == error::tls_handshake_failed);
    }

    TEST_CASE("bodies: chunked, to the close, after interim 1xx responses")
    {
        https_server s;
        const outcome c = post(s.url("/chunked"));
        REQUIRE_FALSE(c.ec);
        CHECK(c.r.body == R"({"access_token":"abc","expires_in":3600})");
        const outcome e = post(s.url("/eof"));
        REQUIRE_FALSE(e.ec);
        CHECK(e.r.body == "until the end");
        const outcome h = post(s.url("/early"));
        REQUIRE_FALSE(h.ec);
        CHECK(h.r.status == 200);
        CHECK(h.r.body == R"({"after":"hints"})");
    }

    TEST_CASE("a connection closed mid-body is connection_lost")
    {
        https_server s;
        const outcome x = post(s.url("/close"));
        CHECK(x.ec == error::connection_lost);
        CHECK(x.r.body.empty());
    }

    TEST_CASE("4xx and 5xx are responses; Retry-After in seconds")
    {
        https_server s;
        const outcome u = post(s.url("/503"));
        REQUIRE_FALSE(u.ec);
        CHECK(u.r.status == 503);
        CHECK(u.r.retry_after == 120);
        const outcome b = post(s.url("/400"));
        REQUIRE_FALSE(b.ec);
        CHECK(b.r.status == 400);
        CHECK(b.r.body == R"({"error":"invalid_grant"})");
    }

    TEST_CASE("plain http to a loopback address")
    {
        https_server s("");
        const outcome x = post(s.url("/token", "127.0.0.1", "http"));
        REQUIRE_FALSE(x.ec);
        CHECK(x.r.status == 200);
        CHECK(has(x.r.body, R"("host": "127.0.0.1:)" + std::to_string(s.port()) + "\""));
    }

    TEST_CASE("a refused connection names the step")
    {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        const auto port = a.local_endpoint().port();
        a.close();
        const outcome x = post("https://127.0.0.1:" + std::to_string(port) + "/token");
        CHECK(x.ec == asio::error::connection_refused);
        CHECK(x.r.diag.field == "connecting to 127.0.0.1:" + std::to_string(port));
    }

    TEST_CASE("close() aborts a request in flight: waiting for the response, and connecting")
    {
        https_server s;
        auto close_soon = [](http::client& c, asio::io_context& io) {
            auto t = std::make_shared<asio::steady_timer>(io, 300ms);
            t->async_wait([&c, t](error_code) { c.close(); });
        };
        const outcome x = post(s.url("/slow"), trusting(), {}, close_soon);
        CHECK(x.ec == asio::error::operation_aborted);
        CHECK(x.took < 5s);

        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        a.listen(0);
        asio::ip::tcp::socket filler(io);
        filler.connect(a.local_endpoint());
        const outcome y = post("https://127.0.0.1:" + std::to_string(a.local_endpoint().port()),
                               trusting(), {}, close_soon);
        CHECK(y.ec == asio::error::operation_aborted);
        CHECK(y.took < 5s);
    }

    TEST_CASE("requests run side by side on one client; terminal cancellation ends one")
    {
        https_server s;
        asio::io_context io;
        http::client c(io.get_executor(), trusting());
        asio::cancellation_signal sig;
        std::vector<std::pair<std::string, error_code>> got;
        auto record = [&](std::string what) {
            return [&got, what](error_code ec, http::response) {
                got.emplace_back(what, ec);
            };
        };
        c.async_post_form(parse(s.url("/slow")), {},
                          asio::bind_cancellation_slot(sig.slot(), record("slow")));
        c.async_post_form(parse(s.url("/token")), {}, record("token"));
        c.async_post_form(parse(s.url("/chunked")), {}, record("chunked"));
        asio::steady_timer t(io, 500ms);
        t.async_wait([&](error_code) { sig.emit(asio::cancellation_type::terminal); });
        const auto start = steady::now();
        io.run();
        CHECK(steady::now() - start < 5s);
        REQUIRE(got.size() == 3);
        CHECK(got[2].first == "slow");
        CHECK(got[2].second == asio::error::operation_aborted);
        CHECK_FALSE(got[0].second);
        CHECK_FALSE(got[1].second);
    }

    TEST_CASE("after close(), requests fail with operation_aborted, never inline")
    {
        asio::io_context io;
        http::client c(io.get_executor(), trusting());
        c.close();
        std::optional<error_code> got;
        c.async_post_form(parse("https://127.0.0.1:9/token"), {},
                          [&](error_code ec, http::response) { got = ec; });
        CHECK_FALSE(got.has_value());
        io.run();
        REQUIRE(got.has_value());
        CHECK(*got == asio::error::operation_aborted);
        CHECK(c.get_options().tls.ca_file == trusting().tls.ca_file);
    }

    TEST_CASE("the client's log has connecting and the status at debug, never a body")
    {
        https_server s;
        std::vector<std::string> lines;
        http::options o = trusting();
        o.log.level = log_level::trace;
        o.log.sink = [&](log_level l, std::string_view line) {
            CHECK(l == log_level::debug);
            lines.emplace_back(line);
        };
        const outcome x = post(s.url("/token"), o, {{"client_secret", "s3cr3t-value"}});
        REQUIRE_FALSE(x.ec);
        REQUIRE(lines.size() == 2);
        CHECK(has(lines[0], "connecting"));
        CHECK(has(lines[1], "status 200"));
        for (const auto& l : lines)
            CHECK_FALSE(has(l, "s3cr3t"));
    }
}
