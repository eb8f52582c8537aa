// Private: the pool's decisions, without I/O. Pure.
//
// After Boost.MySQL's connection_pool_impl / sansio_connection_node: the pool's bookkeeping
// (connections and their leases, waiters and their deadlines, reconnect backoff, maintenance)
// is a state machine that takes what happened (a checkout was asked for, a connect finished,
// a lease came back, a timer fired, a wait was cancelled) and queues what to do (lend this
// connection to that waiter, open one, probe one, QUIT one, fail a waiter, arm a timer). It
// reads no clock: every event carries `now` from its caller, as limit::rate_limiter does, so
// tests step it on a manual clock. The connection type is a parameter: the pool's driver
// (pool.cpp) uses a handle to a pooled smtp::client, the unit tests a plain struct.
//
// `Conn` is a cheap, copyable, equality-comparable handle; `is_open(conn)` (found by
// argument-dependent lookup) says whether it is still usable: a client closes itself when its
// connection breaks, and a closed one is never lent again. `Handler` is what a waiter carries
// (the driver's completion handler); the policy hands it back in the action that completes it.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/pool/pool_options.hpp>
#include <mailroom/pool/pool_snapshot.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include "detail/backoff.hpp"

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace mailroom::pool::detail {

/// The pool's clock: its time points come from the caller, never from the policy.
using time_point = std::chrono::steady_clock::time_point;

/// A waiter's number, in the order checkouts were asked for (1, 2, ...); 0: none.
using waiter_id = std::uint64_t;

/// Where a connection is in its life, as the policy sees it.
enum class conn_state {
    connecting, ///< the connect (greeting, EHLO, TLS, AUTH) is under way
    probing,    ///< a NOOP checks it after it sat idle
    ready,      ///< lendable (unless retiring, too old or closed)
};

/// The pool's three timers.
enum class pool_timer {
    checkout,    ///< the oldest waiter's deadline
    backoff,     ///< the next connect attempt after failures
    maintenance, ///< idle and age retirement, min_idle top-up
};

/// What the driver does next.
enum class action_kind {
    lend,          ///< complete `handler` with `conn` (a checkout succeeded)
    fail,          ///< complete `handler` with `ec` and no connection
    open,          ///< make a connection, hand it over with connecting() before the next
                   ///< event, start connecting; answer with connect_done() or connect_failed()
    probe,         ///< NOOP on `conn`; answer with probe_done()
    retire,        ///< QUIT on `conn` if `quit` (answer with quit_done()), then close it
    discard,       ///< `conn` broke while lent and was given back: forget it
    stale,         ///< `conn` failed its probe (with `ec`, or it closed): close it
    close,         ///< close `conn` now, without QUIT
    arm_timer,     ///< arm `timer` to fire at `at`; answer with timer_fired()
    cancel_timers, ///< cancel all three timers (their pending waits fire no event)
    drained,       ///< complete every waiting drain with `ec`
    breaker_open,  ///< the circuit breaker opened after `ec` until `at` (log it)
    breaker_close, ///< the circuit breaker closed: a connect succeeded (log it)
};

template <class Conn, class Handler> struct pool_action {
    action_kind kind = action_kind::close;
    Conn conn{};
    Handler handler{};
    error_code ec{};
    pool_timer timer = pool_timer::checkout;
    time_point at{};
    bool quit = false;
};

/// Gauges, as pool_snapshot shows them.
struct pool_gauges {
    std::size_t open = 0, in_use = 0, connecting = 0, leases = 0, waiters = 0;
};

/// Whether a failed connect is the answer for every waiter: it would fail the same way on the
/// next attempt (a 5xx refusal, no usable AUTH mechanism, credentials the mechanism can't
/// carry, a configuration error). No classifier of the pool's own: error.cpp's conditions
/// decide (a reply's first digit among them). Anything else, transient or unclassified (a
/// DNS failure), is retried after the backoff.
inline bool connect_error_is_final(error_code ec) noexcept
{
    return ec == condition::permanent || ec == condition::invalid_input;
}

/// Whether a failed connect counts toward the circuit breaker: it found nobody to talk to
/// (refused, unreachable, a timeout, a TLS failure, a lost connection). A server that replied
/// (a 421 greeting, a 454 to AUTH) is there: the backoff deals with it. A final error already
/// fails every waiter.
inline bool connect_error_trips_breaker(error_code ec) noexcept
{
    return ec && !connect_error_is_final(ec) && ec.category() != smtp::reply_category();
}

/// How often maintenance runs: a quarter of the shortest limit it enforces, 5 ms to 1 s.
inline duration maintenance_interval(const pool_options& o) noexcept
{
    duration d = o.idle_timeout;
    if (o.max_age != duration::zero())
        d = std::min(d, o.max_age);
    return std::clamp<duration>(d / 4, std::chrono::milliseconds(5), std::chrono::seconds(1));
}

template <class Conn, class Handler> class pool_policy {
public:
    using action = pool_action<Conn, Handler>;

    struct node {
        Conn conn;
        conn_state st = conn_state::connecting;
        std::size_t leases = 0;
        std::size_t checkouts = 0;
        std::size_t depth = 1; // leases allowed at once: pipeline_depth if the server pipelines
        time_point created{};
        time_point last_used{};
        bool retire = false; // lend no more; QUIT when the last lease comes back
    };

    struct waiter {
        waiter_id id;
        time_point deadline;
        Handler handler;
        bool done = false;
    };

    explicit pool_policy(pool_options o)
        : opts_(o)
    {
    }

    // ---- what the driver reads --------------------------------------------------------------

    /// The actions queued by the events since the last clear_actions(), in order.
    std::vector<action>& actions() noexcept { return out_; }
    void clear_actions() noexcept { out_.clear(); }

    const pool_options& options() const noexcept { return opts_; }
    bool closed() const noexcept { return closed_; }
    bool draining() const noexcept { return draining_; }
    const std::vector<node>& nodes() const noexcept { return nodes_; }
    std::size_t closing() const noexcept { return closing_; }
    std::size_t live_waiters() const noexcept { return live_waiters_; }
    unsigned failures() const noexcept { return failures_; }
    /// The circuit breaker as of `now` (open turns half-open once its time is up).
    breaker_state breaker(time_point now) const noexcept
    {
        return breaker_ == breaker_state::open && now >= open_until_ ? breaker_state::half_open
                                                                     : breaker_;
    }
    /// Connect failures in a row that count toward the breaker.
    unsigned breaker_failures() const noexcept { return breaker_failures_; }
    /// When an open breaker turns half-open.
    time_point open_until() const noexcept { return open_until_; }
    /// Times the breaker opened.
    std::uint64_t trips() const noexcept { return trips_; }
    time_point next_connect() const noexcept { return next_connect_; }
    /// Whether waiter `id` still waits.
    bool waiting(waiter_id id) const
    {
        auto w = find_waiter(id);
        return w != waiters_.end() && !w->done;
    }

    pool_gauges gauges() const noexcept
    {
        pool_gauges g;
        for (auto& c : nodes_) {
            if (c.st == conn_state::connecting) {
                ++g.connecting;
                continue;
            }
            ++g.open;
            g.in_use += c.leases > 0;
            g.leases += c.leases;
        }
        g.waiters = live_waiters_;
        return g;
    }

    // ---- events -----------------------------------------------------------------------------

    /// A checkout: lent at once, queued (first come, first served) or refused (draining or
    /// closed: error::pool_closed; the circuit breaker open: error::circuit_open). Returns the
    /// waiter's number (0 if refused).
    waiter_id acquire(Handler h, time_point now)
    {
        if (closed_ || draining_ || breaker(now) == breaker_state::open) {
            push({.kind = action_kind::fail,
                  .handler = std::move(h),
                  .ec = make_error_code(closed_ || draining_ ? error::pool_closed
                                                             : error::circuit_open)});
            return 0;
        }
        const waiter_id id = next_waiter_++;
        waiters_.push_back(waiter{id, now + opts_.checkout_timeout, std::move(h)});
        ++live_waiters_;
        serve(now);
        arm_checkout_timer();
        return id;
    }

    /// The fast path (pool::try_acquire): a connection now if one can be lent without waiting
    /// (an idle one that needs no probe, or a free place on a pipelining one) and nobody waits
    /// ahead; else nothing. Queues no action.
    std::optional<Conn> try_acquire(time_point now)
    {
        if (closed_ || draining_ || live_waiters_ != 0)
            return std::nullopt;
        node* c = pick_now(now);
        if (!c)
            return std::nullopt;
        take_lease(*c);
        return c->conn;
    }

    /// A cancellation of waiter `id`. A wait has no side effects, so every type is honoured
    /// (terminal, partial, total): the waiter fails with operation_aborted and takes nothing.
    /// Ignored once the waiter has its answer.
    void cancel(waiter_id id, boost::asio::cancellation_type type, time_point now)
    {
        using ct = boost::asio::cancellation_type;
        if ((type & (ct::terminal | ct::partial | ct::total)) == ct::none)
            return;
        auto w = find_waiter(id);
        if (w == waiters_.end() || w->done)
            return;
        finish_waiter(*w, boost::asio::error::operation_aborted);
        serve(now); // a connect it asked for may be needed no more
    }

    /// The connection an `open` action asked for, now connecting.
    void connecting(Conn c) { nodes_.push_back(node{std::move(c)}); }

    /// A connect succeeded; `pipelining`: the server offers PIPELINING (RFC 2920).
    void connect_done(const Conn& c, bool pipelining, time_point now)
    {
        failures_ = 0;
        next_connect_ = {};
        breaker_failures_ = 0;
        if (breaker_ != breaker_state::closed) {
            breaker_ = breaker_state::closed;
            push({.kind = action_kind::breaker_close});
        }
        if (node* n = find(c)) {
            n->st = conn_state::ready;
            n->created = n->last_used = now;
            n->depth = pipelining ? std::max<std::size_t>(1, opts_.pipeline_depth) : 1;
        }
        serve(now);
        arm_maintenance(now);
    }

    /// A connect failed with `ec`. The next attempt waits backoff_delay(); `unit` in [0, 1)
    /// picks the jitter. A final error (connect_error_is_final) fails every waiter; a transient
    /// one fails the oldest while no connection is open, so callers hear of an unreachable
    /// server without waiting for their checkout timeout, and the rest wait for the next try.
    /// The circuit breaker's count goes up (connect_error_trips_breaker) or back to 0; at
    /// options().breaker.failures with no connection open, or on any failure while half-open
    /// (the probe's), the breaker opens and every waiter fails with `ec`.
    void connect_failed(const Conn& c, error_code ec, double unit, time_point now)
    {
        remove(c);
        ++failures_;
        next_connect_ = now + backoff_delay(opts_.reconnect, failures_, unit);
        bool any_open = false;
        for (auto& o : nodes_)
            any_open |= o.st != conn_state::connecting;
        breaker_failures_ = connect_error_trips_breaker(ec) ? breaker_failures_ + 1 : 0;
        const auto br = breaker(now);
        if (br == breaker_state::half_open ||
            (br == breaker_state::closed && !any_open && opts_.breaker.failures != 0 &&
             breaker_failures_ >= opts_.breaker.failures)) {
            open_breaker(ec, now);
        } else if (connect_error_is_final(ec)) {
            for (auto& w : waiters_)
                finish_waiter(w, ec);
            waiters_.clear();
        } else if (!any_open) {
            if (waiter* w = front_waiter())
                finish_waiter(*w, ec);
        }
        serve(now);
    }

    /// A probe (NOOP) ended with `ec`.
    void probe_done(const Conn& c, error_code ec, time_point now)
    {
        if (closed_)
            return;
        if (ec || !is_open(c)) {
            // The server dropped it while it sat idle: open another instead.
            push({.kind = action_kind::stale, .conn = c, .ec = ec});
            remove(c);
        } else if (node* n = find(c)) {
            n->st = conn_state::ready;
            n->last_used = now;
        }
        serve(now);
    }

    /// A lease came back (the lent connection was dropped or released).
    void give_back(const Conn& c, time_point now)
    {
        node* n = find(c);
        if (n) {
            --n->leases;
            n->last_used = now;
            if (!is_open(c)) {
                push({.kind = action_kind::discard, .conn = c});
                remove(c);
            } else if (n->leases == 0 && !lendable(*n, now)) {
                retire(c);
            }
        }
        serve(now);
    }

    /// A QUIT asked for by a `retire` action is done (its connection closed).
    void quit_done(time_point now)
    {
        --closing_;
        serve(now); // its place may be needed
    }

    /// Timer `t` fired (not cancelled) at `now`.
    void timer_fired(pool_timer t, time_point now)
    {
        switch (t) {
        case pool_timer::checkout:
            checkout_armed_.reset();
            // Deadlines grow in enqueue order: the expired ones are at the front.
            while (waiter* w = front_waiter()) {
                if (w->deadline > now)
                    break;
                finish_waiter(*w, make_error_code(error::checkout_timeout));
            }
            arm_checkout_timer();
            maybe_finish_drain();
            break;
        case pool_timer::backoff:
            backing_off_ = false;
            serve(now);
            break;
        case pool_timer::maintenance:
            maintaining_ = false;
            if (closed_)
                return;
            maintain(now);
            arm_maintenance(now);
            break;
        }
    }

    /// Serves waiters and opens connections for demand (or min_idle): the pool's warm-up.
    void serve(time_point now)
    {
        if (closed_)
            return;
        // 0. Idle connections the server has closed meanwhile (the end of stream, or an unasked
        // 421, waiting unread) leave now, so they are neither lent nor counted against the
        // demand below. Only those idle for peer_check_after: a busy pool lends a connection
        // again as soon as it comes back, and asks nothing of the socket then (a close can't
        // have arrived yet anyway). One idle long enough for a probe is the probe's to judge.
        if (front_waiter()) {
            std::vector<Conn> gone;
            for (auto& c : nodes_)
                if (c.st == conn_state::ready && c.leases == 0 &&
                    now - c.last_used >= peer_check_after && !needs_probe(c, now) &&
                    peer_gone(c.conn))
                    gone.push_back(c.conn);
            for (auto& c : gone)
                retire(c);
        }
        // 1. Idle connections, the most recently used first (so surplus ones idle out).
        while (waiter* w = front_waiter()) {
            node* best = nullptr;
            for (auto& c : nodes_)
                if (c.leases == 0 && lendable(c, now) && (!best || c.last_used > best->last_used))
                    best = &c;
            if (!best)
                break;
            if (needs_probe(*best, now)) {
                best->st = conn_state::probing;
                push({.kind = action_kind::probe, .conn = best->conn});
                continue;
            }
            lend(*best, *w);
        }
        // 2. New connections for whoever still waits.
        open_for_demand(now);
        // 3. A place behind another send on a pipelining connection, the least loaded first.
        while (waiter* w = front_waiter()) {
            node* best = nullptr;
            for (auto& c : nodes_)
                if (c.leases > 0 && c.leases < c.depth && lendable(c, now) &&
                    (!best || c.leases < best->leases))
                    best = &c;
            if (!best)
                break;
            lend(*best, *w);
        }
        maybe_finish_drain();
    }

    /// Graceful shutdown: no new checkouts; the waiting ones are still served; once every
    /// lease is back, each connection says QUIT, then `drained`.
    void drain()
    {
        draining_ = true;
        maybe_finish_drain();
    }

    /// Closes everything now: waiters fail with operation_aborted, connections close without
    /// QUIT, drains complete with operation_aborted.
    void close()
    {
        if (closed_)
            return;
        closed_ = true;
        for (auto& w : waiters_)
            finish_waiter(w, boost::asio::error::operation_aborted);
        waiters_.clear();
        for (auto& c : nodes_)
            push({.kind = action_kind::close, .conn = c.conn});
        nodes_.clear();
        cancel_timers();
        push({.kind = action_kind::drained, .ec = boost::asio::error::operation_aborted});
    }

    /// The executor is shutting down: everything is dropped unrun. The caller destroys what
    /// is returned (handlers and connections) when it chooses.
    std::pair<std::deque<waiter>, std::vector<node>> abandon()
    {
        closed_ = true;
        live_waiters_ = 0;
        out_.clear();
        return {std::exchange(waiters_, {}), std::exchange(nodes_, {})};
    }

private:
    void push(action a) { out_.push_back(std::move(a)); }

    typename std::deque<waiter>::const_iterator find_waiter(waiter_id id) const
    {
        // Ids grow in queue order.
        auto it = std::lower_bound(waiters_.begin(), waiters_.end(), id,
                                   [](const waiter& w, waiter_id v) { return w.id < v; });
        return it != waiters_.end() && it->id == id ? it : waiters_.end();
    }
    typename std::deque<waiter>::iterator find_waiter(waiter_id id)
    {
        auto it = std::lower_bound(waiters_.begin(), waiters_.end(), id,
                                   [](const waiter& w, waiter_id v) { return w.id < v; });
        return it != waiters_.end() && it->id == id ? it : waiters_.end();
    }

    node* find(const Conn& c)
    {
        for (auto& n : nodes_)
            if (n.conn == c)
                return &n;
        return nullptr;
    }

    void remove(const Conn& c)
    {
        std::erase_if(nodes_, [&](const node& n) { return n.conn == c; });
    }

    waiter* front_waiter()
    {
        while (!waiters_.empty() && waiters_.front().done)
            waiters_.pop_front();
        return waiters_.empty() ? nullptr : &waiters_.front();
    }

    void finish_waiter(waiter& w, error_code ec)
    {
        if (w.done)
            return;
        w.done = true;
        --live_waiters_;
        push({.kind = action_kind::fail, .handler = std::move(w.handler), .ec = ec});
    }

    bool lendable(const node& c, time_point now) const
    {
        return c.st == conn_state::ready && !c.retire && is_open(c.conn) &&
               (opts_.max_age == duration::zero() || now - c.created < opts_.max_age);
    }

    // How long a connection must have been idle before serve() asks whether its peer closed it.
    static constexpr duration peer_check_after = std::chrono::milliseconds(10);

    // Whether the peer has closed an idle connection, where the connection type can tell
    // (`peer_gone(conn)`, found by argument-dependent lookup); false where it can't.
    static bool peer_gone(const Conn& c)
    {
        if constexpr (requires { peer_closed(c); })
            return peer_closed(c);
        else
            return false;
    }

    bool needs_probe(const node& c, time_point now) const
    {
        return opts_.probe_after_idle != duration::max() &&
               now - c.last_used >= opts_.probe_after_idle;
    }

    void take_lease(node& c)
    {
        ++c.leases;
        ++c.checkouts;
        if (opts_.max_messages_per_connection != 0 &&
            c.checkouts >= opts_.max_messages_per_connection)
            c.retire = true;
    }

    void lend(node& c, waiter& w)
    {
        take_lease(c);
        w.done = true;
        --live_waiters_;
        push({.kind = action_kind::lend, .conn = c.conn, .handler = std::move(w.handler)});
    }

    // The connection serve() would lend first, if it needs no probe; null if none.
    node* pick_now(time_point now)
    {
        node *idle = nullptr, *shared = nullptr;
        for (auto& c : nodes_) {
            if (!lendable(c, now))
                continue;
            if (c.leases == 0) {
                if (!idle || c.last_used > idle->last_used)
                    idle = &c;
            } else if (c.leases < c.depth && (!shared || c.leases < shared->leases)) {
                shared = &c;
            }
        }
        if (idle)
            return needs_probe(*idle, now) ? nullptr : idle; // a probe is the slow path
        // Another connection may be opened for this send instead (serve() step 2): leave
        // that decision to the slow path too.
        if (nodes_.size() + closing_ < opts_.max_connections)
            return nullptr;
        return shared;
    }

    void open_for_demand(time_point now)
    {
        std::size_t pending = 0; // connections that will serve a waiter soon
        // A connection saying QUIT is still open: it counts against max_connections (a
        // provider's connection limit would refuse one more).
        std::size_t open_or_opening = closing_;
        std::size_t ready = 0;
        for (auto& c : nodes_) {
            ++open_or_opening;
            pending += c.st != conn_state::ready;
            ready += c.st == conn_state::ready;
        }
        std::size_t want = live_waiters_ > pending ? live_waiters_ - pending : 0;
        if (!draining_ && ready + pending < opts_.min_idle)
            want = std::max(want, opts_.min_idle - ready - pending);
        if (want == 0 || open_or_opening >= opts_.max_connections)
            return;
        switch (breaker(now)) {
        case breaker_state::open: arm_backoff(open_until_); return;
        case breaker_state::half_open:
            // One probe at a time, whatever the backoff says: the open period was the wait.
            if (open_or_opening == closing_)
                push({.kind = action_kind::open});
            return;
        case breaker_state::closed: break;
        }
        if (now < next_connect_) {
            arm_backoff(next_connect_);
            return;
        }
        for (; want > 0 && open_or_opening < opts_.max_connections; --want, ++open_or_opening)
            push({.kind = action_kind::open});
    }

    // QUIT, then close; the connection leaves the pool at once. A closed one just closes.
    void retire(const Conn& c)
    {
        const bool quit = is_open(c);
        remove(c);
        if (quit)
            ++closing_;
        push({.kind = action_kind::retire, .conn = c, .quit = quit});
    }

    // Retires idle and old connections, keeps min_idle warm.
    void maintain(time_point now)
    {
        std::size_t ready = 0;
        for (auto& c : nodes_)
            ready += c.st == conn_state::ready;
        std::vector<Conn> out;
        for (auto& c : nodes_) {
            if (c.st != conn_state::ready || c.leases != 0)
                continue;
            const bool old = !lendable(c, now); // too old, retiring or closed
            const bool idle_too_long = now - c.last_used >= opts_.idle_timeout;
            if (old || (idle_too_long && ready > opts_.min_idle)) {
                out.push_back(c.conn);
                --ready;
            }
        }
        for (auto& c : out)
            retire(c);
        serve(now); // tops up min_idle
    }

    void maybe_finish_drain()
    {
        if (!draining_ || closed_ || live_waiters_ != 0)
            return;
        for (auto& c : nodes_)
            if (c.leases != 0)
                return;
        std::vector<node> rest = nodes_;
        for (auto& c : rest) {
            if (c.st == conn_state::ready) {
                retire(c.conn);
            } else {
                push({.kind = action_kind::close, .conn = c.conn});
                remove(c.conn);
            }
        }
        if (!nodes_.empty() || closing_ != 0)
            return;
        push({.kind = action_kind::drained});
        cancel_timers();
    }

    // ---- timers -----------------------------------------------------------------------------

    void arm(pool_timer t, time_point at)
    {
        push({.kind = action_kind::arm_timer, .timer = t, .at = at});
    }

    void arm_checkout_timer()
    {
        waiter* w = front_waiter();
        if (!w || (checkout_armed_ && *checkout_armed_ <= w->deadline))
            return;
        checkout_armed_ = w->deadline;
        arm(pool_timer::checkout, w->deadline);
    }

    void arm_backoff(time_point at)
    {
        if (backing_off_)
            return;
        backing_off_ = true;
        arm(pool_timer::backoff, at);
    }

    // Every waiter fails with `ec` (the connect error that opened it); checkouts fail with
    // circuit_open until open_until_. No connection is open (connects under way may finish).
    void open_breaker(error_code ec, time_point now)
    {
        breaker_ = breaker_state::open;
        open_until_ = now + opts_.breaker.open_for;
        ++trips_;
        for (auto& w : waiters_)
            finish_waiter(w, ec);
        waiters_.clear();
        push({.kind = action_kind::breaker_open, .ec = ec, .at = open_until_});
    }

    // Runs while the pool holds a connection (or should: min_idle), so an idle pool leaves
    // its io_context free to return.
    void arm_maintenance(time_point now)
    {
        if (maintaining_ || closed_ || (nodes_.empty() && (opts_.min_idle == 0 || draining_)))
            return;
        maintaining_ = true;
        arm(pool_timer::maintenance, now + maintenance_interval(opts_));
    }

    void cancel_timers()
    {
        checkout_armed_.reset();
        backing_off_ = false;
        maintaining_ = false;
        push({.kind = action_kind::cancel_timers});
    }

    pool_options opts_;
    std::vector<node> nodes_; // connecting, probing or ready
    std::deque<waiter> waiters_;
    std::size_t live_waiters_ = 0; // in waiters_ and not done
    std::size_t closing_ = 0;      // QUITs under way
    waiter_id next_waiter_ = 1;

    std::optional<time_point> checkout_armed_;
    bool backing_off_ = false;
    bool maintaining_ = false;

    unsigned failures_ = 0;
    time_point next_connect_{};

    breaker_state breaker_ = breaker_state::closed; // open: until open_until_, then half-open
    unsigned breaker_failures_ = 0;
    time_point open_until_{};
    std::uint64_t trips_ = 0;

    bool draining_ = false;
    bool closed_ = false;

    std::vector<action> out_;
};

} // namespace mailroom::pool::detail
