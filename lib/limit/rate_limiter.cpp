// mailroom::limit::rate_limiter: FIFO grants across buckets, concurrency, adaptive rate, pauses.
#include <mailroom/limit/rate_limiter.hpp>

#include "wide.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

namespace mailroom::limit {

using detail::saturating_add;
using detail::u128;

namespace {

error_code invalid(diagnostics& diag, std::string field, const char* detail)
{
    diag.field = std::move(field);
    diag.detail = detail;
    return error::invalid_limit;
}

// How long `b` takes to go from empty to full at its configured rate: burst × per / rate,
// rounded up.
duration refill_time(const token_bucket& b)
{
    const u128 ns =
        detail::ceil_div(u128(b.burst()) * u128(detail::nanoseconds_of(b.per())), u128(b.rate()));
    return detail::saturating_span(time_point{}, time_point{}, ns);
}

// When a queue holds more cancelled entries than live ones (and enough to matter), one pass
// removes them, so cancelling in the middle of a long queue costs O(log n) amortised and the
// queue's memory stays proportional to the live waiters.
constexpr std::size_t compact_threshold = 64;

} // namespace

result<rate_limiter> rate_limiter::create(const rate_limiter_options& o, time_point now,
                                          diagnostics& diag)
{
    rate_limiter l;
    for (std::size_t i = 0; i < o.buckets.size(); ++i) {
        auto b = token_bucket::create(o.buckets[i], now, diag);
        if (!b) {
            diag.field = "buckets[" + std::to_string(i) + "]." + diag.field;
            return b.error();
        }
        l.min_burst_ = i == 0 ? b->burst() : std::min(l.min_burst_, b->burst());
        l.buckets_.push_back(std::move(*b));
    }
    const adaptive_options& a = o.adaptive;
    auto permille_ok = [](unsigned p) {
        return p >= 1 && p <= token_bucket::full_rate;
    };
    if (!permille_ok(a.cut_to_permille))
        return invalid(diag, "adaptive.cut_to_permille", "must be 1 to 1000");
    if (!permille_ok(a.floor_permille))
        return invalid(diag, "adaptive.floor_permille", "must be 1 to 1000");
    if (!permille_ok(a.step_permille))
        return invalid(diag, "adaptive.step_permille", "must be 1 to 1000");
    if (a.step_interval <= duration::zero())
        return invalid(diag, "adaptive.step_interval", "must be longer than zero");
    if (a.cut_cooldown < duration::zero())
        return invalid(diag, "adaptive.cut_cooldown", "must not be negative");
    if (o.max_wait < duration::zero())
        return invalid(diag, "max_wait", "must not be negative");
    if (o.quota_pause && *o.quota_pause <= duration::zero())
        return invalid(diag, "quota_pause", "must be longer than zero");
    l.options_ = o;
    l.now_ = now;
    return l;
}

result<rate_limiter> rate_limiter::create(const rate_limiter_options& o, time_point now)
{
    diagnostics diag;
    return create(o, now, diag);
}

void rate_limiter::set_permille(unsigned permille, time_point now)
{
    permille_ = permille;
    for (token_bucket& b : buckets_)
        b.set_rate_permille(permille, now);
}

void rate_limiter::advance(time_point now)
{
    now = at(now);
    // Recovery steps that fell due, each at its own time: the buckets refill at the old rate
    // up to the step and at the new one after it, so the result doesn't depend on how often
    // the limiter is called.
    const adaptive_options& a = options_.adaptive;
    while (a.enabled && permille_ < token_bucket::full_rate && next_step_ <= now) {
        const time_point step = next_step_;
        set_permille(std::min(token_bucket::full_rate, permille_ + a.step_permille), step);
        next_step_ = saturating_add(step, a.step_interval);
    }
    for (token_bucket& b : buckets_)
        b.advance(now);
    now_ = now;
    if (paused_until_ && *paused_until_ <= now_)
        paused_until_.reset();
}

void rate_limiter::drop_cancelled_front()
{
    while (!queue_.empty() && queue_.front().cancelled)
        queue_.pop_front();
}

std::size_t rate_limiter::effective_max_in_flight() const noexcept
{
    const std::size_t m = options_.max_in_flight;
    if (m == 0)
        return 0;
    // floor(m × permille / 1000) without overflow: m = 1000q + r.
    const std::size_t scaled = (m / 1000) * permille_ + (m % 1000) * permille_ / 1000;
    return std::max<std::size_t>(1, scaled);
}

bool rate_limiter::concurrency_blocked() const noexcept
{
    const std::size_t cap = effective_max_in_flight();
    return cap != 0 && granted_.size() >= cap;
}

result<ticket> rate_limiter::enqueue(std::uint64_t cost, time_point now)
{
    advance(now);
    if (min_burst_ != 0 && cost > min_burst_) {
        ++counters_.rejected;
        return error::cost_exceeds_burst;
    }
    if (options_.max_wait != duration::max()) {
        // A lower bound on the grant: every bucket must first supply what the waiters ahead
        // want and then this cost, at no more than its configured rate; and the pause must end.
        const std::uint64_t total = waiting_cost_ > std::numeric_limits<std::uint64_t>::max() - cost
                                        ? std::numeric_limits<std::uint64_t>::max()
                                        : waiting_cost_ + cost;
        time_point earliest = paused_until_ ? *paused_until_ : now_;
        for (const token_bucket& b : buckets_)
            earliest = std::max(earliest, saturating_add(now_, b.time_to_supply(total, now_)));
        if (earliest > saturating_add(now_, options_.max_wait)) {
            ++counters_.rejected;
            return error::limit_wait_too_long;
        }
    }
    const ticket t{next_id_++};
    queue_.push_back({t.id, cost, false});
    ++waiters_;
    waiting_cost_ += cost;
    return t;
}

std::vector<ticket> rate_limiter::poll(time_point now)
{
    return poll_impl(now, nullptr);
}

std::vector<ticket> rate_limiter::poll(time_point now, std::uint64_t& tokens)
{
    return poll_impl(now, &tokens);
}

std::optional<std::uint64_t> rate_limiter::head_cost()
{
    drop_cancelled_front();
    if (queue_.empty())
        return std::nullopt;
    return queue_.front().cost;
}

std::uint64_t rate_limiter::cost_of_first(std::size_t n) const noexcept
{
    std::uint64_t total = 0;
    for (const waiter& w : queue_) {
        if (n == 0)
            break;
        if (w.cancelled)
            continue;
        total += w.cost;
        --n;
    }
    return total;
}

std::size_t rate_limiter::free_slots() const noexcept
{
    const std::size_t cap = effective_max_in_flight();
    if (cap == 0)
        return std::numeric_limits<std::size_t>::max();
    return cap > granted_.size() ? cap - granted_.size() : 0;
}

std::optional<std::uint64_t> rate_limiter::granted_cost(ticket t) const
{
    if (auto g = granted_.find(t.id); g != granted_.end())
        return g->second;
    return std::nullopt;
}

std::vector<ticket> rate_limiter::poll_impl(time_point now, std::uint64_t* tokens)
{
    advance(now);
    std::vector<ticket> granted;
    if (paused_until_)
        return granted;
    drop_cancelled_front();
    while (!queue_.empty() && !concurrency_blocked()) {
        const waiter w = queue_.front();
        // All or nothing: the head goes only when every bucket holds its whole cost, and no
        // one behind it goes first.
        const bool fits = std::all_of(buckets_.begin(), buckets_.end(), [&](const token_bucket& b) {
            return b.available(now_) >= w.cost;
        });
        if (!fits || (tokens && *tokens < w.cost))
            break;
        if (tokens)
            *tokens -= w.cost;
        for (token_bucket& b : buckets_)
            b.try_take(w.cost, now_);
        granted_.emplace(w.id, w.cost);
        --waiters_;
        waiting_cost_ -= w.cost;
        ++counters_.granted;
        counters_.granted_cost += w.cost;
        granted.push_back({w.id});
        queue_.pop_front();
        drop_cancelled_front();
    }
    return granted;
}

std::optional<time_point> rate_limiter::next_wakeup(time_point now)
{
    advance(now);
    drop_cancelled_front();
    if (queue_.empty())
        return std::nullopt;
    std::optional<time_point> when;
    if (!concurrency_blocked()) {
        const std::uint64_t cost = queue_.front().cost;
        time_point t = paused_until_ ? *paused_until_ : now_;
        for (const token_bucket& b : buckets_)
            t = std::max(t, saturating_add(now_, b.time_until(cost, now_)));
        when = t;
    }
    // A recovery step raises the rate (and the concurrency cap): the head may go sooner than
    // the current rate says, so wake up at the step and look again.
    if (options_.adaptive.enabled && permille_ < token_bucket::full_rate)
        when = when ? std::min(*when, next_step_) : next_step_;
    return when;
}

bool rate_limiter::withdraw(ticket t)
{
    return remove_waiting(t);
}

bool rate_limiter::remove_waiting(ticket t)
{
    auto it = std::lower_bound(queue_.begin(), queue_.end(), t.id,
                               [](const waiter& w, std::uint64_t id) { return w.id < id; });
    if (it == queue_.end() || it->id != t.id || it->cancelled)
        return false;
    it->cancelled = true;
    --waiters_;
    waiting_cost_ -= it->cost;
    drop_cancelled_front();
    if (queue_.size() > compact_threshold && queue_.size() > 2 * waiters_)
        std::erase_if(queue_, [](const waiter& w) { return w.cancelled; });
    return true;
}

bool rate_limiter::cancel(ticket t)
{
    if (remove_waiting(t)) {
        ++counters_.cancelled_waiting;
        return true;
    }
    if (auto g = granted_.find(t.id); g != granted_.end()) {
        for (token_bucket& b : buckets_)
            b.refund(g->second);
        ++counters_.refunded;
        counters_.refunded_cost += g->second;
        granted_.erase(g);
        return true;
    }
    return false;
}

bool rate_limiter::release(ticket t)
{
    return granted_.erase(t.id) != 0;
}

ticket_state rate_limiter::state(ticket t) const
{
    if (granted_.contains(t.id))
        return ticket_state::granted;
    auto it = std::lower_bound(queue_.begin(), queue_.end(), t.id,
                               [](const waiter& w, std::uint64_t id) { return w.id < id; });
    if (it != queue_.end() && it->id == t.id && !it->cancelled)
        return ticket_state::waiting;
    return ticket_state::unknown;
}

void rate_limiter::on_signal(signal s, time_point now)
{
    advance(now);
    switch (s) {
    case signal::none: return;
    case signal::slow_down: {
        ++counters_.slow_down_signals;
        const adaptive_options& a = options_.adaptive;
        if (!a.enabled)
            return;
        next_step_ = saturating_add(now_, a.step_interval);
        if (last_cut_ && now_ - *last_cut_ < a.cut_cooldown)
            return;
        last_cut_ = now_;
        const unsigned cut = std::max(a.floor_permille, permille_ * a.cut_to_permille / 1000);
        if (cut < permille_) {
            set_permille(cut, now_);
            ++counters_.rate_cuts;
        }
        return;
    }
    case signal::quota_exhausted: {
        ++counters_.quota_signals;
        // The server says the quota is used up, whatever our bucket thought: empty the bucket
        // that models the longest horizon (the daily one), so sending resumes at its refill
        // rate rather than with a burst the server would refuse.
        token_bucket* longest = nullptr;
        duration longest_refill = duration::zero();
        for (token_bucket& b : buckets_) {
            const duration d = refill_time(b);
            if (!longest || d > longest_refill) {
                longest = &b;
                longest_refill = d;
            }
        }
        if (longest)
            longest->drain(now_);
        // With no bucket to go by, a day: the quotas this signal reports are daily ones.
        const duration pause = options_.quota_pause ? *options_.quota_pause
                               : longest            ? longest_refill
                                                    : std::chrono::hours(24);
        const time_point until = saturating_add(now_, pause);
        if (!paused_until_ || until > *paused_until_)
            paused_until_ = until;
        return;
    }
    }
}

void rate_limiter::resume() noexcept
{
    paused_until_.reset();
}

limiter_snapshot rate_limiter::snapshot(time_point now)
{
    advance(now);
    limiter_snapshot s;
    s.buckets.reserve(buckets_.size());
    for (const token_bucket& b : buckets_)
        s.buckets.push_back({
            .rate = b.rate(),
            .per = b.per(),
            .burst = b.burst(),
            .available = b.available(now_),
            .effective_rate =
                static_cast<double>(b.rate()) * b.rate_permille() / token_bucket::full_rate,
        });
    s.rate_permille = permille_;
    s.waiters = waiters_;
    s.waiting_cost = waiting_cost_;
    s.in_flight = granted_.size();
    s.max_in_flight = effective_max_in_flight();
    s.paused_until = paused_until_;
    s.granted = counters_.granted;
    s.granted_cost = counters_.granted_cost;
    s.cancelled_waiting = counters_.cancelled_waiting;
    s.refunded = counters_.refunded;
    s.refunded_cost = counters_.refunded_cost;
    s.rejected = counters_.rejected;
    s.slow_down_signals = counters_.slow_down_signals;
    s.rate_cuts = counters_.rate_cuts;
    s.quota_signals = counters_.quota_signals;
    return s;
}

} // namespace mailroom::limit
