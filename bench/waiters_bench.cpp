// Waiters benchmark: what thousands of sends waiting on a mailer cost. Not a test: it asserts
// nothing and prints one machine-readable line:
//
//   mailroom waiters caller=C sends=N connections=K heap_bytes_per_send=B rss_bytes_per_send=R
//                    sockets=S in_flight=F waiting=W
//
// It makes a mailer with one provider (127.0.0.1:PORT, tls_mode::none, a pool of CONNECTIONS)
// and starts SENDS coroutines that each co_await mailer.async_send() of the same message (one
// shared body: the cost measured is the bookkeeping, not the bodies). Against a slow server
// (bench/run_waiters.sh starts Postfix's smtp-sink with `-w 5`, which waits 5 s before each
// final reply) they all stay in flight; after SETTLE seconds it reads the heap in use
// (mallinfo2) and the RSS (/proc/self/statm), subtracts what was there before the sends
// started and divides by SENDS, and counts the sockets the process has open (/proc/self/fd). Then
// it closes the mailer (every send completes with operation_aborted) and exits.
//
// The callers are coroutines (co_spawn, as a service would write them: their frames count
// too), or with --caller callback plain completion handlers (the library's own cost alone).
//
// Usage: waiters_bench --port PORT [--sends N] [--connections K] [--settle SECONDS]
//                      [--caller coroutine|callback]

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <dirent.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

namespace asio = boost::asio;
using namespace mailroom;

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "waiters_bench: %s\n", what.c_str());
    std::exit(1);
}

long long heap_in_use()
{
    const auto m = mallinfo2();
    return static_cast<long long>(m.uordblks + m.hblkhd);
}

long long rss_bytes()
{
    std::ifstream f("/proc/self/statm");
    long long size = 0, resident = 0;
    f >> size >> resident;
    return resident * sysconf(_SC_PAGESIZE);
}

int sockets_open()
{
    int n = 0;
    DIR* d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (dirent* e = readdir(d)) {
        struct stat st {};
        const std::string p = std::string("/proc/self/fd/") + e->d_name;
        if (e->d_name[0] != '.' && stat(p.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
            ++n;
    }
    closedir(d);
    return n;
}

long number(const char* flag, const char* v, long min, long max)
{
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (!*v || *end || n < min || n > max)
        die(std::string(flag) + ": expected a number from " + std::to_string(min) + " to " +
            std::to_string(max));
    return n;
}

} // namespace

int main(int argc, char** argv)
{
    long port = 0, sends = 10000, connections = 50, settle = 2;
    bool callbacks = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string f = argv[i];
        if (f == "--port")
            port = number("--port", argv[i + 1], 1, 65535);
        else if (f == "--sends")
            sends = number("--sends", argv[i + 1], 1, 10'000'000);
        else if (f == "--connections")
            connections = number("--connections", argv[i + 1], 1, 10'000);
        else if (f == "--caller") {
            const std::string v = argv[i + 1];
            if (v != "coroutine" && v != "callback")
                die("--caller: coroutine or callback");
            callbacks = v == "callback";
        } else if (f == "--settle")
            settle = number("--settle", argv[i + 1], 1, 600);
        else
            die("unknown option " + f);
    }
    if (port == 0)
        die("usage: waiters_bench --port PORT [--sends N] [--connections K] [--settle SECONDS]");

    mime::message_builder b;
    b.from("sender@example.com").to("rcpt@example.net").subject("waiting").text("hello\n");
    const mime::message msg = b.build_or_throw();

    asio::io_context io(1);
    mailer_options mo;
    provider_options p;
    p.name = "slow";
    p.server.host = "127.0.0.1";
    p.server.port = static_cast<std::uint16_t>(port);
    p.server.tls.mode = smtp::tls_mode::none;
    p.pool.max_connections = static_cast<std::size_t>(connections);
    p.pool.checkout_timeout = std::chrono::minutes(10);
    mo.providers.push_back(p);
    mailer m(io.get_executor(), mo);

    // Warm up: one send opens the pool and touches every code path once, so the figures below
    // count what each waiting send adds, not first-use allocations.
    bool warm = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            co_await m.async_send(msg, asio::as_tuple(asio::use_awaitable));
            warm = true;
        },
        asio::detached);
    while (!warm && io.run_one_for(std::chrono::seconds(30)))
        ;
    if (!warm)
        die("the warm-up send did not finish");

    malloc_trim(0);
    const long long heap0 = heap_in_use(), rss0 = rss_bytes();
    long done = 0;
    for (long i = 0; i < sends; ++i) {
        if (callbacks)
            m.async_send(msg, [&](error_code, send_report) { ++done; });
        else
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void> {
                    co_await m.async_send(msg, asio::as_tuple(asio::use_awaitable));
                    ++done;
                },
                asio::detached);
    }
    io.run_for(std::chrono::seconds(settle));
    const long long heap1 = heap_in_use(), rss1 = rss_bytes();
    const int sockets1 = sockets_open();
    const auto snap = m.snapshot().providers.front();

    std::printf("mailroom waiters caller=%s sends=%ld connections=%ld heap_bytes_per_send=%.0f "
                "rss_bytes_per_send=%.0f sockets=%d in_flight=%llu waiting=%zu finished=%ld\n",
                callbacks ? "callback" : "coroutine", sends, connections,
                static_cast<double>(heap1 - heap0) / sends,
                static_cast<double>(rss1 - rss0) / sends, sockets1,
                static_cast<unsigned long long>(snap.in_progress), snap.pool.waiters, done);
    m.close();
    io.run_for(std::chrono::seconds(5));
    return 0;
}
