// mailroom::limit::rate_limiter: one provider's rate limits, waiters and adaptive rate, I/O-free.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/limit/clock.hpp>
#include <mailroom/limit/limiter_snapshot.hpp>
#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/limit/signal.hpp>
#include <mailroom/limit/token_bucket.hpp>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

namespace mailroom::limit {

/// One acquisition, from enqueue() until it is released or cancelled. Numbers increase in
/// enqueue order and are never reused by a limiter; 0 is no ticket.
struct ticket {
    std::uint64_t id = 0; ///< 1, 2, ...; 0: no ticket
    friend auto operator<=>(const ticket&, const ticket&) = default;
};

/// Where a ticket is.
enum class ticket_state {
    unknown, ///< never issued, or released or cancelled
    waiting, ///< queued: nothing taken yet
    granted, ///< its cost is taken and it counts as in flight
};

/// The decisions of one provider's rate limiter, with no I/O: the caller passes the time and
/// arms its own timer. (The Asio limiter is a thin wrapper over this.)
///
/// A send asks with enqueue(cost, now) and gets a ticket. poll(now) grants waiting tickets
/// strictly first come, first served: the cost comes out of every bucket at once, and only
/// when every bucket holds it, so a burst can't overshoot any limit; a later small request
/// never overtakes an earlier large one. next_wakeup(now) says when to poll again. When the
/// send is finished, release(ticket); a send given up cancel(ticket): a waiting ticket takes
/// nothing, a granted one gives its tokens back.
///
/// After anything that may let the head through sooner (cancel, release, resume, a recovery
/// step), call poll() again, then next_wakeup().
///
/// The provider's answers feed on_signal(): "slow down" cuts the rates (and the concurrency
/// cap) and they recover step by step; "quota exhausted" pauses the provider. Each provider has
/// its own limiter: nothing here is shared, so one provider's backlog never delays another's.
///
/// Every operation takes `now` (see clock.hpp) and first brings the state up to it, so the
/// same calls at the same times give the same results. Thread safety: a value type; not safe
/// for concurrent use (the Asio wrapper serialises on a strand).
class rate_limiter {
public:
    /// A limiter as `options` say, starting at `now`. Fails with error::invalid_limit when a
    /// value is out of range; `diag.field` names it ("buckets[1].per", "adaptive.floor_permille").
    MAILROOM_API static result<rate_limiter> create(const rate_limiter_options& options,
                                                    time_point now, diagnostics& diag);
    /// As above, without diagnostics.
    MAILROOM_API static result<rate_limiter> create(const rate_limiter_options& options,
                                                    time_point now);

    /// The cost of a message with `recipients` envelope recipients under options().charge_by:
    /// 1 per message, or the number of recipients.
    std::uint64_t cost_for(std::size_t recipients) const noexcept
    {
        return options_.charge_by == charge::per_recipient ? recipients : 1;
    }

    /// Queues a request for `cost` tokens from every bucket (0 is allowed: it waits its turn and
    /// takes only a concurrency slot). Grants nothing by itself: call poll(now).
    ///
    /// Errors: error::cost_exceeds_burst when a bucket's burst is below `cost` (it could never
    /// be granted); error::limit_wait_too_long when options().max_wait is set and the request
    /// can't be granted within it (see rate_limiter_options::max_wait).
    MAILROOM_API result<ticket> enqueue(std::uint64_t cost, time_point now);

    /// Grants what can be granted at `now`, in FIFO order, and returns those tickets in that
    /// order. Grants nothing while paused, and stops at the first waiter that doesn't fit
    /// (tokens or concurrency).
    MAILROOM_API std::vector<ticket> poll(time_point now);

    /// As poll(now), but each grant also takes its cost out of `tokens`, tokens held outside
    /// the buckets (a lease from a shared store): the head goes only when `tokens` holds its
    /// cost too. With no buckets, `tokens` alone decides.
    MAILROOM_API std::vector<ticket> poll(time_point now, std::uint64_t& tokens);

    /// The cost the head of the queue waits for; nothing when no one waits.
    MAILROOM_API std::optional<std::uint64_t> head_cost();
    /// What every waiter wants, together.
    std::uint64_t waiting_cost() const noexcept { return waiting_cost_; }
    /// The next adaptive recovery step, while the rate is cut (and adaptive.enabled).
    std::optional<time_point> next_recovery_step() const noexcept
    {
        if (options_.adaptive.enabled && permille_ < token_bucket::full_rate)
            return next_step_;
        return std::nullopt;
    }
    /// What the first `n` waiters want, together.
    MAILROOM_API std::uint64_t cost_of_first(std::size_t n) const noexcept;
    /// How many more acquisitions the concurrency cap lets go now (SIZE_MAX: no cap).
    MAILROOM_API std::size_t free_slots() const noexcept;
    /// The cost a granted ticket took; nothing if `t` is not granted.
    MAILROOM_API std::optional<std::uint64_t> granted_cost(ticket t) const;
    /// Whether the concurrency cap holds the head back now.
    bool at_concurrency_cap() const noexcept { return concurrency_blocked(); }

    /// When poll() should next run: the time the head of the queue could be granted at the
    /// current rate (≤ `now`: poll now), or the next adaptive recovery step if that comes
    /// first (the head may then go sooner). Nothing: no one waits, or the head waits only for
    /// a release (concurrency), which is an event, not a time.
    MAILROOM_API std::optional<time_point> next_wakeup(time_point now);

    /// Gives up a ticket. Waiting: removed, nothing was taken. Granted: its tokens go back to
    /// every bucket (never above burst) and its concurrency slot is freed. Returns false for
    /// a ticket in neither state (already released or cancelled, or never issued).
    MAILROOM_API bool cancel(ticket t);

    /// Takes back a waiting ticket as if it had never been queued: nothing taken, and not
    /// counted as a cancelled wait (for a caller that only wanted a grant at once). Returns
    /// false if `t` is not waiting.
    MAILROOM_API bool withdraw(ticket t);

    /// The send for a granted ticket finished (whatever its outcome): its concurrency slot is
    /// freed; the tokens stay spent. Returns false if `t` is not granted.
    MAILROOM_API bool release(ticket t);

    /// Where `t` is now: waiting, granted, or unknown (never issued, released or cancelled).
    MAILROOM_API ticket_state state(ticket t) const;

    /// Applies a signal at `now`.
    /// - slow_down: with adaptive.enabled, the rate becomes rate × cut_to/1000 (not below the
    ///   floor) unless the last cut was within cut_cooldown, and the recovery clock restarts:
    ///   each step_interval without another slow-down adds step_permille, up to 1000. The cap
    ///   on in-flight acquisitions follows: max(1, max_in_flight × rate_permille / 1000).
    /// - quota_exhausted: the bucket that takes longest to refill is emptied and the provider
    ///   pauses (see rate_limiter_options::quota_pause); a pause already longer stays.
    MAILROOM_API void on_signal(signal s, time_point now);

    /// Ends a quota pause now (an operator knows better). Call poll() afterwards.
    MAILROOM_API void resume() noexcept;

    /// Counters and gauges at `now`.
    MAILROOM_API limiter_snapshot snapshot(time_point now);

    /// Acquisitions waiting (not cancelled).
    std::size_t waiting() const noexcept { return waiters_; }
    /// The adaptive rate now, in thousandths of the configured rate.
    unsigned rate_permille() const noexcept { return permille_; }
    /// The end of the quota pause, if one lasts at the last time seen.
    std::optional<time_point> paused_until() const noexcept { return paused_until_; }
    /// The options it was created with.
    const rate_limiter_options& options() const noexcept { return options_; }

private:
    rate_limiter() = default;

    struct waiter {
        std::uint64_t id = 0;
        std::uint64_t cost = 0;
        bool cancelled = false; ///< left in place until it reaches the front
    };

    time_point at(time_point now) const noexcept { return now < now_ ? now_ : now; }
    void advance(time_point now);
    std::vector<ticket> poll_impl(time_point now, std::uint64_t* tokens);
    void set_permille(unsigned permille, time_point now);
    void drop_cancelled_front();
    bool remove_waiting(ticket t);
    std::size_t effective_max_in_flight() const noexcept;
    bool concurrency_blocked() const noexcept;

    rate_limiter_options options_;
    std::vector<token_bucket> buckets_;
    std::uint64_t min_burst_ = 0; ///< 0: no bucket

    std::deque<waiter> queue_; ///< ascending ids
    std::size_t waiters_ = 0;  ///< not cancelled
    std::uint64_t waiting_cost_ = 0;
    std::unordered_map<std::uint64_t, std::uint64_t> granted_; ///< id → cost
    std::uint64_t next_id_ = 1;

    time_point now_{}; ///< the latest time seen
    unsigned permille_ = token_bucket::full_rate;
    time_point next_step_{};             ///< the next recovery step, while permille_ < 1000
    std::optional<time_point> last_cut_; ///< for cut_cooldown
    std::optional<time_point> paused_until_;

    struct counters {
        std::uint64_t granted = 0;
        std::uint64_t granted_cost = 0;
        std::uint64_t cancelled_waiting = 0;
        std::uint64_t refunded = 0;
        std::uint64_t refunded_cost = 0;
        std::uint64_t rejected = 0;
        std::uint64_t slow_down_signals = 0;
        std::uint64_t rate_cuts = 0;
        std::uint64_t quota_signals = 0;
    } counters_;
};

} // namespace mailroom::limit
