// A service-style mailer: one `mailer` shared by many coroutines on an io_context run by four
// threads. Each coroutine builds a message and `co_await`s m.async_send(); the last one to
// finish shuts the mailer down (QUIT on every pooled connection). Then the mailer's snapshot
// is printed: what a service would export as metrics.
//
//     example_service_mailer HOST PORT [COUNT]      (COUNT messages, default 20)
//
// Plaintext (tls_mode::none), for a local test server such as `mailroom sink`. Exits 0 when
// every message was delivered to every recipient, 1 otherwise.

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace mailroom;

namespace {

// Shared by the coroutines; they run on four threads, so everything here is atomic.
struct progress {
    std::atomic<int> left;
    std::atomic<int> failed{0};
};

long long ms(std::chrono::steady_clock::duration d)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Coroutine parameters by value (pointers for what outlives every coroutine): a coroutine must
// not keep references to temporaries of the call that started it.
asio::awaitable<void> send_one(mailer* m, progress* p, int i, int count)
{
    mime::message_builder b;
    b.from("Example Service <noreply@example.com>")
        .to("user" + std::to_string(i) + "@example.org")
        .subject("service_mailer " + std::to_string(i) + " of " + std::to_string(count))
        .text("Hello user " + std::to_string(i) + ",\n\nsent by a coroutine on a thread pool.\n");
    diagnostics diag;
    auto msg = b.build(diag);
    // One fprintf per line: lines from the four threads don't interleave.
    if (!msg) {
        std::fprintf(stderr, "message %d: %s (%s)\n", i, msg.error().message().c_str(),
                     diag.to_string().c_str());
        ++p->failed;
    } else {
        // Any number of coroutines may wait here at once: the mailer takes a rate-limiter
        // token, borrows a pooled connection (pipelined when the server allows) and retries
        // what may be retried.
        auto [ec, report] = co_await m->async_send(std::move(*msg), asio::as_tuple(asio::deferred));
        if (ec || report.delivery.outcome != smtp::outcome::delivered) {
            std::fprintf(stderr, "message %d: %s (%s)\n", i, ec.message().c_str(),
                         report.delivery.diag.to_string().c_str());
            ++p->failed;
        }
    }

    if (--p->left == 0) {
        // The last one out: finish what was sent and QUIT every connection. Afterwards the
        // io_context has no work left, and run() returns on every thread.
        auto [ec] = co_await m->async_shutdown(asio::as_tuple(asio::deferred));
        if (ec)
            std::fprintf(stderr, "shutdown: %s\n", ec.message().c_str());
    }
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
    local.limits.buckets = {{.rate = 1000}}; // at most 1000 messages a second
    mailer_options mo;
    mo.providers.push_back(std::move(local));

    asio::io_context io(4);
    mailer m(io.get_executor(), std::move(mo)); // throws system_error on bad options

    progress p{.left = count};
    for (int i = 1; i <= count; ++i)
        asio::co_spawn(io, send_one(&m, &p, i, count), asio::detached);

    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([&io] { io.run(); });
    io.run(); // the fourth thread
    for (auto& t : threads)
        t.join();

    const mailer_snapshot snap = m.snapshot();
    for (const auto& s : snap.providers) {
        std::cout << "provider " << s.name << ": delivered " << s.delivered << ", partial "
                  << s.partial << ", failed " << s.failed << ", unknown " << s.unknown
                  << ", retries " << s.retries << "\n";
        std::cout << "  connections opened " << s.pool.connects << "; latency p50 "
                  << ms(s.latency.percentile(0.5)) << " ms, p99 " << ms(s.latency.percentile(0.99))
                  << " ms, max " << ms(s.latency.max()) << " ms\n";
    }
    std::cout << "sent " << snap.sent() << " of " << count << " messages\n";
    return p.failed == 0 && snap.sent() == static_cast<std::uint64_t>(count) ? 0 : 1;
}
