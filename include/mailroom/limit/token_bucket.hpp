// mailroom::limit::token_bucket: one rate limit, on exact integer arithmetic.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/limit/clock.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace mailroom::limit {

/// One rate: `rate` tokens every `per`, refilled continuously, at most `burst` held at once.
///
///     {.rate = 14, .burst = 20}                             // 14/s, 20 at once (SES-like)
///     {.rate = 30, .per = std::chrono::minutes(1)}          // 30/min (Exchange Online SMTP AUTH)
///     {.rate = 10'000, .per = std::chrono::hours(24)}       // 10 000/day, all usable at once
struct bucket_options {
    std::uint64_t rate = 0;                 ///< tokens added per `per`: 1..token_bucket::max_tokens
    duration per = std::chrono::seconds(1); ///< > 0 and at most token_bucket::max_period
    std::uint64_t burst = 0;                ///< capacity, 1..max_tokens; 0: the same as `rate`
    std::optional<std::uint64_t> initial{}; ///< tokens held at creation (≤ burst); unset: full
};

/// A token bucket whose arithmetic is exact: the level is whole tokens plus a fraction counted
/// in units of 1/(per in nanoseconds × 1000) of a token, so `d` nanoseconds add exactly
/// `d × rate × rate_permille` units. Nothing is rounded, so no error accumulates however the
/// time is cut up: 86 400 one-second steps of 10 000/day add exactly 10 000 tokens, and a
/// bucket stepped every nanosecond holds what one stepped once holds. Only `time_until` rounds,
/// and it rounds up: the first instant at which the tokens are there.
///
/// The refill rate can be scaled down to `rate_permille`/1000 of the configured rate (the
/// adaptive limiter does this on "slow down" replies); the burst stays.
///
/// Every operation takes `now` (see clock.hpp); an earlier `now` than one already seen counts
/// as the one seen. Thread safety: a value type; not safe for concurrent use.
class token_bucket {
public:
    /// Largest rate and burst accepted: about 10^12 tokens.
    static constexpr std::uint64_t max_tokens = 1'000'000'000'000;
    /// Longest period accepted, 180 days: the fraction of a token, in units of
    /// 1/(per × 1000), must fit 64 bits.
    static constexpr duration max_period = std::chrono::hours(24 * 180);
    /// rate_permille of the configured rate.
    static constexpr unsigned full_rate = 1000;

    /// A bucket as `options` say, starting at `now`. Fails with error::invalid_limit when a
    /// value is out of range; `diag.field` names it ("rate", "per", "burst", "initial").
    MAILROOM_API static result<token_bucket> create(const bucket_options& options, time_point now,
                                                    diagnostics& diag);
    /// As above, without diagnostics.
    MAILROOM_API static result<token_bucket> create(const bucket_options& options, time_point now);

    /// Whole tokens held at `now`.
    MAILROOM_API std::uint64_t available(time_point now) const noexcept;

    /// Takes `n` tokens if `n` are held at `now`; otherwise takes nothing and returns false.
    /// `n` = 0 always succeeds; `n` > burst() never does.
    MAILROOM_API bool try_take(std::uint64_t n, time_point now) noexcept;

    /// How long after `now` the bucket will hold `n` tokens at the current rate if nothing is
    /// taken meanwhile: zero if it holds them now, duration::max() if `n` > burst() (never).
    /// Rounded up to the nanosecond, so `try_take(n, now + time_until(n, now))` succeeds.
    MAILROOM_API duration time_until(std::uint64_t n, time_point now) const noexcept;

    /// How long after `now` this bucket takes to supply `n` tokens in all, what it holds plus
    /// what it refills at the configured rate, ignoring the cap: a lower bound on when `n` more
    /// tokens can have been taken from it, however the rate is scaled. duration::max() when
    /// that doesn't fit a duration.
    MAILROOM_API duration time_to_supply(std::uint64_t n, time_point now) const noexcept;

    /// Gives back `n` tokens taken for an acquisition that was cancelled before use; never
    /// above burst(). (Adding them now or at the last update gives the same level: the cap
    /// and the refill commute.)
    MAILROOM_API void refund(std::uint64_t n) noexcept;

    /// Empties the bucket at `now` (a server said the quota it models is used up).
    MAILROOM_API void drain(time_point now) noexcept;

    /// Brings the refill up to `now`. The other operations do this themselves; it changes
    /// nothing observable (that is the point of exact arithmetic).
    MAILROOM_API void advance(time_point now) noexcept;

    /// Refills from `now` on at `permille`/1000 of the configured rate (clamped to 1..1000);
    /// the time before `now` keeps the rate it had.
    MAILROOM_API void set_rate_permille(unsigned permille, time_point now) noexcept;

    std::uint64_t rate() const noexcept { return rate_; }         ///< configured tokens per per()
    duration per() const noexcept { return per_; }                ///< the configured period
    std::uint64_t burst() const noexcept { return burst_; }       ///< capacity
    unsigned rate_permille() const noexcept { return permille_; } ///< the rate's scale, 1..1000

private:
    token_bucket() = default;

    struct level {
        std::uint64_t whole = 0;
        std::uint64_t frac = 0; ///< < unit_
    };
    level level_at(time_point now) const noexcept;
    /// When `n` tokens are there at `permille` of the configured rate.
    duration time_at_rate(std::uint64_t n, time_point now, unsigned permille) const noexcept;

    std::uint64_t rate_ = 0;
    std::uint64_t burst_ = 0;
    duration per_{};
    std::uint64_t unit_ = 0; ///< fraction units per token: per_ in nanoseconds × 1000
    unsigned permille_ = full_rate;
    level level_; ///< at last_; level_.whole == burst_ implies level_.frac == 0
    time_point last_{};
};

} // namespace mailroom::limit
