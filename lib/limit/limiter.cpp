// The Asio side of the rate limiter: the steady clock, one timer, and the waiters' handlers.
// Every decision is rate_limiter's (pure, tested on a manual clock); this file only reads the
// time, stores handlers by ticket and posts their completions.

#include <mailroom/limit/limiter.hpp>

#include "detail/completion.hpp"
#include "detail/shutdown.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>

#include <mutex>
#include <unordered_map>

namespace mailroom::limit {

using acquire_handler = asio::any_completion_handler<void(error_code, permit)>;

namespace detail {

struct limiter_impl final : std::enable_shared_from_this<limiter_impl>,
                            mailroom::detail::shutdown_listener {
    limiter_impl(asio::any_io_executor e, rate_limiter r)
        : ex(std::move(e))
        , core(std::move(r))
        , timer(ex)
    {
    }

    asio::any_io_executor ex;
    mutable std::mutex mutex;
    rate_limiter core;
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
        for (ticket g : core.poll(t))
            complete(g, {});
        rearm(t);
    }

    void rearm(time_point t)
    {
        const auto wake = core.next_wakeup(t);
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
    impl_ = std::make_shared<detail::limiter_impl>(std::move(ex), std::move(*r));
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
    return impl_->core.options(); // never changes after construction
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
    auto t = impl_->core.enqueue(cost, now);
    if (!t) {
        ec = t.error();
        return {};
    }
    for (ticket g : impl_->core.poll(now))
        if (g == *t)
            return permit{impl_, g};
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
    return impl_->core.snapshot(detail::limiter_impl::now());
}

} // namespace mailroom::limit
