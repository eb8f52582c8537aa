// mailroom bulk: send many messages through a mailer (pool + rate limiter), with a progress
// bar on a terminal and a summary: a load generator, and the demo of what the library is for.

#include "cli.hpp"

#include <mailroom/auth/token_source.hpp>
#include <mailroom/mailer/mailer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>

namespace mailroom::cli {

namespace {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

// A text body of about `want` octets on the wire: 76-character lines of printable ASCII, so it
// goes as 7bit with no encoding work.
std::string filler(std::size_t want)
{
    std::string body;
    body.reserve(want + 80);
    std::size_t line = 0;
    while (body.size() < want) {
        for (std::size_t i = 0; i < 75 && body.size() < want; ++i)
            body += static_cast<char>('a' + (line + i) % 26);
        body += '\n';
        ++line;
    }
    return body;
}

std::string with_tag(const mailroom::address& a, std::size_t n)
{
    if (n == 0)
        return a.str();
    return a.local_part() + "+" + std::to_string(n) + "@" + a.domain_ascii();
}

double seconds(clock::duration d)
{
    return std::chrono::duration<double>(d).count();
}
double millis(clock::duration d)
{
    return std::chrono::duration<double, std::milli>(d).count();
}

std::string hms(double s)
{
    if (!std::isfinite(s) || s < 0)
        return "--:--";
    const auto t = static_cast<long>(s + 0.5);
    char buf[32];
    if (t >= 3600)
        std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

struct run_state {
    std::uint64_t count = 0;
    std::uint64_t next = 0; // the next message to start
    std::uint64_t done = 0, delivered = 0, partial = 0, failed = 0, unknown = 0;
    // Started, then stopped (by a signal or --deadline) before any SMTP transaction began:
    // nothing of it reached a server. Messages never started are not_attempted too.
    std::uint64_t stopped_waiting = 0;
    latency_histogram latency;
    std::map<std::string, std::uint64_t> errors; // error text → count
    error_code first_error;
    std::string first_detail;
    clock::time_point start, end;
    bool finished = false;
    bool stopping = false;        // no more sends start
    int signal = 0;               // the first SIGINT or SIGTERM
    bool deadline_passed = false; // --deadline
    std::string stopped_by;       // "SIGINT", "SIGTERM" or "deadline"; empty: ran to the end

    std::uint64_t not_attempted() const { return stopped_waiting + (count - next); }
};

void draw_progress(const run_state& st, bool final)
{
    const double elapsed = seconds(clock::now() - st.start);
    const double rate = elapsed > 0 ? static_cast<double>(st.done) / elapsed : 0;
    const double frac = st.count ? static_cast<double>(st.done) / static_cast<double>(st.count) : 1;
    constexpr int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(width - filled), '.');
    const double eta = rate > 0 ? static_cast<double>(st.count - st.done) / rate : NAN;
    std::fprintf(stderr, "\r[%s] %3.0f%%  %llu/%llu  %.0f msg/s  %s %s  failed %llu \x1b[K",
                 bar.c_str(), frac * 100, static_cast<unsigned long long>(st.done),
                 static_cast<unsigned long long>(st.count), rate, final ? "took" : "ETA",
                 hms(final ? elapsed : eta).c_str(), static_cast<unsigned long long>(st.failed));
    if (final)
        std::fputc('\n', stderr);
    std::fflush(stderr);
}

// The sends, at most `running` at a time: each report starts the next message. Plain completion
// handlers rather than a coroutine per send: with --concurrency 10000 every waiting send would
// also hold its coroutine's frame and co_spawn's state (about 1.8 KiB), where a handler holds
// one pointer.
//
// Each worker (a chain of sends, one at a time) has its own cancellation signal, so a signal or
// the deadline reaches every send under way: partial cancellation stops those still waiting
// (rate limiter, pool checkout, retry backoff: nothing of them was sent) and lets SMTP
// transactions end; terminal cancellation ends the transactions too, closing their
// connections (the mailer then reports `unknown` where the final dot was written).
struct sender {
    mailer& m;
    run_state& st;
    const std::function<mime::message(std::uint64_t)>& make;
    std::function<void()> on_finished;
    std::uint64_t running = 0;
    std::unique_ptr<asio::cancellation_signal[]> cancel;
    std::vector<char> busy; // a worker's send is under way
    bool shutting_down = false, closed = false;
    // While the pool's circuit breaker is open (the server isn't there), a new send gets one
    // attempt: it fails at once with circuit_open instead of waiting for the breaker's probes,
    // so a run against a dead server ends in about the time its first sends take.
    retry_options one_attempt;
    bool failures_seen = false; // since the breaker was last seen closed

    void start(std::uint64_t workers)
    {
        running = workers;
        cancel.reset(new asio::cancellation_signal[workers]);
        busy.assign(workers, 0);
    }

    void next(std::size_t w)
    {
        if (!st.stopping && st.next < st.count) {
            const auto i = st.next++;
            busy[w] = 1;
            send_request req;
            if (failures_seen) {
                if (m.snapshot().providers.front().pool.breaker == pool::breaker_state::closed)
                    failures_seen = false;
                else
                    req.retry = one_attempt;
            }
            m.async_send(make(i), std::move(req),
                         asio::bind_cancellation_slot(cancel[w].slot(),
                                                      [this, w](error_code ec, send_report rep) {
                                                          busy[w] = 0;
                                                          record(ec, rep);
                                                          next(w);
                                                      }));
            return;
        }
        if (--running == 0) {
            st.end = clock::now();
            st.finished = true;
            shutdown();
            on_finished();
        }
    }

    void shutdown()
    {
        if (!std::exchange(shutting_down, true))
            m.async_shutdown([](error_code) {});
    }

    // No more sends start; `t` goes to every send under way (see above).
    void stop(asio::cancellation_type t)
    {
        st.stopping = true;
        for (std::size_t w = 0; w < busy.size(); ++w)
            if (busy[w])
                cancel[w].emit(t);
        if (t != asio::cancellation_type::terminal)
            shutdown();
    }

    // Closes every connection now. Not at once with a terminal stop: mailer::close() fails a
    // send whose final dot was written with operation_aborted, where its own cancellation
    // reports it `unknown`.
    void close()
    {
        if (!std::exchange(closed, true))
            m.close();
    }

    void record(error_code ec, const send_report& rep)
    {
        ++st.done;
        using dur = send_report::timings::duration;
        const bool ours = st.stopping && ec == asio::error::operation_aborted;
        if (ours && rep.time.smtp == dur::zero() && rep.time.backoff == dur::zero() &&
            rep.attempts <= 1) {
            // Stopped while it waited for its first turn: nothing of it was sent.
            ++st.stopped_waiting;
            return;
        }
        st.latency.record(rep.time.total);
        if (!ec && rep.delivery.outcome == smtp::outcome::delivered)
            ++st.delivered;
        else if (!ec && rep.delivery.outcome == smtp::outcome::partial)
            ++st.partial;
        else if (rep.delivery.outcome == smtp::outcome::unknown)
            ++st.unknown;
        else {
            ++st.failed;
            failures_seen = true;
        }
        if (ours) {
            ++st.errors[ec.message() + " (stopped by " + st.stopped_by + ")"];
        } else if (ec) {
            ++st.errors[ec.message()];
            if (!st.first_error) {
                st.first_error = ec;
                st.first_detail = rep.delivery.diag.to_string();
            }
        }
    }
};

} // namespace

int bulk_main(std::span<char*> argv)
{
    arg_reader args(argv);
    server_options server;
    dkim_options dkim;
    std::optional<std::uint64_t> count;
    std::uint64_t connections = 4, recipients = 1, size = 2048, pipeline = 4;
    std::optional<std::uint64_t> concurrency, deadline;
    std::uint64_t grace = 10;
    limit_options limits;
    std::string from_text = "sender@example.com", to_text = "rcpt@example.net";
    std::optional<std::string> eml;
    bool json = false, from_given = false, to_given = false;
    bool charge_given = false, dry_run = false; // --charge overrides --provider's
    std::string progress = "auto";
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::printf("%s", bulk_usage());
            return ex_ok;
        }
        if (flag == "--version") {
            print_version();
            return ex_ok;
        }
        charge_given = charge_given || flag == "--charge";
        if (server.take(flag, args) || limits.take(flag, args) || dkim.take(flag, args))
            continue;
        const std::string f(flag);
        if (flag == "--dry-run")
            dry_run = true;
        else if (flag == "--count")
            count = parse_count(f, args.value(), 1, 1'000'000'000);
        else if (flag == "--connections")
            connections = parse_count(f, args.value(), 1, 10'000);
        else if (flag == "--concurrency")
            concurrency = parse_count(f, args.value(), 1, 1'000'000);
        else if (flag == "--pipeline-depth")
            pipeline = parse_count(f, args.value(), 1, 64);
        else if (flag == "--size")
            size = parse_count(f, args.value(), 1, 512ull << 20);
        else if (flag == "--recipients")
            recipients = parse_count(f, args.value(), 1, 1000);
        else if (flag == "--from")
            from_text = args.value(), from_given = true;
        else if (flag == "--to")
            to_text = args.value(), to_given = true;
        else if (flag == "--eml") {
            eml = args.value();
            if (*eml == "-")
                claim_stdin("--eml");
        } else if (flag == "--json")
            json = true;
        else if (flag == "--deadline")
            deadline = parse_count(f, args.value(), 1, 31'536'000);
        else if (flag == "--grace")
            grace = parse_count(f, args.value(), 0, 86'400);
        else if (flag == "--max-size")
            set_max_input_size(parse_size(f, args.value()));
        else if (flag == "--progress") {
            progress = args.value();
            if (progress != "auto" && progress != "always" && progress != "never")
                throw failure(ex_usage, "--progress: expected auto, always or never");
        } else
            throw failure(ex_usage, "bulk: unknown option " + f);
    }
    if (!count && !dry_run)
        throw failure(ex_usage, "--count is required");
    smtp::client_options opts = server.finish();
    const smtp::tls_mode tls_mode = opts.tls.mode;
    const std::uint64_t in_flight = concurrency.value_or(connections * pipeline);
    const limit::rate_limiter_options rate_limits =
        limits.limits_for(server.provider(), charge_given);
    const limit::store_options store = limits.store_for(server.provider());
    // The keys are read and parsed once; every message is signed with these signers.
    const std::vector<mime::dkim_signer> signers = dkim.signers();
    if (dry_run) {
        print_settings(opts, rate_limits, server.provider(), json);
        return ex_ok;
    }
    const std::string settings = settings_json(opts, rate_limits, server.provider());

    auto from = mailroom::address::parse(from_text);
    if (!from)
        throw failure(ex_dataerr, "--from: not an address: '" + from_text + "'");
    auto to = mailroom::address::parse(to_text);
    if (!to)
        throw failure(ex_dataerr, "--to: not an address: '" + to_text + "'");
    mailroom::envelope env;
    env.from = *from;
    for (std::uint64_t r = 0; r < recipients; ++r)
        if (auto a = mailroom::address::parse(with_tag(*to, r)))
            env.recipients.push_back(*a);

    // --eml: one message, sent `count` times (same Message-ID). Otherwise each message is
    // composed here, with its own Message-ID.
    std::optional<mime::message> fixed;
    if (eml) {
        // The file's envelope (from its headers), with --from/--to where given.
        message_options none;
        fixed = none.build_from_eml(*eml);
        mailroom::envelope e = fixed->envelope();
        if (from_given)
            e.from = env.from;
        if (to_given || recipients > 1)
            e.recipients = env.recipients;
        fixed = fixed->with_envelope(std::move(e));
        // Signed once: every copy sent is this same message.
        fixed = dkim_options::sign(*fixed, signers);
    }
    std::function<mime::message(std::uint64_t)> make;

    mailer_options mo;
    provider_options po;
    po.name = "bulk";
    po.server = std::move(opts);
    po.pool.max_connections = connections;
    po.pool.pipeline_depth = pipeline;
    // Waits sized for a run of the tool, not a service: a send waits for a connection about as
    // long as opening one may take (connect, TLS, greeting, EHLO and STARTTLS or AUTH; at most
    // 5 minutes), reconnects and retries back off 5 s at most, and nothing waits past
    // --deadline.
    const auto& t = po.server.timeouts;
    po.pool.checkout_timeout = std::min<pool::duration>(
        std::chrono::minutes(5), t.connect + t.tls_handshake + t.greeting + 2 * t.command);
    po.pool.reconnect.max = std::chrono::seconds(5);
    po.pool.breaker.open_for =
        std::min<pool::duration>(po.pool.breaker.open_for, std::max(t.connect, t.greeting));
    po.pool.single_threaded = true; // io below is run by this thread alone
    po.limits = rate_limits;
    po.limit_store = store;
    // The store's state changes (Redis lost, back, refusing us) go to standard error.
    po.limit_store.redis.log.level = log_level::warning;
    po.limit_store.redis.log.sink = [](log_level, std::string_view line) {
        std::fprintf(stderr, "mailroom: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    mo.retry.max_attempts = 3;
    mo.retry.max_backoff = std::chrono::seconds(5);
    if (deadline) {
        const std::chrono::seconds d(*deadline);
        po.pool.checkout_timeout = std::min<pool::duration>(po.pool.checkout_timeout, d);
        mo.retry.deadline = std::min<std::chrono::steady_clock::duration>(mo.retry.deadline, d);
    }
    mo.providers.push_back(std::move(po));

    asio::io_context io(1);
    // One token source for every connection of the run.
    server.attach_tokens(mo.providers.back().server, io.get_executor());
    const auto tokens =
        mo.providers.back().server.auth ? mo.providers.back().server.auth->tokens : nullptr;
    const retry_options mo_retry = mo.retry;
    mailer m(io.get_executor(), std::move(mo));
    run_state st;
    st.count = *count;
    const bool show = progress == "always" || (progress == "auto" && isatty(STDERR_FILENO));

    // One builder serves as the template: the body is prepared once, in text(); each message
    // gets its own Subject, Date and Message-ID.
    mime::message_builder tmpl;
    tmpl.from(mailbox(*from)).to(mailbox(env.recipients.front())).text({});
    for (const mime::dkim_signer& s : signers)
        tmpl.dkim(s);
    make = [&](std::uint64_t i) -> mime::message {
        if (fixed)
            return *fixed;
        tmpl.subject("mailroom bulk " + std::to_string(i + 1) + " of " + std::to_string(st.count));
        diagnostics d;
        auto built = tmpl.build(d);
        if (!built)
            throw failure(ex_dataerr, "bulk: " + error_text(built.error(), d.to_string()));
        return built->with_envelope(env);
    };

    if (!fixed) {
        // Size the body so the whole message comes to about --size octets: what the headers
        // take is measured on a message with an empty body. Lines end in CRLF on the wire.
        const auto overhead = make(st.count - 1).size();
        const std::size_t want = size > overhead ? size - overhead : 1;
        tmpl.text(filler(want - want / 77));
    }

    asio::steady_timer ticker(io), grace_timer(io), deadline_timer(io);
    // Signals are caught for the whole run, and while the report is printed; the first one
    // stops the run gracefully, a second at once.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    sender run{m, st, make, {}, 0, {}, {}, false, false, {}, false};
    run.one_attempt = mo_retry;
    run.one_attempt.max_attempts = 1;
    run.on_finished = [&] {
        ticker.cancel();
        grace_timer.cancel();
        deadline_timer.cancel();
        signals.cancel();
        // A refresh ahead of expiry still under way would hold the run until it ends.
        if (tokens)
            tokens->close();
        // A stopped run ends now: connections still being opened (a server that never
        // greets) would otherwise hold it until their own timeouts.
        if (st.stopping)
            run.close();
    };
    // The second signal, or the end of the grace period: the sends under way are cancelled
    // (terminal). Should one not end by itself, the mailer is closed shortly after.
    auto stop_now = [&] {
        run.stop(asio::cancellation_type::terminal);
        grace_timer.expires_after(std::chrono::seconds(2));
        grace_timer.async_wait([&](error_code ec) {
            if (!ec)
                run.close();
        });
    };
    // The first signal, or the deadline: no more sends start, the waiting ones are cancelled,
    // and those under way get --grace seconds to finish before they are cancelled too.
    auto stop_gracefully = [&] {
        if (st.finished || st.stopping)
            return;
        run.stop(asio::cancellation_type::partial);
        grace_timer.expires_after(std::chrono::seconds(grace));
        grace_timer.async_wait([&](error_code ec) {
            if (!ec && !st.finished)
                stop_now();
        });
    };
    std::function<void(error_code, int)> on_signal = [&](error_code ec, int sig) {
        if (ec || st.finished)
            return;
        if (st.signal) {
            stop_now();
            return;
        }
        st.signal = sig;
        st.stopped_by = sig == SIGINT ? "SIGINT" : "SIGTERM";
        stop_gracefully();
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);
    if (deadline) {
        deadline_timer.expires_after(std::chrono::seconds(*deadline));
        deadline_timer.async_wait([&](error_code ec) {
            if (ec || st.finished)
                return;
            st.deadline_passed = true;
            if (st.stopped_by.empty())
                st.stopped_by = "deadline";
            stop_gracefully();
        });
    }
    const std::uint64_t workers = std::min<std::uint64_t>(in_flight, st.count);
    run.start(workers);
    st.start = clock::now();
    // Started from inside io.run(), as coroutines would be: each send's first step then runs
    // at once, in order.
    asio::post(io, [&run, workers] {
        for (std::uint64_t w = 0; w < workers; ++w)
            run.next(w);
    });
    if (show) {
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                while (!st.finished) {
                    draw_progress(st, false);
                    ticker.expires_after(std::chrono::milliseconds(200));
                    co_await ticker.async_wait(asio::as_tuple(asio::use_awaitable));
                }
                draw_progress(st, true);
            },
            asio::detached);
    }
    io.run();

    const auto snap = m.snapshot();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double user = static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6;
    const double sys = static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6;
    const double wall = seconds(st.end - st.start);
    const double rate = wall > 0 ? static_cast<double>(st.done) / wall : 0;
    const std::uint64_t sent = st.delivered + st.partial;
    const auto& pv = snap.providers.front();

    if (json) {
        std::string j = "{\"sent\":" + std::to_string(sent);
        j += ",\"delivered\":" + std::to_string(st.delivered);
        j += ",\"partial\":" + std::to_string(st.partial);
        j += ",\"failed\":" + std::to_string(st.failed);
        j += ",\"unknown\":" + std::to_string(st.unknown);
        j += ",\"not_attempted\":" + std::to_string(st.not_attempted());
        j += ",\"stopped_by\":" + (st.stopped_by.empty() ? "null" : json_string(st.stopped_by));
        j += "," + settings;
        char buf[512];
        std::snprintf(buf, sizeof buf,
                      ",\"seconds\":%.6f,\"messages_per_second\":%.1f,"
                      "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
                      "\"cpu_seconds\":%.6f,\"cpu_user_seconds\":%.6f,\"cpu_system_seconds\":%.6f,"
                      "\"peak_rss_kib\":%ld",
                      wall, rate, millis(st.latency.percentile(0.5)),
                      millis(st.latency.percentile(0.99)), millis(st.latency.max()), user + sys,
                      user, sys, ru.ru_maxrss);
        j += buf;
        j += ",\"connections_opened\":" + std::to_string(pv.pool.connects);
        j += ",\"retries\":" + std::to_string(pv.retries);
        j += ",\"breaker_trips\":" + std::to_string(pv.pool.breaker_trips);
        if (pv.limiter && pv.limiter->store) {
            const auto& ls = *pv.limiter->store;
            char sb[512];
            std::snprintf(
                sb, sizeof sb,
                ",\"limit_store\":{\"state\":\"%s\",\"commands\":%llu,"
                "\"commands_per_message\":%.4f,\"acquires\":%llu,\"failures\":%llu,"
                "\"leases\":%llu,\"leased_tokens\":%llu,\"mean_lease\":%.2f,"
                "\"refunded_tokens\":%llu,\"fallback_grants\":%llu,\"redis_wait_ms\":%.3f,"
                "\"shared_rate_permille\":%u}",
                limit::to_string(ls.state), static_cast<unsigned long long>(ls.commands),
                st.done ? static_cast<double>(ls.commands) / static_cast<double>(st.done) : 0.0,
                static_cast<unsigned long long>(ls.acquires),
                static_cast<unsigned long long>(ls.failures),
                static_cast<unsigned long long>(ls.leases),
                static_cast<unsigned long long>(ls.leased_tokens),
                ls.leases ? static_cast<double>(ls.leased_tokens) / static_cast<double>(ls.leases)
                          : 0.0,
                static_cast<unsigned long long>(ls.refunded_tokens),
                static_cast<unsigned long long>(ls.fallback_grants), millis(ls.redis_wait),
                ls.shared_rate_permille);
            j += sb;
        }
        j += ",\"errors\":{";
        bool first = true;
        for (auto& [text, n] : st.errors) {
            if (!first)
                j += ',';
            j += json_string(text) + ":" + std::to_string(n);
            first = false;
        }
        j += "}}";
        std::printf("%s\n", j.c_str());
    } else {
        std::printf("sent %llu, failed %llu, unknown %llu of %llu in %.2f s: %.0f messages/s\n",
                    static_cast<unsigned long long>(sent),
                    static_cast<unsigned long long>(st.failed),
                    static_cast<unsigned long long>(st.unknown),
                    static_cast<unsigned long long>(st.count), wall, rate);
        if (!st.stopped_by.empty() || st.not_attempted() > 0)
            std::printf("stopped by %s: delivered %llu, partial %llu, failed %llu, unknown %llu, "
                        "not attempted %llu\n",
                        st.stopped_by.c_str(), static_cast<unsigned long long>(st.delivered),
                        static_cast<unsigned long long>(st.partial),
                        static_cast<unsigned long long>(st.failed),
                        static_cast<unsigned long long>(st.unknown),
                        static_cast<unsigned long long>(st.not_attempted()));
        std::printf("latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                    millis(st.latency.percentile(0.5)), millis(st.latency.percentile(0.99)),
                    millis(st.latency.max()));
        std::printf("cpu %.2f s (user %.2f, system %.2f), peak memory %.1f MiB\n", user + sys, user,
                    sys, static_cast<double>(ru.ru_maxrss) / 1024.0);
        std::printf("connections opened %llu, retries %llu\n",
                    static_cast<unsigned long long>(pv.pool.connects),
                    static_cast<unsigned long long>(pv.retries));
        if (pv.limiter && pv.limiter->store) {
            const auto& ls = *pv.limiter->store;
            std::printf(
                "limit store %s: %llu Redis commands (%.3f per message), %llu leases "
                "(%.1f tokens on average), %.0f ms waiting for Redis\n",
                limit::to_string(ls.state), static_cast<unsigned long long>(ls.commands),
                st.done ? static_cast<double>(ls.commands) / static_cast<double>(st.done) : 0.0,
                static_cast<unsigned long long>(ls.leases),
                ls.leases ? static_cast<double>(ls.leased_tokens) / static_cast<double>(ls.leases)
                          : 0.0,
                millis(ls.redis_wait));
            if (ls.fallback_grants > 0)
                std::printf("  %llu granted by the local fallback while Redis was away\n",
                            static_cast<unsigned long long>(ls.fallback_grants));
        }
        if (pv.pool.breaker_trips > 0)
            std::printf("circuit breaker opened %llu times (the server was not there)\n",
                        static_cast<unsigned long long>(pv.pool.breaker_trips));
        for (auto& [text, n] : st.errors)
            std::printf("  %llu x %s\n", static_cast<unsigned long long>(n), text.c_str());
    }
    std::fflush(stdout);
    // A stopped run says why in its status: 128 + the signal, as a shell would; the deadline
    // is a temporary failure unless every message went anyway.
    if (st.signal)
        return 128 + st.signal;
    if (st.deadline_passed && st.delivered + st.partial < st.count) {
        if (!json)
            std::fprintf(stderr, "mailroom: bulk: the deadline (%llu s) passed\n",
                         static_cast<unsigned long long>(*deadline));
        return ex_tempfail;
    }
    if (st.first_error) {
        if (!json)
            std::fprintf(stderr, "mailroom: bulk: first failure: %s%s\n",
                         error_text(st.first_error, st.first_detail).c_str(),
                         hint_for(st.first_error, tls_mode).c_str());
        return exit_for(st.first_error);
    }
    return st.partial ? ex_tempfail : ex_ok;
}

const char* bulk_usage()
{
    static const std::string text =
        std::string("usage: mailroom bulk --server URL --count N [options]\n"
                    "sends N messages through a mailer (connection pool + rate limiter)\n") +
        server_options::usage() +
        "  --count N              messages to send (required)\n"
        "  --connections K        connections in the pool (default 4)\n"
        "  --pipeline-depth D     sends sharing a pipelining connection (default 4)\n"
        "  --concurrency C        sends in flight at most (default K x D)\n"
        "  --rate R/s|R/m|R/h|R/d a rate limit; repeat for several buckets at once\n"
        "  --burst B              depth of each rate bucket (default: its R)\n" +
        std::string(limit_options::usage()) +
        "  --size BYTES           size of each generated message, about (default 2048)\n"
        "  --recipients R         recipients per message (default 1; rcpt+1@..., ...)\n"
        "  --from ADDR            sender (default sender@example.com)\n"
        "  --to ADDR              recipient (default rcpt@example.net)\n"
        "  --eml FILE             send this message every time instead of composing ('-':\n"
        "                         standard input); its envelope comes from its headers\n"
        "                         unless --from/--to given\n"
        "  --max-size BYTES       the most the --eml file may hold; K, M, G suffixes\n"
        "                         (default 64M); it must be a regular file\n"
        "  --deadline SECONDS     for the whole run: then no more sends start, those waiting\n"
        "                         for a connection or the rate limiter are cancelled (counted\n"
        "                         not_attempted; failed if an earlier attempt failed), those\n"
        "                         under way get --grace; exit 75 unless all were delivered\n"
        "  --grace SECONDS        how long sends under way may finish after the first\n"
        "                         SIGINT/SIGTERM or the deadline (default 10); then they are\n"
        "                         cancelled (failed, or unknown if the final dot was written)\n"
        "  --json                 the summary as JSON on stdout (with the server, TLS mode,\n"
        "                         AUTH mechanism and rate buckets used)\n"
        "  --dry-run              print the server, TLS mode, AUTH mechanism and rate buckets\n"
        "                         (--provider's, or as given) and exit without connecting\n"
        "  --progress WHEN        auto (default: on a terminal) | always | never\n" +
        std::string(dkim_options::usage()) +
        "The summary accounts for every message: delivered, partial, failed, unknown (the final\n"
        "dot was written but no reply came: it may have been delivered) and not_attempted\n"
        "(never started, or stopped while it waited for its first attempt: nothing of it\n"
        "reached the server); they add up to --count. SIGINT or SIGTERM stops the run as\n"
        "--deadline does and prints the summary, exit 130 or 143; a second signal cancels the\n"
        "sends under way at once.\n";
    return text.c_str();
}

} // namespace mailroom::cli
