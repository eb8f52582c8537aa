// Compose benchmark: how fast mailroom builds and writes messages. Not a test: it asserts no
// timings, it only prints rates, one machine-readable line per workload:
//
//   mailroom small msgs_per_s=...                       (a) small multipart/alternative message
//   mailroom attach10m msgs_per_s=... mib_per_s=...     (b) message with a 10 MiB attachment
//   mailroom base64 gib_per_s=...                       (c) detail::base64_lines_append alone
//
// Each workload runs for a warm-up and then for about --seconds S (default 2). bench/
// compose_python.py runs (a) and (b) with Python's email package; bench/run_compose.sh compares.
//
// Usage: compose_bench [--seconds S] [--only small|attach10m|base64]...

#include <mailroom/mime/message_builder.hpp>

#include "detail/base64.hpp" // private: detail::base64_lines_append (linked from the objects)

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>

namespace {

namespace mime = mailroom::mime;
using clock_type = std::chrono::steady_clock;

// Keeps results observable so the optimiser cannot drop the work.
volatile std::uint64_t sink = 0;

// The same bodies as compose_python.py builds, octet for octet.
std::string text_body()
{
    std::string s;
    char line[128];
    for (int i = 0; s.size() < 1024; ++i) {
        std::snprintf(line, sizeof line,
                      "Line %02d: the quick brown fox jumps over the lazy dog.\n", i);
        s += line;
    }
    return s;
}

std::string html_body()
{
    std::string s = "<!DOCTYPE html>\n<html><body>\n";
    const std::string_view end = "</body></html>\n";
    char line[128];
    for (int i = 0; s.size() + end.size() < 2048; ++i) {
        std::snprintf(line, sizeof line,
                      "<p>Paragraph %02d: the quick brown fox jumps over the lazy dog.</p>\n", i);
        s += line;
    }
    s += end;
    return s;
}

// 10 MiB of pseudo-random octets (xorshift64), so the content is not trivially compressible.
std::string payload(std::size_t n)
{
    std::string s(n, '\0');
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    for (std::size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(s.data() + i, &x, std::min<std::size_t>(8, n - i));
    }
    return s;
}

struct timing {
    std::uint64_t iterations = 0;
    double seconds = 0;
    double per_second() const { return iterations / seconds; }
};

// Runs `f` for `warm` seconds untimed, then for at least `seconds`, checking the clock after every
// call (each call is microseconds or more, so the check costs little).
template <class F> timing run_for(double seconds, F&& f)
{
    const double warm = std::min(0.5, std::max(0.1, seconds / 4));
    auto start = clock_type::now();
    do
        f();
    while (std::chrono::duration<double>(clock_type::now() - start).count() < warm);

    timing t;
    start = clock_type::now();
    do {
        f();
        ++t.iterations;
        t.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    } while (t.seconds < seconds);
    return t;
}

[[noreturn]] void die(const char* what)
{
    std::fprintf(stderr, "compose_bench: %s\n", what);
    std::exit(1);
}

std::string serialize(const mime::message_builder& b)
{
    mailroom::diagnostics diag;
    auto m = b.build(diag);
    if (!m) {
        std::fprintf(stderr, "compose_bench: build failed: %s\n", diag.to_string().c_str());
        std::exit(1);
    }
    auto bytes = m->serialize();
    if (!bytes)
        die("serialize failed");
    return std::move(*bytes);
}

// (a) A small message, composed from scratch each time: the builder, then build(), then
// serialize() into one buffer.
void bench_small(double seconds)
{
    const std::string text = text_body(), html = html_body();
    auto once = [&] {
        mime::message_builder b;
        b.from(std::string("Alice Example <alice@example.com>"))
            .to(std::string("Bob Example <bob@example.org>"))
            .subject("Quarterly report: compose benchmark")
            .text(text)
            .html(html);
        return serialize(b);
    };
    const std::size_t size = once().size();
    const timing t = run_for(seconds, [&] { sink = sink + once().size(); });
    std::printf("mailroom small msgs_per_s=%.0f bytes=%zu\n", t.per_second(), size);
}

// (b) A message with a 10 MiB attachment held in memory. The builder is made once and used as a
// template (build() is const): each round is build() and serialize(), so the figure holds what
// the library does with the data, not a copy the application would make to hand it over.
void bench_attach(double seconds)
{
    const std::string text = text_body();
    mime::message_builder b;
    b.from(std::string("Alice Example <alice@example.com>"))
        .to(std::string("Bob Example <bob@example.org>"))
        .subject("Quarterly report: compose benchmark")
        .text(text);
    mime::attachment a;
    a.filename = "data.bin";
    a.content_type = "application/octet-stream";
    a.data = payload(10u << 20);
    b.attach(std::move(a));
    const std::size_t size = serialize(b).size();
    const timing t = run_for(seconds, [&] { sink = sink + serialize(b).size(); });
    std::printf("mailroom attach10m msgs_per_s=%.2f mib_per_s=%.1f bytes=%zu\n", t.per_second(),
                t.per_second() * static_cast<double>(size) / (1 << 20), size);
}

// (c) The base64 body encoder alone: 10 MiB in, 76-column CRLF lines out, into a reused buffer.
// The rate is of input octets.
void bench_base64(double seconds)
{
    const std::string in = payload(10u << 20);
    std::string out;
    out.reserve(mailroom::detail::base64_lines_size(in.size()));
    const timing t = run_for(seconds, [&] {
        out.clear();
        mailroom::detail::base64_lines_append(out, in);
        sink = sink + static_cast<unsigned char>(out[out.size() / 2]);
    });
    if (out.size() != mailroom::detail::base64_lines_size(in.size()))
        die("base64 output size mismatch");
    const double gib = static_cast<double>(in.size()) / (1u << 30);
    std::printf("mailroom base64 gib_per_s=%.3f out_gib_per_s=%.3f\n", t.per_second() * gib,
                t.per_second() * static_cast<double>(out.size()) / (1u << 30));
}

} // namespace

int main(int argc, char** argv)
{
    double seconds = 2;
    std::set<std::string> only;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--seconds" && i + 1 < argc) {
            char* end = nullptr;
            seconds = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(seconds > 0))
                die("--seconds needs a positive number");
        } else if (a == "--only" && i + 1 < argc) {
            only.insert(argv[++i]);
        } else {
            std::fprintf(stderr,
                         "usage: compose_bench [--seconds S] [--only small|attach10m|base64]...\n");
            return 2;
        }
    }
    auto want = [&](const char* name) {
        return only.empty() || only.count(name) != 0;
    };
    if (want("small"))
        bench_small(seconds);
    std::fflush(stdout);
    if (want("attach10m"))
        bench_attach(seconds);
    std::fflush(stdout);
    if (want("base64"))
        bench_base64(seconds);
    return 0;
}
