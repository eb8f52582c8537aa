// Grants benchmark: how many permits one process takes from a rate limiter per second with no
// SMTP at all, from a local Redis (store_kind::redis) or from its own buckets (local), and how
// many Redis commands that costs per grant. Not a test: it asserts nothing and prints one
// machine-readable line:
//
//   mailroom grants store=S lease=L workers=W seconds=T grants=N grants_per_second=G
//                   commands=C commands_per_grant=X
//
// W coroutines each loop: acquire 1, release it. The rate is far above what can be taken
// (10^9/s, burst 10^6), so the figure is the limiter's own cost.
//
// Usage: grants_bench [--redis URL] [--max-lease N] [--workers W] [--seconds T]

#include <mailroom/limit/limiter.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

namespace asio = boost::asio;
using namespace mailroom;
using steady = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "grants_bench: %s\n", what.c_str());
    std::exit(1);
}

} // namespace

int main(int argc, char** argv)
{
    std::string url;
    unsigned long long max_lease = 64, workers = 64;
    double seconds = 3;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc)
            die("missing value for " + a);
        const std::string v = argv[++i];
        if (a == "--redis")
            url = v;
        else if (a == "--max-lease")
            max_lease = std::strtoull(v.c_str(), nullptr, 10);
        else if (a == "--workers")
            workers = std::strtoull(v.c_str(), nullptr, 10);
        else if (a == "--seconds")
            seconds = std::strtod(v.c_str(), nullptr);
        else
            die("unknown option " + a);
    }
    limit::rate_limiter_options o{.buckets = {{.rate = 1'000'000'000, .burst = 1'000'000}}};
    o.adaptive.enabled = false;
    limit::store_options s;
    if (!url.empty()) {
        diagnostics d;
        auto r = redis::options::from_url(url, d);
        if (!r)
            die("--redis: " + d.to_string());
        s.kind = limit::store_kind::redis;
        s.redis = *r;
        s.key = "grants-bench";
        s.max_lease = max_lease;
    }
    asio::io_context io(1);
    limit::limiter lim(io.get_executor(), o, s);
    std::uint64_t grants = 0;
    const auto end = steady::now() + std::chrono::duration_cast<steady::duration>(
                                         std::chrono::duration<double>(seconds));
    unsigned long long running = workers;
    const auto start = steady::now();
    for (unsigned long long w = 0; w < workers; ++w)
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                while (steady::now() < end) {
                    auto [ec, p] =
                        co_await lim.async_acquire(1, asio::as_tuple(asio::use_awaitable));
                    if (ec)
                        die("acquire: " + ec.message());
                    ++grants;
                }
                if (--running == 0)
                    lim.close();
            },
            asio::detached);
    io.run();
    const double took = std::chrono::duration<double>(steady::now() - start).count();
    const auto snap = lim.snapshot();
    const std::uint64_t commands = snap.store ? snap.store->commands : 0;
    std::printf("mailroom grants store=%s lease=%llu workers=%llu seconds=%.2f grants=%llu "
                "grants_per_second=%.0f commands=%llu commands_per_grant=%.4f\n",
                url.empty() ? "local" : "redis", url.empty() ? 0ull : max_lease, workers, took,
                static_cast<unsigned long long>(grants), static_cast<double>(grants) / took,
                static_cast<unsigned long long>(commands),
                grants ? static_cast<double>(commands) / static_cast<double>(grants) : 0.0);
}
