// The mailer with plain completion handlers, no coroutines: every async_send gets a callback.
// The io_context runs on four threads, so the callbacks are bound to one strand: they then
// never run at the same time and may share plain counters without locks. The last callback
// starts async_shutdown, whose own callback prints the snapshot's counts.
//
//     example_callbacks HOST PORT [COUNT]      (COUNT messages, default 20)
//
// Plaintext (tls_mode::none), for a local test server such as `mailroom sink`. Exits 0 when
// every message was delivered to every recipient, 1 otherwise.

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace mailroom;

namespace {

const char* kind(error_code ec)
{
    if (ec == condition::transient)
        return "transient";
    if (ec == condition::permanent)
        return "permanent";
    if (ec == error::delivery_status_unknown)
        return "unknown";
    return "other";
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 3 || argc > 4) {
        std::cerr << "usage: " << argv[0] << " HOST PORT [COUNT]\n";
        return 2;
    }
    const int port = std::atoi(argv[2]);
    const int count = argc == 4 ? std::atoi(argv[3]) : 20;
    if (port <= 0 || port > 65535 || count <= 0) {
        std::cerr << "usage: " << argv[0] << " HOST PORT [COUNT]\n";
        return 2;
    }

    provider_options local;
    local.name = "local";
    local.server.host = argv[1];
    local.server.port = static_cast<std::uint16_t>(port);
    local.server.tls.mode = smtp::tls_mode::none; // plaintext: only for a local test server
    local.pool.max_connections = 4;
    mailer_options mo;
    mo.providers.push_back(std::move(local));

    asio::io_context io(4);
    mailer m(io.get_executor(), std::move(mo));

    // Touched only by handlers bound to `strand`.
    auto strand = asio::make_strand(io);
    int left = count;
    int failed = 0;
    bool shut_down = false;

    auto on_shutdown = [&](error_code ec) {
        if (ec)
            std::cerr << "shutdown: " << ec.message() << "\n";
        shut_down = !ec;
    };

    for (int i = 1; i <= count; ++i) {
        mime::message_builder b;
        b.from("Example Service <noreply@example.com>")
            .to("user" + std::to_string(i) + "@example.org")
            .subject("callbacks " + std::to_string(i) + " of " + std::to_string(count))
            .text("Hello user " + std::to_string(i) + ",\n\nsent with a completion handler.\n");
        diagnostics diag;
        auto msg = b.build(diag);
        if (!msg) {
            std::cerr << "message " << i << ": " << msg.error().message() << " ("
                      << diag.to_string() << ")\n";
            return 1;
        }

        // The handler runs later, on a thread running io, never inside async_send itself.
        m.async_send(
            std::move(*msg), asio::bind_executor(strand, [&, i](error_code ec, send_report r) {
                if (ec || r.delivery.outcome != smtp::outcome::delivered) {
                    ++failed;
                    std::cerr << "message " << i << ": " << kind(ec) << " error: " << ec.message()
                              << " (" << r.delivery.diag.to_string() << ")\n";
                }
                if (--left == 0)
                    m.async_shutdown(asio::bind_executor(strand, on_shutdown));
            }));
    }

    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : threads)
        t.join();

    const mailer_snapshot snap = m.snapshot();
    for (const auto& s : snap.providers)
        std::cout << "provider " << s.name << ": delivered " << s.delivered << ", partial "
                  << s.partial << ", failed " << s.failed << ", unknown " << s.unknown
                  << ", retries " << s.retries << ", connections opened " << s.pool.connects
                  << "\n";
    std::cout << "sent " << snap.sent() << " of " << count << " messages\n";
    return failed == 0 && shut_down && snap.sent() == static_cast<std::uint64_t>(count) ? 0 : 1;
}
