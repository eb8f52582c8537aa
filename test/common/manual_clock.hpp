// A clock that moves only when a test says so, and timers on it: for pure code that takes
// `now` from its caller (pool policy, rate limiter). Nothing here waits.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <utility>

namespace mailroom::test {

/// Time as a plain variable: now() is where the test put it.
template <class Clock = std::chrono::steady_clock> class manual_clock {
public:
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    explicit manual_clock(time_point start = {})
        : now_(start)
    {
    }

    time_point now() const noexcept { return now_; }
    void advance(duration d) noexcept { now_ += d; }
    /// Moves to `t`; never backwards.
    void set(time_point t) noexcept
    {
        if (t > now_)
            now_ = t;
    }
    /// Time since the start (for readable expectations).
    duration elapsed() const noexcept { return now_ - start_; }

private:
    time_point now_;
    time_point start_ = now_;
};

/// Named one-shot timers on a manual_clock (after Boost.MySQL's test_unit/mock_timer): the code
/// under test arms them, the test advances the clock and fires what is due, earliest first.
template <class Key, class Clock = std::chrono::steady_clock> class manual_timers {
public:
    using time_point = typename Clock::time_point;

    /// Arms (or re-arms) `k` to fire at `at`.
    void arm(Key k, time_point at) { armed_[k] = at; }
    void cancel(const Key& k) { armed_.erase(k); }
    void cancel_all() { armed_.clear(); }
    std::optional<time_point> expiry(const Key& k) const
    {
        auto it = armed_.find(k);
        return it == armed_.end() ? std::nullopt : std::optional<time_point>(it->second);
    }

    /// The earliest timer due at or before `limit`, disarmed; ties go in key order.
    std::optional<std::pair<Key, time_point>> pop_due(time_point limit)
    {
        auto best = armed_.end();
        for (auto it = armed_.begin(); it != armed_.end(); ++it)
            if (it->second <= limit && (best == armed_.end() || it->second < best->second))
                best = it;
        if (best == armed_.end())
            return std::nullopt;
        auto out = *best;
        armed_.erase(best);
        return out;
    }

private:
    std::map<Key, time_point> armed_;
};

} // namespace mailroom::test
