// The connection pool: connections, waiters and timers, all on one strand. Reconnect delays
// come from backoff.hpp (pure); everything else is bookkeeping a test can watch through the
// snapshot and a scripted server.

#include <mailroom/pool/pool.hpp>
#include <mailroom/smtp/client.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include "detail/completion.hpp"
#include "detail/shutdown.hpp"
#include "pool/backoff.hpp"
#include "smtp/asio.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace mailroom::pool {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using acquire_handler = asio::any_completion_handler<void(error_code, connection)>;
using mailroom::detail::post_completion;

namespace detail {

struct pooled {
    pooled(asio::any_io_executor ex, smtp::client_options o, std::uint64_t n)
        : client(std::move(ex), std::move(o))
        , id(n)
    {
    }
    enum class state { connecting, probing, ready };

    smtp::client client;
    std::uint64_t id;
    state st = state::connecting;
    std::size_t leases = 0;
    std::size_t checkouts = 0;
    std::size_t depth = 1; // leases allowed at once: pipeline_depth if the server pipelines
    time_point created{};
    time_point last_used{};
    bool retire = false; // lend no more; QUIT when the last lease comes back
};

struct waiter {
    acquire_handler handler;
    time_point deadline;
    bool done = false;
};

struct pool_impl final : std::enable_shared_from_this<pool_impl>,
                         mailroom::detail::shutdown_listener {
    pool_impl(asio::any_io_executor e, smtp::client_options s, pool_options o)
        : ex(std::move(e))
        , server(std::move(s))
        , opts(o)
        , checkout_timer(ex)
        , maintain_timer(ex)
        , backoff_timer(ex)
        , rng(std::random_device{}())
    {
        if (server.log.enabled(log_level::debug))
            prefix = "pool[" + server.host + "] ";
    }

    asio::any_io_executor ex; // a strand
    smtp::client_options server;
    pool_options opts;
    std::string prefix;

#ifndef NDEBUG
    // pool_options::single_threaded is a promise that one thread runs the executor's context;
    // broken, the pool's state would be raced on silently. Debug builds check it where every
    // send passes (checkout, return, serving waiters): the first thread there owns the pool.
    std::atomic<std::thread::id> owner{};
    void check_thread()
    {
        if (!opts.single_threaded)
            return;
        std::thread::id none{}, me = std::this_thread::get_id();
        if (!owner.compare_exchange_strong(none, me) && none != me) {
            std::fputs("mailroom: pool_options::single_threaded, but the pool runs on a second "
                       "thread (a multi-threaded io_context?): leave single_threaded false\n",
                       stderr);
            std::abort();
        }
    }
#else
    void check_thread() {}
#endif

    std::vector<std::shared_ptr<pooled>> conns; // connecting, probing or ready
    std::deque<std::shared_ptr<waiter>> waiters;
    std::size_t live_waiters = 0; // in `waiters` and not done
    std::size_t closing = 0;      // QUITs under way

    asio::steady_timer checkout_timer;
    std::optional<time_point> checkout_armed;
    asio::steady_timer maintain_timer;
    bool maintaining = false;
    asio::steady_timer backoff_timer;
    bool backing_off = false;

    unsigned failures = 0;
    time_point next_connect{};
    std::uint64_t next_id = 1;
    std::mt19937_64 rng;

    bool draining = false;
    bool closed = false;
    std::vector<asio::any_completion_handler<void(error_code)>> drain_handlers;

    // Read from any thread by snapshot().
    struct {
        std::atomic<std::size_t> open{0}, in_use{0}, connecting{0}, waiters{0}, leases{0};
        std::atomic<std::uint64_t> connects{0}, connect_failures{0}, checkouts{0},
            checkout_timeouts{0}, probes{0}, stale{0}, discarded{0}, retired{0};
    } stats;
    mutable std::mutex error_mutex;
    error_code last_error;
    diagnostics last_diag;

    void log(log_level l, const std::string& line) const
    {
        if (server.log.enabled(l))
            server.log(l, prefix + line);
    }

    // The io_context is shutting down: waiting checkouts and drains are dropped unrun, and
    // the connections go (see detail/shutdown.hpp).
    void on_shutdown() noexcept override
    {
        closed = true;
        auto w = std::move(waiters);
        waiters.clear();
        live_waiters = 0;
        auto d = std::move(drain_handlers);
        drain_handlers.clear();
        auto c = std::move(conns);
        conns.clear();
    }

    // ---- gauges -----------------------------------------------------------------------------

    void update_gauges()
    {
        std::size_t open = 0, in_use = 0, connecting = 0, leases = 0;
        for (auto& c : conns) {
            if (c->st == pooled::state::connecting) {
                ++connecting;
                continue;
            }
            ++open;
            in_use += c->leases > 0;
            leases += c->leases;
        }
        stats.open.store(open, std::memory_order_relaxed);
        stats.in_use.store(in_use, std::memory_order_relaxed);
        stats.connecting.store(connecting, std::memory_order_relaxed);
        stats.leases.store(leases, std::memory_order_relaxed);
        stats.waiters.store(live_waiters, std::memory_order_relaxed);
    }

    // ---- waiters ----------------------------------------------------------------------------

    void finish_waiter(waiter& w, error_code ec, connection c = {})
    {
        if (w.done)
            return;
        w.done = true;
        --live_waiters;
        asio::get_associated_cancellation_slot(w.handler).clear();
        post_completion(ex, std::move(w.handler), ec, std::move(c));
    }

    void drop_done_front()
    {
        while (!waiters.empty() && waiters.front()->done)
            waiters.pop_front();
    }

    void acquire(acquire_handler h)
    {
        check_thread();
        if (closed || draining) {
            post_completion(ex, std::move(h), make_error_code(error::pool_closed), connection{});
            return;
        }
        auto w = std::make_shared<waiter>();
        w->deadline = clock::now() + opts.checkout_timeout;
        auto slot = asio::get_associated_cancellation_slot(h);
        if (slot.is_connected()) {
            std::weak_ptr<pool_impl> weak = weak_from_this();
            std::weak_ptr<waiter> ww = w;
            slot.assign([weak, ww](asio::cancellation_type) {
                auto self = weak.lock();
                if (!self)
                    return;
                asio::dispatch(self->ex, [self, ww] {
                    if (auto w = ww.lock()) {
                        self->finish_waiter(*w, asio::error::operation_aborted);
                        self->serve(); // a connect it asked for may be needed no more
                    }
                });
            });
        }
        w->handler.swap(h); // not operator=: see detail/completion.hpp
        waiters.push_back(std::move(w));
        ++live_waiters;
        serve();
        arm_checkout_timer();
    }

    // The connection serve() would lend first, if it needs no probe; null if none.
    std::shared_ptr<pooled> pick_now(time_point now)
    {
        std::shared_ptr<pooled> idle, shared;
        for (auto& c : conns) {
            if (!lendable(*c, now))
                continue;
            if (c->leases == 0) {
                if (!idle || c->last_used > idle->last_used)
                    idle = c;
            } else if (c->leases < c->depth && (!shared || c->leases < shared->leases)) {
                shared = c;
            }
        }
        if (idle && (opts.probe_after_idle == duration::max() ||
                     now - idle->last_used < opts.probe_after_idle))
            return idle;
        if (idle) // needs a probe first: the slow path
            return nullptr;
        // Another connection may be opened for this send instead (serve() step 2): leave
        // that decision to the slow path too.
        if (conns.size() + closing < opts.max_connections)
            return nullptr;
        return shared;
    }

    connection try_acquire()
    {
        if (closed || draining || live_waiters != 0)
            return {};
        auto c = pick_now(clock::now());
        if (!c)
            return {};
        ++c->leases;
        ++c->checkouts;
        if (opts.max_messages_per_connection != 0 &&
            c->checkouts >= opts.max_messages_per_connection)
            c->retire = true;
        stats.checkouts.fetch_add(1, std::memory_order_relaxed);
        update_gauges();
        return connection{shared_from_this(), c};
    }

    void lend(const std::shared_ptr<pooled>& c, waiter& w)
    {
        ++c->leases;
        ++c->checkouts;
        if (opts.max_messages_per_connection != 0 &&
            c->checkouts >= opts.max_messages_per_connection)
            c->retire = true;
        stats.checkouts.fetch_add(1, std::memory_order_relaxed);
        finish_waiter(w, {}, connection{shared_from_this(), c});
    }

    std::shared_ptr<waiter> front_waiter()
    {
        drop_done_front();
        return waiters.empty() ? nullptr : waiters.front();
    }

    // ---- the decisions ----------------------------------------------------------------------

    bool lendable(const pooled& c, time_point now) const
    {
        return c.st == pooled::state::ready && !c.retire && c.client.is_open() &&
               (opts.max_age == duration::zero() || now - c.created < opts.max_age);
    }

    // Hands out what can be handed out, and opens connections for the rest.
    void serve()
    {
        check_thread();
        if (closed)
            return;
        const auto now = clock::now();
        // 1. Idle connections, the most recently used first (so surplus ones idle out).
        while (auto w = front_waiter()) {
            std::shared_ptr<pooled> best;
            for (auto& c : conns)
                if (c->leases == 0 && lendable(*c, now) &&
                    (!best || c->last_used > best->last_used))
                    best = c;
            if (!best)
                break;
            if (opts.probe_after_idle != duration::max() &&
                now - best->last_used >= opts.probe_after_idle) {
                probe(best);
                continue;
            }
            lend(best, *w);
        }
        // 2. New connections for whoever still waits.
        open_for_demand(now);
        // 3. A place behind another send on a pipelining connection, the least loaded first.
        while (auto w = front_waiter()) {
            std::shared_ptr<pooled> best;
            for (auto& c : conns)
                if (c->leases > 0 && c->leases < c->depth && lendable(*c, now) &&
                    (!best || c->leases < best->leases))
                    best = c;
            if (!best)
                break;
            lend(best, *w);
        }
        update_gauges();
        maybe_finish_drain();
    }

    void open_for_demand(time_point now)
    {
        std::size_t pending = 0; // connections that will serve a waiter soon
        // A connection saying QUIT is still open: it counts against max_connections (a
        // provider's connection limit would refuse one more).
        std::size_t open_or_opening = closing;
        std::size_t ready = 0;
        for (auto& c : conns) {
            ++open_or_opening;
            pending += c->st != pooled::state::ready;
            ready += c->st == pooled::state::ready;
        }
        std::size_t want = live_waiters > pending ? live_waiters - pending : 0;
        if (!draining && ready + pending < opts.min_idle)
            want = std::max(want, opts.min_idle - ready - pending);
        if (want == 0 || open_or_opening >= opts.max_connections)
            return;
        if (now < next_connect) {
            arm_backoff();
            return;
        }
        for (; want > 0 && open_or_opening < opts.max_connections; --want, ++open_or_opening)
            start_connect();
    }

    // ---- connections ------------------------------------------------------------------------

    void start_connect()
    {
        auto c = std::make_shared<pooled>(ex, server, next_id++);
        conns.push_back(c);
        log(log_level::debug, "connection #" + std::to_string(c->id) + " opening");
        asio::co_spawn(ex, connect(shared_from_this(), c), asio::detached);
    }

    void remove(const std::shared_ptr<pooled>& c)
    {
        std::erase(conns, c);
    }

    static asio::awaitable<void> connect(std::shared_ptr<pool_impl> self, std::shared_ptr<pooled> c)
    {
        auto [ec] = co_await c->client.async_connect(asio::as_tuple(asio::use_awaitable));
        if (self->closed) {
            c->client.close();
            co_return;
        }
        const auto now = clock::now();
        if (ec) {
            self->connect_failed(c, ec);
            co_return;
        }
        self->failures = 0;
        self->next_connect = {};
        c->st = pooled::state::ready;
        c->created = c->last_used = now;
        c->depth = c->client.server_capabilities().pipelining
                       ? std::max<std::size_t>(1, self->opts.pipeline_depth)
                       : 1;
        self->stats.connects.fetch_add(1, std::memory_order_relaxed);
        self->log(log_level::debug, "connection #" + std::to_string(c->id) + " ready");
        self->serve();
        self->arm_maintenance();
    }

    void connect_failed(const std::shared_ptr<pooled>& c, error_code ec)
    {
        remove(c);
        stats.connect_failures.fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard lock(error_mutex);
            last_error = ec;
            last_diag = c->client.last_diagnostics();
        }
        ++failures;
        const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        next_connect = clock::now() + detail::backoff_delay(opts.reconnect, failures, unit);
        log(log_level::warning, "connect failed: " + ec.message() + " (" +
                                    c->client.last_diagnostics().to_string() + ")");
        // Every waiter would get the same answer to a permanent failure (bad credentials, no
        // TLS where it is required...). A transient one goes to the oldest waiter while no
        // connection is open, so callers hear of an unreachable server without waiting for
        // their checkout timeout; the rest wait for the next attempt.
        const bool permanent = ec == condition::permanent || ec == condition::invalid_input ||
                               (ec.category() == smtp::reply_category() && ec.value() / 100 == 5);
        bool any_open = false;
        for (auto& o : conns)
            any_open |= o->st != pooled::state::connecting;
        if (permanent) {
            for (auto& w : waiters)
                finish_waiter(*w, ec);
            waiters.clear();
        } else if (!any_open) {
            if (auto w = front_waiter())
                finish_waiter(*w, ec);
        }
        serve();
    }

    void probe(const std::shared_ptr<pooled>& c)
    {
        c->st = pooled::state::probing;
        stats.probes.fetch_add(1, std::memory_order_relaxed);
        asio::co_spawn(ex, run_probe(shared_from_this(), c), asio::detached);
    }

    static asio::awaitable<void> run_probe(std::shared_ptr<pool_impl> self,
                                           std::shared_ptr<pooled> c)
    {
        auto [ec] = co_await c->client.async_noop(asio::as_tuple(asio::use_awaitable));
        if (self->closed)
            co_return;
        if (ec || !c->client.is_open()) {
            // The server dropped it while it sat idle: open another instead.
            self->stats.stale.fetch_add(1, std::memory_order_relaxed);
            self->log(log_level::debug,
                      "connection #" + std::to_string(c->id) + " was stale: " + ec.message());
            c->client.close();
            self->remove(c);
        } else {
            c->st = pooled::state::ready;
            c->last_used = clock::now();
        }
        self->serve();
    }

    // QUIT, then close. The connection leaves `conns` at once.
    void retire(const std::shared_ptr<pooled>& c)
    {
        remove(c);
        stats.retired.fetch_add(1, std::memory_order_relaxed);
        ++closing;
        asio::co_spawn(ex, run_quit(shared_from_this(), c), asio::detached);
    }

    static asio::awaitable<void> run_quit(std::shared_ptr<pool_impl> self,
                                          std::shared_ptr<pooled> c)
    {
        if (c->client.is_open())
            co_await c->client.async_quit(asio::as_tuple(asio::use_awaitable));
        c->client.close();
        --self->closing;
        self->serve(); // its place may be needed
        self->maybe_finish_drain();
    }

    void give_back(const std::shared_ptr<pooled>& c)
    {
        check_thread();
        --c->leases;
        const auto now = clock::now();
        c->last_used = now;
        const bool member = std::find(conns.begin(), conns.end(), c) != conns.end();
        if (member && !c->client.is_open()) {
            stats.discarded.fetch_add(1, std::memory_order_relaxed);
            log(log_level::debug, "connection #" + std::to_string(c->id) + " broke; closed");
            remove(c);
        } else if (member && c->leases == 0 && !lendable(*c, now)) {
            retire(c);
        }
        serve();
    }

    // ---- timers -----------------------------------------------------------------------------

    void arm_checkout_timer()
    {
        auto w = front_waiter();
        if (!w || (checkout_armed && *checkout_armed <= w->deadline))
            return;
        checkout_armed = w->deadline;
        checkout_timer.expires_at(w->deadline);
        checkout_timer.async_wait([weak = weak_from_this()](error_code ec) {
            auto self = weak.lock();
            if (!self || ec == asio::error::operation_aborted)
                return;
            self->checkout_armed.reset();
            const auto now = clock::now();
            // Deadlines grow in enqueue order: the expired ones are at the front.
            while (auto w = self->front_waiter()) {
                if (w->deadline > now)
                    break;
                self->stats.checkout_timeouts.fetch_add(1, std::memory_order_relaxed);
                self->finish_waiter(*w, make_error_code(error::checkout_timeout));
            }
            self->update_gauges();
            self->arm_checkout_timer();
            self->maybe_finish_drain();
        });
    }

    void arm_backoff()
    {
        if (backing_off)
            return;
        backing_off = true;
        backoff_timer.expires_at(next_connect);
        backoff_timer.async_wait([weak = weak_from_this()](error_code) {
            auto self = weak.lock();
            if (!self)
                return;
            self->backing_off = false;
            self->serve();
        });
    }

    duration maintenance_interval() const
    {
        duration d = opts.idle_timeout;
        if (opts.max_age != duration::zero())
            d = std::min(d, opts.max_age);
        return std::clamp<duration>(d / 4, std::chrono::milliseconds(5), std::chrono::seconds(1));
    }

    // Retires idle and old connections, keeps min_idle warm. Runs while the pool holds a
    // connection (or should: min_idle), so an idle pool leaves its io_context free to return.
    void arm_maintenance()
    {
        if (maintaining || closed || (conns.empty() && (opts.min_idle == 0 || draining)))
            return;
        maintaining = true;
        maintain_timer.expires_after(maintenance_interval());
        maintain_timer.async_wait([weak = weak_from_this()](error_code) {
            auto self = weak.lock();
            if (!self)
                return;
            self->maintaining = false;
            if (self->closed)
                return;
            self->maintain();
            self->arm_maintenance();
        });
    }

    void maintain()
    {
        const auto now = clock::now();
        std::size_t ready = 0;
        for (auto& c : conns)
            ready += c->st == pooled::state::ready;
        std::vector<std::shared_ptr<pooled>> out;
        for (auto& c : conns) {
            if (c->st != pooled::state::ready || c->leases != 0)
                continue;
            const bool old = !lendable(*c, now);
            const bool idle_too_long = now - c->last_used >= opts.idle_timeout;
            if (old || (idle_too_long && ready > opts.min_idle)) {
                out.push_back(c);
                --ready;
            } else if (!c->client.is_open()) {
                out.push_back(c);
                --ready;
            }
        }
        for (auto& c : out)
            retire(c);
        serve(); // tops up min_idle
    }

    // ---- shutdown ---------------------------------------------------------------------------

    void maybe_finish_drain()
    {
        if (!draining || closed || live_waiters != 0)
            return;
        for (auto& c : conns)
            if (c->leases != 0)
                return;
        auto rest = conns;
        for (auto& c : rest) {
            if (c->st == pooled::state::ready) {
                retire(c);
            } else {
                c->client.close();
                remove(c);
            }
        }
        if (!conns.empty() || closing != 0)
            return;
        auto handlers = std::move(drain_handlers);
        drain_handlers.clear();
        for (auto& h : handlers)
            post_completion(ex, std::move(h), error_code{});
        cancel_timers();
    }

    void cancel_timers()
    {
        checkout_timer.cancel();
        maintain_timer.cancel();
        backoff_timer.cancel();
    }

    void close()
    {
        if (closed)
            return;
        closed = true;
        for (auto& w : waiters)
            finish_waiter(*w, asio::error::operation_aborted);
        waiters.clear();
        for (auto& c : conns)
            c->client.close();
        conns.clear();
        cancel_timers();
        auto handlers = std::move(drain_handlers);
        drain_handlers.clear();
        for (auto& h : handlers)
            post_completion(ex, std::move(h), make_error_code(asio::error::operation_aborted));
        update_gauges();
    }
};

asio::any_io_executor strand_of(asio::any_io_executor ex)
{
    using io_strand = asio::strand<asio::io_context::executor_type>;
    using any_strand = asio::strand<asio::any_io_executor>;
    if (ex.target<io_strand>() || ex.target<any_strand>())
        return ex;
    return asio::make_strand(ex);
}

} // namespace detail

// ---- connection ---------------------------------------------------------------------------

connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&& other) noexcept
{
    if (this != &other) {
        release();
        pool_ = std::move(other.pool_);
        conn_ = std::move(other.conn_);
    }
    return *this;
}
connection::~connection()
{
    release();
}

void connection::release() noexcept
{
    auto p = std::move(pool_);
    auto c = std::move(conn_);
    if (!p || !c)
        return;
    asio::dispatch(p->ex, [p, c] { p->give_back(c); });
}

smtp::client& connection::client() const noexcept
{
    return conn_->client;
}
std::uint64_t connection::id() const noexcept
{
    return conn_ ? conn_->id : 0;
}

void connection::initiate_send(
    std::shared_ptr<detail::pool_impl> p, std::shared_ptr<detail::pooled> c, mime::message m,
    smtp::send_options o, asio::any_completion_handler<void(error_code, smtp::delivery_report)> h)
{
    if (!p || !c) {
        post_completion(asio::any_io_executor(asio::system_executor()), std::move(h),
                        make_error_code(error::not_connected), smtp::delivery_report{});
        return;
    }
    asio::dispatch(p->ex, [c, m = std::move(m), o = std::move(o), h = std::move(h)]() mutable {
        c->client.async_send(std::move(m), std::move(o), std::move(h));
    });
}

// ---- pool ---------------------------------------------------------------------------------

namespace {

void validate(const pool_options& o)
{
    const char* bad = nullptr;
    if (o.max_connections == 0)
        bad = "max_connections must be at least 1";
    else if (o.min_idle > o.max_connections)
        bad = "min_idle must not exceed max_connections";
    else if (o.pipeline_depth == 0)
        bad = "pipeline_depth must be at least 1";
    else if (o.idle_timeout <= duration::zero())
        bad = "idle_timeout must be positive";
    else if (o.max_age < duration::zero())
        bad = "max_age must not be negative";
    else if (o.probe_after_idle < duration::zero())
        bad = "probe_after_idle must not be negative";
    else if (o.checkout_timeout <= duration::zero())
        bad = "checkout_timeout must be positive";
    else if (o.reconnect.initial <= duration::zero() || o.reconnect.max < o.reconnect.initial)
        bad = "reconnect: 0 < initial <= max";
    if (bad)
        throw boost::system::system_error(make_error_code(error::invalid_pool_options), bad);
}

} // namespace

pool::pool(executor_type ex, smtp::client_options server, pool_options options)
{
    validate(options);
    if (!options.single_threaded)
        ex = detail::strand_of(std::move(ex));
    impl_ = std::make_shared<detail::pool_impl>(std::move(ex), std::move(server), options);
    mailroom::detail::shutdown_registry::of(impl_->ex).add(impl_);
    if (options.min_idle > 0) // warm up
        asio::dispatch(impl_->ex, [i = impl_] { i->serve(); });
}
pool::pool(pool&&) noexcept = default;
pool& pool::operator=(pool&& other) noexcept
{
    if (this != &other) {
        close();
        impl_ = std::move(other.impl_);
    }
    return *this;
}
pool::~pool()
{
    close();
}

pool::executor_type pool::get_executor() const noexcept
{
    return impl_->ex;
}
const smtp::client_options& pool::server() const noexcept
{
    return impl_->server;
}
const pool_options& pool::options() const noexcept
{
    return impl_->opts;
}

void pool::close() noexcept
{
    if (auto i = impl_)
        asio::dispatch(i->ex, [i] { i->close(); });
}

pool_snapshot pool::snapshot() const noexcept
{
    const auto& s = impl_->stats;
    constexpr auto r = std::memory_order_relaxed;
    pool_snapshot out;
    out.open = s.open.load(r);
    out.in_use = s.in_use.load(r);
    out.idle = out.open >= out.in_use ? out.open - out.in_use : 0;
    out.connecting = s.connecting.load(r);
    out.waiters = s.waiters.load(r);
    out.leases = s.leases.load(r);
    out.connects = s.connects.load(r);
    out.connect_failures = s.connect_failures.load(r);
    out.checkouts = s.checkouts.load(r);
    out.checkout_timeouts = s.checkout_timeouts.load(r);
    out.probes = s.probes.load(r);
    out.stale = s.stale.load(r);
    out.discarded = s.discarded.load(r);
    out.retired = s.retired.load(r);
    return out;
}

std::pair<error_code, diagnostics> pool::last_connect_error() const
{
    std::lock_guard lock(impl_->error_mutex);
    return {impl_->last_error, impl_->last_diag};
}

connection pool::try_acquire()
{
    return impl_->try_acquire();
}

void pool::initiate_acquire(std::shared_ptr<detail::pool_impl> i, acquire_handler h)
{
    asio::dispatch(i->ex, [i, h = std::move(h)]() mutable { i->acquire(std::move(h)); });
}

void pool::initiate_drain(std::shared_ptr<detail::pool_impl> i,
                          asio::any_completion_handler<void(error_code)> h)
{
    asio::dispatch(i->ex, [i, h = std::move(h)]() mutable {
        if (i->closed) {
            post_completion(i->ex, std::move(h), make_error_code(error::pool_closed));
            return;
        }
        i->draining = true;
        i->drain_handlers.emplace_back(std::move(h));
        i->maybe_finish_drain();
    });
}

} // namespace mailroom::pool
