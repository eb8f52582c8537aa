// The mailer: one coroutine per send, on its provider's strand, as a straight-line script:
// limiter, pool, SMTP transaction, then the retry decision (retry.hpp, pure) and a jittered
// wait. Routing is routing.hpp's (pure); counters are atomics so snapshot() can read them
// from any thread.

#include <mailroom/limit/limiter.hpp>
#include <mailroom/mailer/mailer.hpp>
#include <mailroom/pool/pool.hpp>
#include <mailroom/smtp/rate_signal.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include "detail/backoff.hpp"
#include "detail/completion.hpp"
#include "retry.hpp"
#include "routing.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <unordered_set>

namespace mailroom {

using clock = std::chrono::steady_clock;
using send_handler = asio::any_completion_handler<void(error_code, send_report)>;
using mailroom::detail::post_completion;

namespace detail {

namespace {

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

struct send_op;

struct provider_state {
    provider_state(asio::any_io_executor strand_, provider_options o,
                   std::shared_ptr<redis::client> store_client = {})
        : strand(strand_)
        , name(o.name)
        , pool(strand_, o.server, o.pool)
        , rng(std::random_device{}())
        , deadline_timer(strand_)
    {
        const auto& l = o.limits;
        if (o.limit_store.kind == limit::store_kind::redis)
            limiter.emplace(strand_, l, o.limit_store, std::move(store_client), o.name);
        else if (!l.buckets.empty() || l.max_in_flight != 0)
            limiter.emplace(strand_, l);
    }

    asio::any_io_executor strand;
    std::string name;
    pool::pool pool;
    std::optional<limit::limiter> limiter;
    std::mt19937_64 rng; // used on the strand only

    // Sends sleeping between attempts (used on the strand only), so close() can wake them.
    std::unordered_set<send_op*> sleeping;
    bool closed = false; // on the strand

    // Sends waiting for the limiter or a connection that their deadline (retry_options) may
    // stop, by deadline, with one timer for the earliest (on the strand): a waiting send costs
    // a map node, not a timer.
    using deadline_map = std::multimap<clock::time_point, send_op*>;
    deadline_map deadlines;
    asio::steady_timer deadline_timer;
    std::optional<clock::time_point> deadline_armed;
    std::weak_ptr<mailer_impl> owner; // the timer's handler checks the provider is still there
    void arm_deadlines(clock::time_point at);
    void deadlines_due();

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

// One send, from the call to its report: a small state machine on the provider's strand. Each
// step starts one operation whose handler (bound to the strand) runs the next step:
//
//   attempt → [limiter wait] → [pool checkout] → SMTP transaction → done or retry → attempt
//
// Callbacks rather than a coroutine: a send waiting for the limiter or a connection then holds
// only this object and the waiter's handler (about 800 octets, bench/run_waiters.sh), where a
// coroutine frame would keep every local of every step alive (benchmarked: about 6 KiB).
struct send_op : std::enable_shared_from_this<send_op> {
    send_op(std::shared_ptr<mailer_impl> i, provider_state& prov, mime::message msg,
            smtp::send_options so, const retry_options& r, send_handler h)
        : self(std::move(i))
        , p(prov)
        , m(std::move(msg))
        , smtp_options(std::move(so))
        , ro(r)
        , handler(std::move(h))
        , start(clock::now())
    {
    }

    ~send_op()
    {
        p.sleeping.erase(this);
        unwatch();
    }

    std::shared_ptr<mailer_impl> self;
    provider_state& p;
    mime::message m;
    smtp::send_options smtp_options;
    retry_options ro;
    send_handler handler;
    clock::time_point start, step_start;
    // What the report will say. A waiting send holds only its times and attempts: the delivery
    // report is made when there is something to put in it (a transaction's report, a failure's
    // diagnostics), the send_report when the send ends.
    send_report::timings time{};
    unsigned attempts = 0;
    std::unique_ptr<smtp::delivery_report> delivery;
    limit::permit permit;
    pool::connection conn; // during a transaction
    unsigned failures = 0;
    error_code last_ec; // the last failed attempt's error, once one was retried
    provider_state::deadline_map::iterator watching = p.deadlines.end();
    bool deadline_passed = false; // the deadline timer cancelled the wait under way
    bool cancelled = false;
    bool no_retry = false;            // partial or total cancellation reached a transaction
    bool in_transaction = false;      // an SMTP transaction is under way
    asio::cancellation_signal cancel; // emitted on the strand; reaches the step under way
    std::unique_ptr<asio::steady_timer> timer;

    smtp::delivery_report& report()
    {
        if (!delivery) {
            delivery = std::make_unique<smtp::delivery_report>();
            delivery->message_id = m.message_id();
        }
        return *delivery;
    }

    template <class F> auto on_strand(F f)
    {
        return asio::bind_cancellation_slot(cancel.slot(),
                                            asio::bind_executor(p.strand, std::move(f)));
    }

    // When the send's deadline passes; nothing if it never does.
    std::optional<clock::time_point> deadline() const
    {
        if (ro.deadline >= clock::time_point::max() - start)
            return std::nullopt;
        return start + ro.deadline;
    }

    // Bounds the wait about to start by the send's deadline: when it passes, the wait is
    // cancelled (deadline_passed says why). `other_bound`: the wait ends by itself by then
    // (the pool's checkout_timeout), so it needs no watching. False: the deadline has passed.
    bool watch(std::optional<clock::time_point> other_bound = std::nullopt)
    {
        const auto d = deadline();
        if (!d)
            return true;
        const auto now = clock::now();
        if (now >= *d)
            return false;
        deadline_passed = false;
        if (other_bound && *other_bound <= *d)
            return true;
        watching = p.deadlines.emplace(*d, this);
        if (!p.deadline_armed || *d < *p.deadline_armed)
            p.arm_deadlines(*d);
        return true;
    }

    void unwatch()
    {
        if (watching == p.deadlines.end())
            return;
        p.deadlines.erase(watching);
        watching = p.deadlines.end();
        if (p.deadlines.empty() && p.deadline_armed) {
            // Nothing left to time: the timer would keep the io_context running.
            p.deadline_armed.reset();
            p.deadline_timer.cancel();
        }
    }

    // The deadline passed while the send waited for `what` (the rate limiter or a
    // connection). After a failed attempt the report keeps that attempt's error, as when the
    // deadline stops a retry; otherwise error::send_deadline_exceeded.
    void deadline_exceeded(const char* what)
    {
        permit.cancel(); // nothing reached the server
        const std::string why =
            std::string("the send's deadline passed while it waited for ") + what;
        if (last_ec) {
            report().diag.detail += " (" + why + ")";
            return finish(last_ec);
        }
        report().diag = {what, why};
        finish(make_error_code(error::send_deadline_exceeded));
    }

    void attempt()
    {
        if (cancelled)
            return finish(asio::error::operation_aborted);
        ++attempts;
        if (!p.limiter)
            return checkout();
        const auto cost = p.limiter->cost_for(m.envelope().recipients.size());
        error_code ec;
        permit = p.limiter->try_acquire(cost, ec);
        if (ec)
            return limiter_failed(ec);
        if (permit)
            return checkout();
        if (!watch())
            return deadline_exceeded("the rate limiter");
        step_start = clock::now();
        p.limiter->async_acquire(
            cost, on_strand([op = shared_from_this()](error_code ec, limit::permit pm) {
                op->unwatch();
                const auto waited = clock::now() - op->step_start;
                op->time.limiter += waited;
                op->p.limiter_wait.record(waited);
                if (ec == asio::error::operation_aborted && op->deadline_passed && !op->cancelled)
                    return op->deadline_exceeded("the rate limiter");
                if (ec)
                    return op->limiter_failed(ec);
                op->permit = std::move(pm);
                op->checkout();
            }));
    }

    void limiter_failed(error_code ec)
    {
        report().diag = {"rate limiter", ec.message()};
        finish(ec);
    }

    void checkout()
    {
        if (cancelled)
            return finish(asio::error::operation_aborted);
        // The fast path takes a free connection at once; otherwise wait in line.
        if (auto conn = p.pool.try_acquire())
            return transact(std::move(conn));
        step_start = clock::now();
        if (!watch(step_start + p.pool.options().checkout_timeout))
            return deadline_exceeded("a connection");
        p.pool.async_acquire(on_strand([op = shared_from_this()](error_code ec,
                                                                 pool::connection conn) {
            op->unwatch();
            op->time.checkout += clock::now() - op->step_start;
            if (!ec)
                return op->transact(std::move(conn));
            if (ec == asio::error::operation_aborted && op->deadline_passed && !op->cancelled)
                return op->deadline_exceeded("a connection");
            op->permit.cancel(); // nothing reached the server
            auto [cec, cdiag] = op->p.pool.last_connect_error();
            if (ec == error::circuit_open)
                op->report().diag = {
                    "connection",
                    "circuit breaker open; the last connect failed: " + cec.message() +
                        (cdiag.to_string().empty() ? std::string()
                                                   : " (" + cdiag.to_string() + ")")};
            else
                op->report().diag = {"connection", cec == ec ? cdiag.to_string() : ec.message()};
            op->decide(ec, false);
        }));
    }

    void transact(pool::connection c)
    {
        in_transaction = true;
        step_start = clock::now();
        conn = std::move(c);
        conn.async_send(
            m, smtp_options,
            on_strand([op = shared_from_this()](error_code ec, smtp::delivery_report dr) {
                op->time.smtp += clock::now() - op->step_start;
                op->in_transaction = false;
                op->conn.release();
                op->transacted(ec, std::move(dr));
            }));
    }

    void transacted(error_code ec, smtp::delivery_report dr)
    {
        // The limiter sees a verdict, not the reply (limit knows nothing of SMTP); a reply that
        // says nothing of our rate leaves it alone.
        if (p.limiter)
            if (auto rp = reply_for_limiter(dr))
                if (const limit::signal s = smtp::rate_signal(*rp); s != limit::signal::none)
                    p.limiter->on_signal(s);
        mailer_impl::count_reply(p, dr, ec);
        permit.release();
        if (delivery)
            *delivery = std::move(dr);
        else
            delivery = std::make_unique<smtp::delivery_report>(std::move(dr));
        decide(ec, true);
    }

    void decide(error_code ec, bool reached_server)
    {
        // A send that ended before the cancellation could stop it keeps its result.
        if (cancelled && ec && ec != error::delivery_status_unknown)
            ec = asio::error::operation_aborted;
        if (no_retry || !may_retry(ec, reached_server ? delivery.get() : nullptr, ro.retry_unknown))
            return finish(ec);
        if (attempts >= ro.max_attempts) {
            report().diag.detail += " (no attempts left)";
            return finish(ec);
        }
        ++failures;
        const pool::backoff_options bo{ro.initial_backoff, ro.max_backoff};
        const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(p.rng);
        auto delay = pool::detail::backoff_delay(bo, failures, unit);
        // Retrying into an open circuit breaker would fail at once: wait until it lets a
        // probe through (every send that waited so gets in line behind that one probe).
        bool breaker_wait = false;
        if (!reached_server) {
            const auto ps = p.pool.snapshot();
            if (ps.breaker == pool::breaker_state::open &&
                ps.breaker_half_open_at - clock::now() > delay) {
                delay = ps.breaker_half_open_at - clock::now();
                breaker_wait = true;
            }
        }
        if (clock::now() + delay - start > ro.deadline) {
            report().diag.detail += breaker_wait
                                        ? " (the circuit breaker stays open past the deadline)"
                                        : " (the retry deadline would pass)";
            return finish(ec);
        }
        last_ec = ec;
        if (self->log.enabled(log_level::info))
            self->log(log_level::info, "mailer[" + p.name + "] " + m.message_id() + " attempt " +
                                           std::to_string(attempts) + " failed: " + ec.message() +
                                           "; retrying");
        p.retries.fetch_add(1, relaxed);
        if (p.closed)
            return finish(asio::error::operation_aborted);
        if (!timer)
            timer = std::make_unique<asio::steady_timer>(p.strand);
        timer->expires_after(delay);
        step_start = clock::now();
        p.sleeping.insert(this);
        timer->async_wait(on_strand([op = shared_from_this(), ec](error_code wec) {
            op->p.sleeping.erase(op.get());
            op->time.backoff += clock::now() - op->step_start;
            if (wec)
                return op->finish(op->cancelled ? wec : ec);
            op->attempt();
        }));
    }

    void finish(error_code ec)
    {
        send_report rep;
        rep.delivery = std::move(report());
        rep.provider = p.name;
        rep.attempts = attempts;
        rep.time = time;
        rep.time.total = clock::now() - start;
        asio::get_associated_cancellation_slot(handler).clear();
        self->finished(p, ec, rep);
        post_completion(self->ex, std::move(handler), ec, std::move(rep));
    }

    // Cancellation from the caller: stop at the next step, and cancel the one under way. A
    // limiter or pool wait or a backoff takes any type (nothing was sent); an SMTP transaction
    // only terminal cancellation, which closes its connection: what was sent can't be taken
    // back, so partial and total let it run to its end.
    void start_watching()
    {
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (!slot.is_connected())
            return;
        std::weak_ptr<send_op> weak = weak_from_this();
        slot.assign([weak](asio::cancellation_type t) {
            if (auto op = weak.lock())
                asio::dispatch(op->p.strand, [op, t] {
                    if (op->in_transaction &&
                        (t & asio::cancellation_type::terminal) == asio::cancellation_type::none) {
                        // Partial or total: the transaction ends as it will, and nothing
                        // follows it (no retry).
                        op->no_retry = true;
                        return;
                    }
                    op->cancelled = true;
                    op->cancel.emit(t);
                });
        });
    }
};

} // namespace detail

// ---- mailer -------------------------------------------------------------------------------

namespace {

[[noreturn]] void bad_options(error_code ec, const std::string& what)
{
    throw boost::system::system_error(ec, what);
}

// The text a system_error was made with: what() appends ": <message> [<category>:<value>]",
// which the mailer's own system_error appends again.
std::string what_arg(const boost::system::system_error& e)
{
    std::string w = e.what();
    const auto cut = w.rfind(": " + e.code().message());
    return cut == std::string::npos ? w : w.substr(0, cut);
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
    std::map<std::string, std::shared_ptr<redis::client>> redis_clients;
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
            // One Redis connection per server, shared by the providers that name it.
            std::shared_ptr<redis::client> store_client;
            if (po.limit_store.kind == limit::store_kind::redis) {
                auto& r = po.limit_store.redis;
                if (r.log.sink == nullptr)
                    r.log = options.log;
                const std::string id = std::string(r.tls ? "rediss://" : "redis://") + r.username +
                                       "@" + r.host + ":" + std::to_string(r.port) + "/" +
                                       std::to_string(r.db);
                auto& c = redis_clients[id];
                if (!c)
                    c = std::make_shared<redis::client>(ex, r);
                store_client = c;
            }
            i->providers.push_back(std::make_unique<detail::provider_state>(
                po.pool.single_threaded ? ex : asio::make_strand(ex), po, store_client));
            i->providers.back()->owner = i;
        } catch (const boost::system::system_error& e) {
            bad_options(e.code(), where + " (" + po.name + "): " + what_arg(e));
        }
    }
    if (options.require_route) {
        if (!options.default_provider.empty())
            bad_options(invalid, "default_provider: not with require_route");
    } else if (options.default_provider.empty()) {
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

namespace detail {

void provider_state::arm_deadlines(clock::time_point at)
{
    deadline_armed = at;
    deadline_timer.expires_at(at);
    deadline_timer.async_wait(asio::bind_executor(strand, [this, w = owner](error_code ec) {
        // Cancelled: re-armed, or nothing left to time. The mailer gone: so is `this`.
        auto keep = w.lock();
        if (!ec && keep)
            deadlines_due();
    }));
}

void provider_state::deadlines_due()
{
    deadline_armed.reset();
    const auto now = clock::now();
    while (!deadlines.empty() && deadlines.begin()->first <= now) {
        send_op* op = deadlines.begin()->second;
        deadlines.erase(deadlines.begin());
        op->watching = deadlines.end();
        op->deadline_passed = true;
        // The wait under way (limiter or pool) honours any type; it completes later, with
        // operation_aborted, and deadline_exceeded() says why.
        op->cancel.emit(asio::cancellation_type::terminal);
    }
    if (!deadlines.empty())
        arm_deadlines(deadlines.begin()->first);
}

} // namespace detail

void mailer::close() noexcept
{
    if (!impl_)
        return;
    impl_->shutting_down.store(true);
    for (auto& p : impl_->providers) {
        p->pool.close();
        if (p->limiter)
            p->limiter->close();
        // Wake the sends waiting to retry: they end with operation_aborted.
        asio::dispatch(p->strand, [prov = p.get(), keep = impl_] {
            prov->closed = true;
            for (auto* op : prov->sleeping) {
                op->cancelled = true;
                op->timer->cancel();
            }
        });
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
    auto op = std::make_shared<detail::send_op>(i, *p, std::move(m), std::move(r.smtp),
                                                r.retry.value_or(i->retry), std::move(h));
    op->start_watching();
    asio::dispatch(p->strand, [op] { op->attempt(); });
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
        p->pool.async_drain([st, i](error_code) {
            if (--st->left != 0)
                return;
            // Every send is done: the limiters go too (a shared limit store's connection with
            // them).
            for (auto& q : i->providers)
                if (q->limiter)
                    q->limiter->close();
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
