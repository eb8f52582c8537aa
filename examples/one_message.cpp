// One message over one SMTP connection: build it with mime::message_builder, then connect,
// send and quit with an smtp::client, and print the server's report.
//
//     example_one_message HOST PORT
//
// Plaintext (tls_mode::none), for a local test server such as `mailroom sink`. Exits 0 when
// every recipient was accepted, 1 otherwise.

#include <mailroom/mime/message_builder.hpp>
#include <mailroom/smtp/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>

namespace asio = boost::asio;
using namespace mailroom;

namespace {

// Parameters by value: a coroutine must not hold references to its caller's objects.
asio::awaitable<int> send_one(smtp::client_options options, mime::message msg)
{
    smtp::client c(co_await asio::this_coro::executor, std::move(options));

    // as_tuple turns failures into codes instead of exceptions, so the diagnostics can be shown.
    auto [ec] = co_await c.async_connect(asio::as_tuple(asio::deferred));
    if (ec) {
        std::cerr << "connect: " << ec.message() << " (" << c.last_diagnostics().to_string()
                  << ")\n";
        co_return 1;
    }
    std::cout << "connected: " << c.server_capabilities().greeting << "\n";

    auto [send_ec, report] = co_await c.async_send(msg, asio::as_tuple(asio::deferred));
    std::cout << "message " << report.message_id << ": " << smtp::to_string(report.outcome) << "\n";
    for (const auto& r : report.recipients)
        std::cout << "  RCPT " << r.recipient << ": " << r.response.to_string() << "\n";
    if (report.final_reply)
        std::cout << "  final reply: " << report.final_reply->to_string() << "\n";
    if (!report.queue_id.empty())
        std::cout << "  queue id: " << report.queue_id << "\n";
    if (send_ec)
        std::cerr << "send: " << send_ec.message() << " (" << report.diag.to_string() << ")\n";

    // A failed send may have closed the connection (timeout, 421, lost); otherwise say goodbye.
    if (c.is_open()) {
        auto [quit_ec] = co_await c.async_quit(asio::as_tuple(asio::deferred));
        if (quit_ec)
            std::cerr << "quit: " << quit_ec.message() << "\n";
    }
    co_return send_ec || report.outcome != smtp::outcome::delivered ? 1 : 0;
}

} // namespace

int main(int argc, char** argv)
{
    const int port = argc == 3 ? std::atoi(argv[2]) : 0;
    if (port <= 0 || port > 65535) {
        std::cerr << "usage: " << argv[0] << " HOST PORT\n";
        return 2;
    }

    // Every check happens in build(): a bad address or a control character in a header is an
    // error here, with the field named in diag, and nothing is sent.
    mime::message_builder b;
    b.from("Example Sender <sender@example.com>")
        .to("Jane Doe <jane@example.org>")
        .subject("Grüße from one_message")
        .text("Hello Jane,\n\nthis message came over one SMTP connection.\n");
    diagnostics diag;
    result<mime::message> msg = b.build(diag);
    if (!msg) {
        std::cerr << "build: " << msg.error().message() << " (" << diag.to_string() << ")\n";
        return 1;
    }

    smtp::client_options o;
    o.host = argv[1];
    o.port = static_cast<std::uint16_t>(port);
    o.tls.mode = smtp::tls_mode::none; // plaintext: only for a local test server
    o.helo_name = "client.example";

    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, send_one(std::move(o), std::move(*msg)), [&](std::exception_ptr e, int r) {
        try {
            if (e)
                std::rethrow_exception(e);
            rc = r;
        } catch (const std::exception& x) {
            std::cerr << "error: " << x.what() << "\n";
        }
    });
    io.run();
    return rc;
}
