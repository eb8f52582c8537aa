// A service that uses Asio header-only with its own io_context and coroutines, and Beast's
// HTTP parser, beside mailroom in the same program: an HTTP request (parsed with Beast from
// bytes, as a web handler would receive them) asks for a mail to be sent; a timer and the
// send share the io_context.
//
//     beast_app HOST PORT       exits 0 when the message was accepted
#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
namespace http = boost::beast::http;

static asio::awaitable<int> serve(mailroom::mailer& m, std::string request)
{
    http::request_parser<http::string_body> parser;
    parser.eager(true); // the body too, in the same put()
    boost::system::error_code ec;
    parser.put(asio::buffer(request), ec);
    if (ec || !parser.is_done()) {
        std::printf("HTTP parse failed: %s\n", ec.message().c_str());
        co_return 1;
    }
    const auto& req = parser.get();

    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(10));
    co_await t.async_wait(asio::use_awaitable);

    mailroom::mime::message_builder b;
    b.from("app@example.com")
        .to(std::string(req["X-Mail-To"]))
        .subject(std::string(req["X-Mail-Subject"]))
        .text(req.body());
    auto msg = b.build_or_throw();
    auto [sec, report] = co_await m.async_send(msg, asio::as_tuple(asio::use_awaitable));
    std::printf("send: %s, outcome %d\n", sec ? sec.message().c_str() : "ok",
                static_cast<int>(report.delivery.outcome));
    co_await m.async_shutdown(asio::use_awaitable);
    co_return sec || report.delivery.outcome != mailroom::smtp::outcome::delivered ? 1 : 0;
}

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: beast_app HOST PORT\n");
        return 2;
    }
    asio::io_context ctx;
    mailroom::mailer_options mo;
    mailroom::smtp::client_options server;
    server.host = argv[1];
    server.port = static_cast<std::uint16_t>(std::atoi(argv[2]));
    server.tls.mode = mailroom::smtp::tls_mode::none;
    mo.providers.push_back({.name = "local", .server = server});
    mailroom::mailer m(ctx.get_executor(), std::move(mo));

    std::string request = "POST /notify HTTP/1.1\r\nHost: app\r\n"
                          "X-Mail-To: ops@example.net\r\n"
                          "X-Mail-Subject: beast and mailroom in one program\r\n"
                          "Content-Length: 21\r\n\r\n"
                          "Hello from a handler\n";
    int status = 1;
    asio::co_spawn(ctx, serve(m, std::move(request)),
                   [&](std::exception_ptr e, int s) { status = e ? 1 : s; });
    ctx.run();
    return status;
}
