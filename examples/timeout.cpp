// A send with an overall time limit, made with Asio's cancellation: the send and a timer run as
// a parallel group, and whichever finishes first cancels the other. mailroom's per-phase
// timeouts (client_options::timeouts) bound each SMTP step, and retry_options::deadline stops
// new attempts; this bounds the whole send, waits for a connection and retries included.
//
//     example_timeout HOST PORT [--timeout-ms N] [--expect-timeout]
//
// Plaintext (tls_mode::none), for a local test server. The time limit is N milliseconds
// (default 5000). Exits 0 when the send was delivered in time; with --expect-timeout (for a
// server that never answers), exits 0 when the limit cancelled the send instead.

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string_view>

namespace asio = boost::asio;
using namespace mailroom;
using namespace std::chrono;

namespace {

enum class ending { delivered, failed, timed_out };

asio::awaitable<ending> send_with_timeout(mailer* m, mime::message msg, milliseconds limit)
{
    asio::steady_timer timer(co_await asio::this_coro::executor, limit);
    const auto start = steady_clock::now();

    // Both start now; wait_for_one() cancels the other as soon as one completes, and the group
    // completes once both have. Every mailroom operation supports terminal cancellation: a send
    // still waiting for a connection or a token sends nothing; one under way closes its
    // connection. (Asio 1.81 has no cancel_after; awaitable_operators' `||` does the same, but
    // doesn't say how the losing operation ended.) `asio::deferred` is passed explicitly: the
    // group hands back each operation's error_code, where the default token would turn it into
    // an exception_ptr (with_diagnostics).
    auto [order, send_ec, report, timer_ec] =
        co_await asio::experimental::make_parallel_group(
            m->async_send(std::move(msg), asio::deferred), timer.async_wait(asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::deferred);

    const auto ms = duration_cast<milliseconds>(steady_clock::now() - start).count();
    ending how = ending::failed;
    if (order[0] == 0) {
        std::cout << "the send finished first, after " << ms
                  << " ms: " << (send_ec ? send_ec.message() : "delivered") << "\n";
        if (!send_ec && report.delivery.outcome == smtp::outcome::delivered)
            how = ending::delivered;
    } else {
        // The timer fired first and the send was cancelled: a cancelled send completes with
        // operation_aborted (or error::delivery_status_unknown if its final dot was written).
        std::cout << "timed out after " << ms << " ms; the send ended with: " << send_ec.message()
                  << "\n";
        if (send_ec == asio::error::operation_aborted)
            how = ending::timed_out;
    }

    // Nothing more to send: QUIT the pooled connections (one still waiting for a server's
    // greeting is closed at once).
    auto [shutdown_ec] = co_await m->async_shutdown(asio::as_tuple(asio::deferred));
    if (shutdown_ec)
        std::cerr << "shutdown: " << shutdown_ec.message() << "\n";
    co_return how;
}

} // namespace

int main(int argc, char** argv)
{
    int port = argc >= 3 ? std::atoi(argv[2]) : 0;
    bool expect_timeout = false;
    long limit_ms = 5000;
    for (int i = 3; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--expect-timeout")
            expect_timeout = true;
        else if (arg == "--timeout-ms" && i + 1 < argc)
            limit_ms = std::atol(argv[++i]);
        else
            port = 0;
    }
    if (port <= 0 || port > 65535 || limit_ms <= 0) {
        std::cerr << "usage: " << argv[0] << " HOST PORT [--timeout-ms N] [--expect-timeout]\n";
        return 2;
    }

    provider_options local;
    local.name = "local";
    local.server.host = argv[1];
    local.server.port = static_cast<std::uint16_t>(port);
    local.server.tls.mode = smtp::tls_mode::none; // plaintext: only for a local test server
    mailer_options mo;
    mo.providers.push_back(std::move(local));

    mime::message_builder b;
    b.from("Example Sender <sender@example.com>")
        .to("Jane Doe <jane@example.org>")
        .subject("timeout example")
        .text("This message was sent within a time limit.\n");

    asio::io_context io;
    mailer m(io.get_executor(), std::move(mo));
    ending how = ending::failed;
    asio::co_spawn(io, send_with_timeout(&m, b.build_or_throw(), milliseconds(limit_ms)),
                   [&](std::exception_ptr e, ending r) {
                       try {
                           if (e)
                               std::rethrow_exception(e);
                           how = r;
                       } catch (const std::exception& x) {
                           std::cerr << "error: " << x.what() << "\n";
                       }
                   });
    io.run();

    if (expect_timeout) {
        if (how == ending::timed_out)
            std::cout << "timed out as expected\n";
        else if (how == ending::delivered)
            std::cout << "delivered, but a timeout was expected\n";
        return how == ending::timed_out ? 0 : 1;
    }
    return how == ending::delivered ? 0 : 1;
}
