// The connection pool's driver: the I/O and the timers, on one strand. Every decision (whom
// to lend what, when to connect, probe, retire, back off or give up) is pool_policy's (pure,
// pool_policy.hpp); this file turns its actions into client operations, timer waits and
// completions, and reports what happened back to it.

#include <mailroom/pool/pool.hpp>
#include <mailroom/smtp/client.hpp>

#include "detail/completion.hpp"
#include "detail/shutdown.hpp"
#include "pool_policy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace mailroom::pool {

using clock = std::chrono::steady_clock;
using acquire_handler = asio::any_completion_handler<void(error_code, connection)>;
using mailroom::detail::post_completion;

namespace detail {

// A pooled connection: the client, and the number its log lines and connection::id() show.
// Its leases, state and timestamps are the policy's.
struct pooled {
    pooled(asio::any_io_executor ex, smtp::client_options o, std::uint64_t n)
        : client(std::move(ex), std::move(o))
        , id(n)
    {
    }
    smtp::client client;
    std::uint64_t id;
};

using pooled_ptr = std::shared_ptr<pooled>;

// The policy's test of a connection: a client closes itself when its connection breaks.
inline bool is_open(const pooled_ptr& c)
{
    return c->client.is_open();
}
// Found by pool_policy: an idle connection the server closed is retired before a checkout.
inline bool peer_closed(const pooled_ptr& c)
{
    return c->client.peer_closed();
}

struct pool_impl final : std::enable_shared_from_this<pool_impl>,
                         mailroom::detail::shutdown_listener {
    using policy = pool_policy<pooled_ptr, acquire_handler>;

    pool_impl(asio::any_io_executor e, smtp::client_options s, pool_options o)
        : ex(std::move(e))
        , server(std::move(s))
        , opts(o)
        , pol(o)
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
    policy pol;

#ifndef NDEBUG
    // pool_options::single_threaded is a promise that one thread runs the executor's context;
    // broken, the pool's state would be raced on silently. Debug builds check it where every
    // send passes (checkout, return, every event): the first thread there owns the pool.
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

    asio::steady_timer checkout_timer;
    asio::steady_timer maintain_timer;
    asio::steady_timer backoff_timer;
    std::uint64_t next_id = 1;
    std::mt19937_64 rng;
    bool applying = false;
    std::vector<asio::any_completion_handler<void(error_code)>> drain_handlers;

    // Read from any thread by snapshot().
    struct {
        std::atomic<std::size_t> open{0}, in_use{0}, connecting{0}, waiters{0}, leases{0};
        std::atomic<std::uint64_t> connects{0}, connect_failures{0}, checkouts{0},
            checkout_timeouts{0}, probes{0}, stale{0}, discarded{0}, retired{0}, trips{0};
        std::atomic<unsigned> breaker_failures{0};
        std::atomic<breaker_state> breaker{breaker_state::closed};
        std::atomic<clock::rep> open_until{0}; // time_since_epoch
    } stats;
    mutable std::mutex error_mutex;
    error_code last_error;
    diagnostics last_diag;

    void log(log_level l, const std::string& line) const
    {
        if (server.log.enabled(l))
            server.log(l, prefix + line);
    }
    // The pool's name for lines logged whatever the level (prefix holds it at debug level).
    std::string where() const
    {
        return prefix.empty() ? "pool[" + server.host + "] " : std::string();
    }
    static std::string name(const pooled& c)
    {
        return "connection #" + std::to_string(c.id);
    }

    // The io_context is shutting down: waiting checkouts and drains are dropped unrun, and
    // the connections go (see detail/shutdown.hpp).
    void on_shutdown() noexcept override
    {
        auto d = std::move(drain_handlers);
        drain_handlers.clear();
        auto dropped = pol.abandon();
    }

    void update_gauges()
    {
        const auto g = pol.gauges();
        constexpr auto r = std::memory_order_relaxed;
        stats.open.store(g.open, r);
        stats.in_use.store(g.in_use, r);
        stats.connecting.store(g.connecting, r);
        stats.leases.store(g.leases, r);
        stats.waiters.store(g.waiters, r);
        stats.breaker_failures.store(pol.breaker_failures(), r);
        stats.trips.store(pol.trips(), r);
        // Open, as the policy last saw it; snapshot() tells half-open by the clock.
        const auto br = pol.breaker(time_point{});
        stats.breaker.store(br, r);
        stats.open_until.store(pol.open_until().time_since_epoch().count(), r);
    }

    // ---- events -----------------------------------------------------------------------------

    void acquire(acquire_handler h)
    {
        check_thread();
        auto slot = asio::get_associated_cancellation_slot(h);
        const waiter_id id = pol.acquire(std::move(h), clock::now());
        if (slot.is_connected() && pol.waiting(id)) {
            slot.assign([weak = weak_from_this(), id](asio::cancellation_type type) {
                auto self = weak.lock();
                if (!self)
                    return;
                asio::dispatch(self->ex, [self, id, type] {
                    self->pol.cancel(id, type, clock::now());
                    self->apply();
                });
            });
        }
        apply();
    }

    connection try_acquire()
    {
        auto c = pol.try_acquire(clock::now());
        if (!c)
            return {};
        stats.checkouts.fetch_add(1, std::memory_order_relaxed);
        update_gauges();
        return connection{shared_from_this(), std::move(*c)};
    }

    void give_back(const pooled_ptr& c)
    {
        check_thread();
        pol.give_back(c, clock::now());
        apply();
    }

    void serve()
    {
        pol.serve(clock::now());
        apply();
    }

    void drain(asio::any_completion_handler<void(error_code)> h)
    {
        if (pol.closed()) {
            post_completion(ex, std::move(h), make_error_code(error::pool_closed));
            return;
        }
        drain_handlers.emplace_back(std::move(h));
        pol.drain();
        apply();
    }

    void close()
    {
        pol.close();
        apply();
    }

    // ---- actions ----------------------------------------------------------------------------

    // Runs what the policy queued. None of it calls back into the policy at once (completions
    // are posted, I/O completes later); if something did, its actions would run in this loop.
    void apply()
    {
        check_thread();
        if (applying)
            return;
        applying = true;
        auto& acts = pol.actions();
        for (std::size_t i = 0; i < acts.size(); ++i) {
            auto a = std::move(acts[i]);
            execute(a);
        }
        pol.clear_actions();
        applying = false;
        update_gauges();
    }

    void execute(policy::action& a)
    {
        switch (a.kind) {
        case action_kind::lend:
            asio::get_associated_cancellation_slot(a.handler).clear();
            stats.checkouts.fetch_add(1, std::memory_order_relaxed);
            post_completion(ex, std::move(a.handler), error_code{},
                            connection{shared_from_this(), std::move(a.conn)});
            break;
        case action_kind::fail:
            asio::get_associated_cancellation_slot(a.handler).clear();
            if (a.ec == error::checkout_timeout)
                stats.checkout_timeouts.fetch_add(1, std::memory_order_relaxed);
            post_completion(ex, std::move(a.handler), a.ec, connection{});
            break;
        case action_kind::open: {
            auto c = std::make_shared<pooled>(ex, server, next_id++);
            pol.connecting(c);
            log(log_level::debug, name(*c) + " opening");
            asio::co_spawn(ex, run_connect(shared_from_this(), std::move(c)), asio::detached);
            break;
        }
        case action_kind::probe:
            stats.probes.fetch_add(1, std::memory_order_relaxed);
            asio::co_spawn(ex, run_probe(shared_from_this(), a.conn), asio::detached);
            break;
        case action_kind::retire:
            stats.retired.fetch_add(1, std::memory_order_relaxed);
            if (a.quit)
                asio::co_spawn(ex, run_quit(shared_from_this(), a.conn), asio::detached);
            else
                a.conn->client.close();
            break;
        case action_kind::discard:
            stats.discarded.fetch_add(1, std::memory_order_relaxed);
            log(log_level::debug, name(*a.conn) + " broke; closed");
            break;
        case action_kind::stale:
            // The server dropped it while it sat idle.
            stats.stale.fetch_add(1, std::memory_order_relaxed);
            log(log_level::debug, name(*a.conn) + " was stale: " + a.ec.message());
            a.conn->client.close();
            break;
        case action_kind::close: a.conn->client.close(); break;
        case action_kind::arm_timer: arm(a.timer, a.at); break;
        case action_kind::cancel_timers:
            checkout_timer.cancel();
            maintain_timer.cancel();
            backoff_timer.cancel();
            break;
        case action_kind::breaker_open:
            log(log_level::warning,
                where() + "circuit breaker open for " +
                    std::to_string(
                        std::chrono::duration_cast<std::chrono::milliseconds>(opts.breaker.open_for)
                            .count()) +
                    " ms (trip " + std::to_string(pol.trips()) +
                    "): connect failed: " + a.ec.message());
            break;
        case action_kind::breaker_close:
            log(log_level::warning, where() + "circuit breaker closed: connected");
            break;
        case action_kind::drained: {
            auto handlers = std::move(drain_handlers);
            drain_handlers.clear();
            for (auto& h : handlers)
                post_completion(ex, std::move(h), a.ec);
            break;
        }
        }
    }

    asio::steady_timer& timer(pool_timer t)
    {
        switch (t) {
        case pool_timer::checkout: return checkout_timer;
        case pool_timer::backoff: return backoff_timer;
        case pool_timer::maintenance: break;
        }
        return maintain_timer;
    }

    void arm(pool_timer t, time_point at)
    {
        auto& tm = timer(t);
        tm.expires_at(at);
        tm.async_wait([weak = weak_from_this(), t](error_code ec) {
            auto self = weak.lock();
            if (!self || ec == asio::error::operation_aborted)
                return; // re-armed or cancelled
            self->pol.timer_fired(t, clock::now());
            self->apply();
        });
    }

    // ---- I/O --------------------------------------------------------------------------------

    static asio::awaitable<void> run_connect(std::shared_ptr<pool_impl> self, pooled_ptr c)
    {
        auto [ec] = co_await c->client.async_connect(asio::as_tuple(asio::use_awaitable));
        if (self->pol.closed()) {
            c->client.close();
            co_return;
        }
        if (ec) {
            self->stats.connect_failures.fetch_add(1, std::memory_order_relaxed);
            {
                std::lock_guard lock(self->error_mutex);
                self->last_error = ec;
                self->last_diag = c->client.last_diagnostics();
            }
            self->log(log_level::warning, "connect failed: " + ec.message() + " (" +
                                              c->client.last_diagnostics().to_string() + ")");
            const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(self->rng);
            self->pol.connect_failed(c, ec, unit, clock::now());
        } else {
            self->stats.connects.fetch_add(1, std::memory_order_relaxed);
            self->log(log_level::debug, name(*c) + " ready");
            self->pol.connect_done(c, c->client.server_capabilities().pipelining, clock::now());
        }
        self->apply();
    }

    static asio::awaitable<void> run_probe(std::shared_ptr<pool_impl> self, pooled_ptr c)
    {
        auto [ec] = co_await c->client.async_noop(asio::as_tuple(asio::use_awaitable));
        self->pol.probe_done(c, ec, clock::now());
        self->apply();
    }

    // QUIT, then close.
    static asio::awaitable<void> run_quit(std::shared_ptr<pool_impl> self, pooled_ptr c)
    {
        if (c->client.is_open())
            co_await c->client.async_quit(asio::as_tuple(asio::use_awaitable));
        c->client.close();
        self->pol.quit_done(clock::now());
        self->apply();
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
    else if (o.breaker.failures != 0 && o.breaker.open_for <= duration::zero())
        bad = "breaker.open_for must be positive";
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
    out.breaker_trips = s.trips.load(r);
    out.consecutive_failures = s.breaker_failures.load(r);
    out.breaker = s.breaker.load(r);
    if (out.breaker == breaker_state::open) {
        out.breaker_half_open_at = clock::time_point(clock::duration(s.open_until.load(r)));
        if (clock::now() >= out.breaker_half_open_at)
            out.breaker = breaker_state::half_open;
    }
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
    asio::dispatch(i->ex, [i, h = std::move(h)]() mutable { i->drain(std::move(h)); });
}

} // namespace mailroom::pool
