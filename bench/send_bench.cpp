// Send benchmark: how fast one smtp::client submits pre-built messages over one connection. Not
// a test: it asserts no timings, it prints one machine-readable line:
//
//   mailroom send msgs=N seconds=S msgs_per_s=R cpu_s=C cpu_ms_per_msg=X
//
// It connects one client (tls_mode::none: for loopback test servers only) to 127.0.0.1:PORT,
// then sends the message in FILE COUNT times, keeping up to DEPTH sends outstanding. With
// DEPTH >= 2 and a server that offers PIPELINING, the client writes each message's envelope
// behind the previous message's final dot (one round trip per message); --depth 1 sends one
// message at a time (MAIL/RCPT/DATA in one flight, then the data: two round trips).
//
// FILE is a message in wire form (an .eml file, e.g. `mailroom compose` output); its envelope
// comes from its headers (mime::message::from_wire). The clock and the CPU count (getrusage of
// the whole process: user + system) start once the connection is up (greeting and EHLO done)
// and stop when the last send has completed; QUIT is not counted. Every send must be
// delivered: the first failure stops the run with exit status 1.
//
// bench/run_send.sh runs it against Postfix's smtp-sink beside smtp-source and Python's smtplib.
//
// Usage: send_bench --port PORT --file FILE [--count N] [--depth D]

#include <mailroom/mime/message.hpp>
#include <mailroom/smtp/client.hpp>

#include <boost/asio/io_context.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

namespace {

namespace asio = boost::asio;
namespace mime = mailroom::mime;
namespace smtp = mailroom::smtp;
using clock_type = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "send_bench: %s\n", what.c_str());
    std::exit(1);
}

// User + system CPU seconds of the whole process so far.
double cpu_seconds()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return s(ru.ru_utime) + s(ru.ru_stime);
}

unsigned long number(const char* flag, const char* text, unsigned long min, unsigned long max)
{
    char* end = nullptr;
    const unsigned long v = std::strtoul(text, &end, 10);
    if (*text == '\0' || *end != '\0' || *text == '-' || v < min || v > max)
        die(std::string(flag) + " needs a whole number from " + std::to_string(min) + " to " +
            std::to_string(max));
    return v;
}

mime::message load(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        die("cannot read '" + path + "'");
    std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    mailroom::diagnostics diag;
    auto m = mime::message::from_wire(std::move(bytes), diag);
    if (!m)
        die("'" + path + "' is not a usable message: " + m.error().message() + " (" +
            diag.to_string() + ")");
    return std::move(*m);
}

// Keeps up to `depth` sends outstanding until `count` have been started, then waits for the
// rest. Plain completion handlers: the benchmark adds as little as it can to what it measures.
struct run_state {
    smtp::client& client;
    const mime::message& msg;
    std::uint64_t count;
    unsigned depth;
    std::uint64_t started = 0, completed = 0;
    unsigned outstanding = 0;
    bool failed = false;
    clock_type::time_point t0{}, t1{};
    double cpu0 = 0, cpu1 = 0;

    void start()
    {
        t0 = clock_type::now();
        cpu0 = cpu_seconds();
        fill();
    }

    void fill()
    {
        while (!failed && outstanding < depth && started < count) {
            ++started;
            ++outstanding;
            client.async_send(msg, [this](mailroom::error_code ec, smtp::delivery_report rep) {
                on_sent(ec, rep);
            });
        }
    }

    void on_sent(mailroom::error_code ec, const smtp::delivery_report& rep)
    {
        --outstanding;
        if (!failed && (ec || rep.outcome != smtp::outcome::delivered)) {
            failed = true;
            std::fprintf(stderr, "send_bench: message %llu not delivered: %s (%s: %s)\n",
                         static_cast<unsigned long long>(completed + 1), ec.message().c_str(),
                         rep.diag.field.c_str(), rep.diag.detail.c_str());
            client.close();
            return;
        }
        if (failed)
            return;
        ++completed;
        if (completed == count) {
            t1 = clock_type::now();
            cpu1 = cpu_seconds();
            client.async_quit([](mailroom::error_code) {});
            return;
        }
        fill();
    }
};

} // namespace

int main(int argc, char** argv)
{
    unsigned long port = 0, count = 10000, depth = 4;
    std::string file;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--port" && i + 1 < argc) {
            port = number("--port", argv[++i], 1, 65535);
        } else if (a == "--count" && i + 1 < argc) {
            count = number("--count", argv[++i], 1, 1000000000);
        } else if (a == "--depth" && i + 1 < argc) {
            depth = number("--depth", argv[++i], 1, 1024);
        } else if (a == "--file" && i + 1 < argc) {
            file = argv[++i];
        } else {
            std::fprintf(stderr, "usage: send_bench --port PORT --file FILE [--count N] "
                                 "[--depth D]\n");
            return 2;
        }
    }
    if (port == 0 || file.empty()) {
        std::fprintf(stderr, "send_bench: --port and --file are required\n");
        return 2;
    }
    const mime::message msg = load(file);

    smtp::client_options opts;
    opts.host = "127.0.0.1";
    opts.port = static_cast<std::uint16_t>(port);
    opts.tls.mode = smtp::tls_mode::none;
    opts.helo_name = "client.example";
    opts.log.level = mailroom::log_level::off;

    asio::io_context io(1);
    smtp::client client(io.get_executor(), opts);
    run_state run{client, msg, count, static_cast<unsigned>(depth)};
    client.async_connect([&](mailroom::error_code ec) {
        if (ec)
            die("connect to 127.0.0.1:" + std::to_string(port) + " failed: " + ec.message() + " (" +
                client.last_diagnostics().to_string() + ")");
        run.start();
    });
    io.run();
    if (run.failed || run.completed != count)
        return 1;

    const double seconds = std::chrono::duration<double>(run.t1 - run.t0).count();
    const double cpu = run.cpu1 - run.cpu0;
    std::printf("mailroom send msgs=%llu seconds=%.3f msgs_per_s=%.0f cpu_s=%.3f "
                "cpu_ms_per_msg=%.4f\n",
                static_cast<unsigned long long>(count), seconds,
                static_cast<double>(count) / seconds, cpu, cpu * 1000 / static_cast<double>(count));
    return 0;
}
