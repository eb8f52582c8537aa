// The Asio side of the rate limiter: the steady clock, one timer, and the waiters' handlers.
// Every decision is rate_limiter's (pure, tested on a manual clock); this file only reads the
// time, stores handlers by ticket and posts their completions.

#include <mailroom/limit/limiter.hpp>

#include "detail/completion.hpp"
#include "detail/shutdown.hpp"
#include "lease_planner.hpp"
#include "redis_store.hpp"
#include "wide.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>

#include <mutex>
#include <unordered_map>

namespace mailroom::limit {

using acquire_handler = asio::any_completion_handler<void(error_code, permit)>;

namespace detail {

struct limiter_impl final : std::enable_shared_from_this<limiter_impl>,
                            mailroom::detail::shutdown_listener {
    limiter_impl(asio::any_io_executor e, rate_limiter_options o, rate_limiter r)
        : ex(std::move(e))
        , configured(std::move(o))
        , core(std::move(r))
        , timer(ex)
    {
    }

    asio::any_io_executor ex;
    mutable std::mutex mutex;
    rate_limiter_options configured; // as given (core has no buckets with a shared store)
    rate_limiter core;
    // A shared store (store_kind::redis): what to ask for and the link to Redis.
    std::optional<lease_planner> lease;
    std::shared_ptr<redis_store> store;
    logger log;
    duration redis_wait{};
    duration quota_pause{};
    std::size_t longest_bucket = 0; // 1-based; 0: none
    asio::steady_timer timer;
    std::optional<time_point> armed; // the wake-up the timer waits for
    std::uint64_t generation = 0;    // of the timer's current wait
    std::unordered_map<std::uint64_t, acquire_handler> waiting;
    bool closed = false;

    static time_point now() { return clock::now(); }

    // The io_context is shutting down: waiting acquisitions are dropped unrun (see
    // detail/shutdown.hpp).
    void on_shutdown() noexcept override
    {
        std::unordered_map<std::uint64_t, acquire_handler> w;
        {
            std::lock_guard lock(mutex);
            closed = true;
            w.swap(waiting);
        }
    }

    // Completes the waiter for `t` (if it still waits on us). Called with the mutex held:
    // posting only queues the handler.
    void complete(ticket t, error_code ec)
    {
        auto node = waiting.extract(t.id);
        if (node.empty())
            return;
        acquire_handler h;
        h.swap(node.mapped()); // not operator=: see detail/completion.hpp
        asio::get_associated_cancellation_slot(h).clear();
        permit p = ec ? permit{} : permit{shared_from_this(), t};
        mailroom::detail::post_completion(ex, std::move(h), ec, std::move(p));
    }

    // Grants whatever can go now, then arms the timer for the next time something can.
    void pump(time_point t)
    {
        if (!lease) {
            for (ticket g : core.poll(t))
                complete(g, {});
            rearm(t);
            return;
        }
        std::uint64_t tokens = lease->usable(t);
        const std::uint64_t before = tokens;
        for (ticket g : core.poll(t, tokens))
            complete(g, {});
        lease->take(before - tokens, t);
        lease->drop_granted();
        if (closed) {
            rearm(t);
            return;
        }
        if (const std::uint64_t n = lease->take_refund(t))
            give_back(n);
        const bool blocked = core.at_concurrency_cap() || core.paused_until().has_value();
        if (auto r = lease->next_request(t, core.head_cost(), core.cost_of_first(core.free_slots()),
                                         blocked))
            ask(*r, t);
        rearm(t);
    }

    std::optional<time_point> wakeup(time_point t)
    {
        if (!lease)
            return core.next_wakeup(t);
        std::optional<time_point> w = core.next_recovery_step();
        auto at = [&](std::optional<time_point> x) {
            if (x)
                w = w ? std::min(*w, *x) : *x;
        };
        at(core.paused_until());
        const bool blocked = core.at_concurrency_cap() || core.paused_until().has_value();
        at(lease->next_wakeup(t, core.head_cost(), blocked));
        return w;
    }

    static std::string us(duration d)
    {
        return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    }

    void log_state(limiter_snapshot::store_state before, const std::string& why)
    {
        using st = limiter_snapshot::store_state;
        const st now = lease->state();
        if (now == before || (now == st::connected && before == st::connecting))
            return;
        const std::string who = "limit[" + store->key() + "] ";
        switch (now) {
        case st::connected: log(log_level::warning, who + "Redis answers again"); break;
        case st::unavailable:
            log(log_level::warning, who + "Redis unavailable (" + why + "): sends wait for it");
            break;
        case st::fallback:
            log(log_level::warning,
                who + "Redis unavailable (" + why + "): local buckets stand in until it is back");
            break;
        case st::failed:
            log(log_level::error, who + "Redis refused the limiter (" + why + "): sends fail");
            break;
        case st::connecting: break;
        }
    }

    // One acquire call; its answer feeds the planner and pumps again.
    void ask(const store_request& r, time_point sent)
    {
        std::weak_ptr<limiter_impl> weak = weak_from_this();
        store->call(
            script_call::acquire,
            {std::to_string(r.min), std::to_string(r.need), std::to_string(r.extra), us(r.lease)},
            [weak, r, sent](error_code ec, redis::reply rep) {
                auto self = weak.lock();
                if (!self)
                    return;
                std::lock_guard lock(self->mutex);
                const time_point now = limiter_impl::now();
                self->redis_wait += now - sent;
                const auto before = self->lease->state();
                diagnostics d;
                if (!ec) {
                    auto a = decode_acquire(rep, d);
                    if (a)
                        self->lease->on_answer(r, *a, sent, now);
                    else
                        ec = a.error();
                }
                if (ec)
                    self->failed(ec, rep, d, now);
                self->log_state(before, ec ? ec.message() : std::string());
                self->pump(now);
            });
    }

    // The acquire call failed: Redis away (wait or fall back), or refusing us (the waiters
    // fail with the error).
    void failed(error_code ec, const redis::reply& rep, const diagnostics& d, time_point now)
    {
        const bool transient =
            ec == error::redis_unavailable || ec == error::redis_timeout ||
            (ec == error::redis_error_reply && rep.is_error() && transient_error_reply(rep));
        lease->on_failure(!transient, now);
        if (transient)
            return;
        if (rep.is_error())
            log(log_level::error, "limit[" + store->key() + "] Redis: " + rep.str);
        else if (!d.detail.empty())
            log(log_level::error, "limit[" + store->key() + "] Redis: " + d.detail);
        std::vector<std::uint64_t> ids;
        for (auto& [id, h] : waiting)
            if (core.state(ticket{id}) == ticket_state::waiting)
                ids.push_back(id);
        for (auto id : ids) {
            core.cancel(ticket{id});
            complete(ticket{id}, ec);
        }
    }

    // Tokens taken and not used go back to the shared buckets (fire and forget).
    void give_back(std::uint64_t n)
    {
        store->call(script_call::refund, {std::to_string(n)}, [](error_code, redis::reply) {});
    }

    void send_signal(signal s)
    {
        if (s == signal::none)
            return;
        const adaptive_options& a = configured.adaptive;
        if (s == signal::slow_down && !a.enabled)
            return;
        store->call(script_call::signal,
                    {s == signal::slow_down ? "slow" : "quota", std::to_string(a.cut_to_permille),
                     std::to_string(a.floor_permille), std::to_string(a.step_permille),
                     us(a.step_interval), us(a.cut_cooldown), us(quota_pause),
                     std::to_string(longest_bucket)},
                    [](error_code, redis::reply) {});
    }

    void rearm(time_point t)
    {
        const auto wake = wakeup(t);
        if (!wake || closed) {
            if (armed) {
                armed.reset();
                ++generation;
                timer.cancel();
            }
            return;
        }
        if (armed && *armed == *wake)
            return;
        armed = *wake;
        const auto gen = ++generation;
        timer.expires_at(*wake);
        std::weak_ptr<limiter_impl> weak = weak_from_this();
        timer.async_wait([weak, gen](error_code) {
            auto self = weak.lock();
            if (!self)
                return;
            std::lock_guard lock(self->mutex);
            if (gen != self->generation)
                return; // re-armed or cancelled since
            self->armed.reset();
            self->pump(now());
        });
    }

    void cancel_wait(ticket t)
    {
        std::lock_guard lock(mutex);
        if (core.state(t) != ticket_state::waiting)
            return;
        core.cancel(t);
        complete(t, asio::error::operation_aborted);
        pump(now());
    }

    void finish(ticket t, bool refund)
    {
        std::lock_guard lock(mutex);
        if (refund && lease && !closed)
            if (auto cost = core.granted_cost(t); cost && *cost > 0)
                give_back(*cost);
        if (refund)
            core.cancel(t);
        else
            core.release(t);
        if (!closed)
            pump(now());
    }

    void close()
    {
        std::lock_guard lock(mutex);
        closed = true;
        std::vector<std::uint64_t> ids;
        for (auto& [id, h] : waiting)
            ids.push_back(id);
        for (auto id : ids) {
            core.cancel(ticket{id});
            complete(ticket{id}, asio::error::operation_aborted);
        }
        if (lease) {
            // Leased tokens nobody will use go back.
            if (const std::uint64_t n = lease->surrender())
                give_back(n);
            // The connection goes too, or it would keep the io_context running (a mailer's
            // limiters share it, and close together).
            store->close();
        }
        rearm(now());
    }
};

} // namespace detail

// ---- permit -------------------------------------------------------------------------------

permit::permit(permit&& other) noexcept
    : impl_(std::move(other.impl_))
    , ticket_(std::exchange(other.ticket_, {}))
{
}
permit& permit::operator=(permit&& other) noexcept
{
    if (this != &other) {
        release();
        impl_ = std::move(other.impl_);
        ticket_ = std::exchange(other.ticket_, {});
    }
    return *this;
}
permit::~permit()
{
    release();
}
void permit::release() noexcept
{
    if (auto i = std::move(impl_))
        i->finish(std::exchange(ticket_, {}), false);
}
void permit::cancel() noexcept
{
    if (auto i = std::move(impl_))
        i->finish(std::exchange(ticket_, {}), true);
}

// ---- limiter ------------------------------------------------------------------------------

limiter::limiter(executor_type ex, rate_limiter_options options)
{
    diagnostics diag;
    auto r = rate_limiter::create(options, clock::now(), diag);
    if (!r)
        throw boost::system::system_error(r.error(), diag.to_string());
    impl_ = std::make_shared<detail::limiter_impl>(ex, options, std::move(*r));
    mailroom::detail::shutdown_registry::of(impl_->ex).add(impl_);
}
limiter::limiter(executor_type ex, rate_limiter_options options, store_options store,
                 std::shared_ptr<redis::client> client, std::string default_key)
{
    if (store.kind == store_kind::local) {
        *this = limiter(std::move(ex), std::move(options));
        return;
    }
    diagnostics diag;
    const time_point now = clock::now();
    auto plan = detail::lease_planner::create(options, store, now, diag);
    if (!plan)
        throw boost::system::system_error(plan.error(), diag.to_string());
    // The process keeps its queue, concurrency cap, adaptive cuts of that cap and quota pauses;
    // the buckets are Redis's. The local pause lasts as long as the shared one.
    rate_limiter_options local = options;
    local.buckets.clear();
    local.max_wait = duration::max(); // judged against the configured buckets, below
    duration pause = std::chrono::hours(24);
    std::size_t longest = 0;
    duration longest_refill = duration::zero();
    for (std::size_t i = 0; i < options.buckets.size(); ++i) {
        const auto& b = options.buckets[i];
        const std::uint64_t burst = b.burst == 0 ? b.rate : b.burst;
        if (b.rate == 0)
            continue;
        const auto ns =
            detail::ceil_div(detail::u128(burst) * detail::u128(detail::nanoseconds_of(b.per)),
                             detail::u128(b.rate));
        const duration d = detail::saturating_span(time_point{}, time_point{}, ns);
        if (longest == 0 || d > longest_refill) {
            longest = i + 1;
            longest_refill = d;
        }
    }
    if (longest)
        pause = longest_refill;
    if (options.quota_pause)
        pause = *options.quota_pause;
    local.quota_pause = pause;
    auto core = rate_limiter::create(local, now, diag);
    if (!core)
        throw boost::system::system_error(core.error(), diag.to_string());
    if (!client)
        client = std::make_shared<redis::client>(ex, store.redis);
    std::string key = store.key.empty() ? std::move(default_key) : store.key;
    impl_ = std::make_shared<detail::limiter_impl>(ex, std::move(options), std::move(*core));
    impl_->lease.emplace(std::move(*plan));
    impl_->store =
        std::make_shared<detail::redis_store>(std::move(client), impl_->configured, store, key);
    impl_->log = store.redis.log;
    impl_->quota_pause = pause;
    impl_->longest_bucket = longest;
    mailroom::detail::shutdown_registry::of(impl_->ex).add(impl_);
}

limiter::limiter(limiter&&) noexcept = default;
limiter& limiter::operator=(limiter&& other) noexcept
{
    if (this != &other) {
        if (impl_)
            impl_->close();
        impl_ = std::move(other.impl_);
    }
    return *this;
}
limiter::~limiter()
{
    if (impl_)
        impl_->close();
}

limiter::executor_type limiter::get_executor() const noexcept
{
    return impl_->ex;
}
const rate_limiter_options& limiter::options() const noexcept
{
    return impl_->configured; // never changes after construction
}
std::uint64_t limiter::cost_for(std::size_t recipients) const noexcept
{
    return impl_->core.cost_for(recipients);
}

permit limiter::try_acquire(std::uint64_t cost, error_code& ec)
{
    ec = {};
    std::lock_guard lock(impl_->mutex);
    if (impl_->closed) {
        ec = asio::error::operation_aborted;
        return {};
    }
    const auto now = detail::limiter_impl::now();
    if (impl_->core.waiting() != 0)
        return {};
    if (impl_->lease)
        if ((ec = impl_->lease->check(cost, 0, now)))
            return {};
    auto t = impl_->core.enqueue(cost, now);
    if (!t) {
        ec = t.error();
        return {};
    }
    if (impl_->lease) {
        // Only from what Redis already granted (a lease): asking would mean waiting.
        std::uint64_t tokens = impl_->lease->usable(now);
        const std::uint64_t before = tokens;
        for (ticket g : impl_->core.poll(now, tokens)) {
            impl_->lease->take(before - tokens, now);
            if (g == *t)
                return permit{impl_, g};
        }
    } else {
        for (ticket g : impl_->core.poll(now))
            if (g == *t)
                return permit{impl_, g};
    }
    impl_->core.withdraw(*t); // it would have to wait: take nothing, count nothing
    return {};
}

void limiter::initiate_acquire(std::shared_ptr<detail::limiter_impl> i, std::uint64_t cost,
                               acquire_handler h)
{
    std::lock_guard lock(i->mutex);
    if (i->closed) {
        mailroom::detail::post_completion(
            i->ex, std::move(h), make_error_code(asio::error::operation_aborted), permit{});
        return;
    }
    const auto now = detail::limiter_impl::now();
    if (i->lease)
        if (error_code ec = i->lease->check(cost, i->core.waiting_cost(), now)) {
            mailroom::detail::post_completion(i->ex, std::move(h), ec, permit{});
            return;
        }
    auto t = i->core.enqueue(cost, now);
    if (!t) {
        mailroom::detail::post_completion(i->ex, std::move(h), t.error(), permit{});
        return;
    }
    auto slot = asio::get_associated_cancellation_slot(h);
    if (slot.is_connected()) {
        std::weak_ptr<detail::limiter_impl> weak = i;
        slot.assign([weak, tk = *t](asio::cancellation_type) {
            if (auto self = weak.lock())
                self->cancel_wait(tk);
        });
    }
    i->waiting.emplace(t->id, std::move(h));
    i->pump(now);
}

void limiter::close() noexcept
{
    if (impl_)
        impl_->close();
}

void limiter::on_signal(signal s)
{
    std::lock_guard lock(impl_->mutex);
    const auto now = detail::limiter_impl::now();
    impl_->core.on_signal(s, now);
    if (impl_->lease) {
        impl_->lease->set_rate_permille(impl_->core.rate_permille(), now);
        impl_->send_signal(s);
    }
    impl_->pump(now);
}
void limiter::resume()
{
    std::lock_guard lock(impl_->mutex);
    impl_->core.resume();
    impl_->pump(detail::limiter_impl::now());
}
limiter_snapshot limiter::snapshot() const
{
    std::lock_guard lock(impl_->mutex);
    const time_point now = detail::limiter_impl::now();
    limiter_snapshot s = impl_->core.snapshot(now);
    if (impl_->lease) {
        limiter_snapshot::store_info info;
        impl_->lease->fill(info, now);
        info.commands = impl_->store->commands();
        info.redis_wait = impl_->redis_wait;
        s.store = info;
    }
    return s;
}

} // namespace mailroom::limit
