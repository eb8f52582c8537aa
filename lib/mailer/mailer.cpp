// The mailer: one coroutine per send, on its provider's strand, as a straight-line script:
// limiter, pool, SMTP transaction, then the retry decision (retry.hpp, pure) and a jittered
// wait. Routing is routing.hpp's (pure); counters are atomics so snapshot() can read them
// from any thread.

#include <mailroom/limit/limiter.hpp>
#include <mailroom/mailer/mailer.hpp>
#include <mailroom/pool/pool.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include "detail/completion.hpp"
#include "mailer/retry.hpp"
#include "mailer/routing.hpp"
#include "pool/backoff.hpp"
#include "smtp/asio.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <random>
#include <set>

namespace mailroom {

using clock = std::chrono::steady_clock;
using send_handler = asio::any_completion_handler<void(error_code, send_report)>;
using mailroom::detail::post_completion;

namespace detail {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto relaxed = std::memory_order_relaxed;

// A latency_histogram that many threads may add to and one may read.
struct atomic_histogram {
    std::array<std::atomic<std::uint64_t>, latency_histogram::buckets> counts{};
    std::atomic<std::int64_t> max{0}; // ticks

    void record(clock::duration d) noexcept
    {
        counts[latency_histogram::bucket_of(d)].fetch_add(1, relaxed);
        auto m = max.load(relaxed);
        while (d.count() > m && !max.compare_exchange_weak(m, d.count(), relaxed))
            ;
    }
    latency_histogram read() const noexcept
    {
        latency_histogram h;
        const clock::duration m(max.load(relaxed));
        for (unsigned b = 0; b < latency_histogram::buckets; ++b)
            if (auto n = counts[b].load(relaxed))
                h.add(b, n, m);
        return h;
    }
};

} // namespace

struct provider_state {
    provider_state(asio::any_io_executor strand_, provider_options o)
        : strand(strand_)
        , name(o.name)
        , pool(strand_, o.server, o.pool)
        , rng(std::random_device{}())
    {
        const auto& l = o.limits;
        if (!l.buckets.empty() || l.max_in_flight != 0)
            limiter.emplace(strand_, l);
    }

    asio::any_io_executor strand;
    std::string name;
    pool::pool pool;
    std::optional<limit::limiter> limiter;
    std::mt19937_64 rng; // used on the strand only

    std::atomic<std::uint64_t> delivered{0}, partial{0}, failed{0}, unknown{0}, retries{0},
        in_progress{0};
    std::array<std::atomic<std::uint64_t>, 6> replies{};
    atomic_histogram latency, limiter_wait;
};

struct mailer_impl : std::enable_shared_from_this<mailer_impl> {
    asio::any_io_executor ex;
    std::vector<std::unique_ptr<provider_state>> providers;
    route_table routes;
    retry_options retry;
    logger log;
    std::atomic<bool> shutting_down{false};

    std::optional<std::size_t> find(const std::string& name) const
    {
        for (std::size_t i = 0; i < providers.size(); ++i)
            if (providers[i]->name == name)
                return i;
        return std::nullopt;
    }

    static void count_reply(provider_state& p, const smtp::delivery_report& r, error_code ec)
    {
        int code = 0;
        if (auto rp = reply_for_limiter(r))
            code = rp->code;
        else if (ec.category() == smtp::reply_category())
            code = ec.value();
        if (code >= 200 && code < 600)
            p.replies[static_cast<std::size_t>(code / 100)].fetch_add(1, relaxed);
    }

    // GCC 12 warns that the coroutine frame's class-specific operator delete doesn't match its
    // operator new (-Wmismatched-new-delete): both are Asio's awaitable_frame_base's; a false
    // positive of GCC's coroutine lowering (fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
    static asio::awaitable<std::pair<error_code, send_report>>
    run(std::shared_ptr<mailer_impl> self, provider_state* p, mime::message m, send_request r)
    {
        const auto start = clock::now();
        const retry_options ro = r.retry.value_or(self->retry);
        send_report rep;
        rep.provider = p->name;
        rep.delivery.message_id = m.message_id();
        error_code ec;
        unsigned failures = 0;
        for (;;) {
            ++rep.attempts;
            bool reached_server = false;
            limit::permit permit;
            const auto cost = p->limiter ? p->limiter->cost_for(m.envelope().recipients.size()) : 0;
            error_code try_ec;
            if (p->limiter && !(permit = p->limiter->try_acquire(cost, try_ec)) && !try_ec) {
                const auto t0 = clock::now();
                auto [e, pm] = co_await p->limiter->async_acquire(cost, use_tuple);
                const auto waited = clock::now() - t0;
                rep.time.limiter += waited;
                p->limiter_wait.record(waited);
                if (e) {
                    ec = e;
                    rep.delivery.diag = {"rate limiter", e.message()};
                    break;
                }
                permit = std::move(pm);
            } else if (try_ec) {
                ec = try_ec;
                rep.delivery.diag = {"rate limiter", try_ec.message()};
                break;
            }

            // The fast path takes a free connection at once; otherwise wait in line.
            pool::connection conn = p->pool.try_acquire();
            error_code e2;
            if (!conn) {
                const auto t1 = clock::now();
                std::tie(e2, conn) = co_await p->pool.async_acquire(use_tuple);
                rep.time.checkout += clock::now() - t1;
            }
            if (e2) {
                permit.cancel(); // nothing reached the server
                ec = e2;
                auto [cec, cdiag] = p->pool.last_connect_error();
                rep.delivery.diag = {"connection", cec == e2 ? cdiag.to_string() : e2.message()};
            } else {
                reached_server = true;
                const auto t2 = clock::now();
                auto [e3, dr] = co_await conn.async_send(m, r.smtp, use_tuple);
                rep.time.smtp += clock::now() - t2;
                conn.release();
                if (p->limiter)
                    if (auto rp = reply_for_limiter(dr))
                        p->limiter->on_reply(*rp);
                count_reply(*p, dr, e3);
                permit.release();
                rep.delivery = std::move(dr);
                ec = e3;
            }

            if (!may_retry(ec, reached_server ? &rep.delivery : nullptr, ro.retry_unknown))
                break;
            if (rep.attempts >= ro.max_attempts) {
                rep.delivery.diag.detail += " (no attempts left)";
                break;
            }
            ++failures;
            const pool::backoff_options bo{ro.initial_backoff, ro.max_backoff};
            const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(p->rng);
            const auto delay = pool::detail::backoff_delay(bo, failures, unit);
            if (clock::now() + delay - start > ro.deadline) {
                rep.delivery.diag.detail += " (the retry deadline would pass)";
                break;
            }
            if (self->log.enabled(log_level::info))
                self->log(log_level::info, "mailer[" + p->name + "] " + rep.delivery.message_id +
                                               " attempt " + std::to_string(rep.attempts) +
                                               " failed: " + ec.message() + "; retrying");
            p->retries.fetch_add(1, relaxed);
            asio::steady_timer t(p->strand, delay);
            const auto t3 = clock::now();
            auto [we] = co_await t.async_wait(use_tuple);
            rep.time.backoff += clock::now() - t3;
            if (we) {
                ec = we;
                break;
            }
        }
        rep.time.total = clock::now() - start;
        co_return std::pair{ec, std::move(rep)};
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    void finished(provider_state& p, error_code ec, const send_report& rep)
    {
        p.in_progress.fetch_sub(1, relaxed);
        p.latency.record(rep.time.total);
        if (!ec && rep.delivery.outcome == smtp::outcome::delivered)
            p.delivered.fetch_add(1, relaxed);
        else if (!ec && rep.delivery.outcome == smtp::outcome::partial)
            p.partial.fetch_add(1, relaxed);
        else if (rep.delivery.outcome == smtp::outcome::unknown)
            p.unknown.fetch_add(1, relaxed);
        else
            p.failed.fetch_add(1, relaxed);
    }
};

} // namespace detail

// ---- mailer -------------------------------------------------------------------------------

namespace {

[[noreturn]] void bad_options(error_code ec, const std::string& what)
{
    throw boost::system::system_error(ec, what);
}

} // namespace

mailer::mailer(executor_type ex, mailer_options options)
{
    auto i = std::make_shared<detail::mailer_impl>();
    i->ex = ex;
    i->retry = options.retry;
    i->log = options.log;
    const auto invalid = make_error_code(error::invalid_mailer_options);
    if (options.providers.empty())
        bad_options(invalid, "providers: at least one is needed");
    if (options.retry.max_attempts == 0)
        bad_options(invalid, "retry.max_attempts must be at least 1");
    if (options.retry.initial_backoff <= std::chrono::steady_clock::duration::zero() ||
        options.retry.max_backoff < options.retry.initial_backoff)
        bad_options(invalid, "retry: 0 < initial_backoff <= max_backoff");
    std::set<std::string> names;
    for (std::size_t n = 0; n < options.providers.size(); ++n) {
        auto& po = options.providers[n];
        const std::string where = "providers[" + std::to_string(n) + "]";
        if (po.name.empty())
            bad_options(invalid, where + ".name: empty");
        if (!names.insert(po.name).second)
            bad_options(invalid, where + ".name: '" + po.name + "' is used twice");
        if (po.server.log.sink == nullptr)
            po.server.log = options.log;
        for (const auto& d : po.sender_domains)
            if (auto e = i->routes.add(d, n))
                bad_options(e, where + ".sender_domains: '" + d + "'");
        try {
            i->providers.push_back(
                std::make_unique<detail::provider_state>(asio::make_strand(ex), po));
        } catch (const boost::system::system_error& e) {
            bad_options(e.code(), where + " (" + po.name + "): " + e.what());
        }
    }
    if (options.default_provider.empty()) {
        i->routes.fallback = 0;
    } else {
        i->routes.fallback = i->find(options.default_provider);
        if (!i->routes.fallback)
            bad_options(invalid,
                        "default_provider: no provider '" + options.default_provider + "'");
    }
    impl_ = std::move(i);
}

mailer::mailer(mailer&&) noexcept = default;
mailer& mailer::operator=(mailer&& other) noexcept
{
    if (this != &other) {
        close();
        impl_ = std::move(other.impl_);
    }
    return *this;
}
mailer::~mailer()
{
    close();
}

void mailer::close() noexcept
{
    if (!impl_)
        return;
    impl_->shutting_down.store(true);
    for (auto& p : impl_->providers) {
        p->pool.close();
        if (p->limiter)
            p->limiter->close();
    }
}

mailer::executor_type mailer::get_executor() const noexcept
{
    return impl_->ex;
}

result<std::string> mailer::route(const mailroom::address& sender) const
{
    auto n = impl_->routes.find(sender.domain_ascii());
    if (!n)
        return make_error_code(error::no_route);
    return impl_->providers[*n]->name;
}

void mailer::initiate_send(std::shared_ptr<detail::mailer_impl> i, mime::message m, send_request r,
                           send_handler h)
{
    auto fail = [&](error const e, std::string detail) {
        send_report rep;
        rep.delivery.message_id = m.message_id();
        rep.delivery.diag = {"route", std::move(detail)};
        post_completion(i->ex, std::move(h), make_error_code(e), std::move(rep));
    };
    std::optional<std::size_t> n;
    if (!r.provider.empty()) {
        n = i->find(r.provider);
        if (!n)
            return fail(error::unknown_provider, "no provider '" + r.provider + "'");
    } else {
        n = i->routes.find(m.envelope().from.domain_ascii());
        if (!n)
            return fail(error::no_route, "no provider for '" + m.envelope().from.str() + "'");
    }
    if (i->shutting_down.load(detail::relaxed))
        return fail(error::pool_closed, "the mailer is shutting down");
    auto* p = i->providers[*n].get();
    p->in_progress.fetch_add(1, detail::relaxed);
    auto slot = asio::get_associated_cancellation_slot(h);
    asio::co_spawn(
        p->strand, detail::mailer_impl::run(i, p, std::move(m), std::move(r)),
        asio::bind_cancellation_slot(
            slot, [i, p, h = std::move(h)](std::exception_ptr e,
                                           std::pair<error_code, send_report> out) mutable {
                if (e) {
                    out.first = make_error_code(error::protocol_error);
                    out.second.delivery.diag = {"mailer", "unexpected exception"};
                }
                i->finished(*p, out.first, out.second);
                post_completion(i->ex, std::move(h), out.first, std::move(out.second));
            }));
}

void mailer::initiate_shutdown(std::shared_ptr<detail::mailer_impl> i,
                               asio::any_completion_handler<void(error_code)> h)
{
    i->shutting_down.store(true);
    // Drain every pool; complete when the last one is done.
    struct state {
        std::atomic<std::size_t> left;
        asio::any_completion_handler<void(error_code)> handler;
        asio::any_io_executor ex;
    };
    auto st = std::make_shared<state>();
    st->left = i->providers.size();
    st->handler.swap(h); // not operator=: see detail/completion.hpp
    st->ex = i->ex;
    for (auto& p : i->providers)
        p->pool.async_drain([st](error_code) {
            if (--st->left == 0)
                post_completion(st->ex, std::move(st->handler), error_code{});
        });
}

mailer_snapshot mailer::snapshot() const
{
    mailer_snapshot s;
    for (auto& pp : impl_->providers) {
        auto& p = *pp;
        mailer_snapshot::provider o;
        o.name = p.name;
        o.delivered = p.delivered.load(detail::relaxed);
        o.partial = p.partial.load(detail::relaxed);
        o.failed = p.failed.load(detail::relaxed);
        o.unknown = p.unknown.load(detail::relaxed);
        o.retries = p.retries.load(detail::relaxed);
        for (std::size_t c = 0; c < 6; ++c)
            o.replies[c] = p.replies[c].load(detail::relaxed);
        o.in_progress = p.in_progress.load(detail::relaxed);
        o.pool = p.pool.snapshot();
        if (p.limiter)
            o.limiter = p.limiter->snapshot();
        o.latency = p.latency.read();
        o.limiter_wait = p.limiter_wait.read();
        s.providers.push_back(std::move(o));
    }
    return s;
}

} // namespace mailroom
