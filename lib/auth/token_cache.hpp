// Private: the token cache's decisions, without I/O or a clock of its own: when a get is
// answered from the cache, waits on a refresh in flight, starts one, or fails at once.
// token_source.cpp drives it; test/unit/auth steps it on a manual clock.
#pragma once

#include <mailroom/auth/token_source.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace mailroom::auth::detail {

/// One account's cached token and refresh state. Not thread-safe: the driver holds a lock.
class token_cache {
public:
    /// What a get should do.
    enum class verdict {
        use,             ///< answer with token() now
        use_and_refresh, ///< answer with token() now, and start a refresh in the background
        refresh,         ///< start a refresh and wait for it
        wait,            ///< a refresh is in flight: wait for it
        fail,            ///< answer with held_error() now (a refresh just failed)
    };

    explicit token_cache(const refresh_policy& p)
        : policy_(p)
    {
    }

    /// Decides for a get at `now`; a verdict that starts a refresh marks one in flight.
    verdict on_get(clock::time_point now);
    /// The cached token (after use / use_and_refresh).
    const std::string& token() const noexcept { return value_; }
    /// When the cached token expires.
    clock::time_point expires_at() const noexcept { return expires_at_; }
    /// Whether a token is cached and unexpired at `now`.
    bool usable(clock::time_point now) const noexcept;
    /// When a refresh should start for the cached token: expiry minus the margin, the margin
    /// capped at a fifth of the token's lifetime.
    clock::time_point refresh_at() const noexcept;

    /// Whether the next fetch should tell a callback to hand out a new token.
    bool force_next() const noexcept { return force_; }

    /// The refresh in flight got a token (expires_at: time_point::max() when unknown, then
    /// policy.default_lifetime is used).
    void on_success(clock::time_point now, std::string value, clock::time_point expires_at);
    /// The refresh in flight failed for good (its retries spent): gets fail with `ec` until
    /// the hold passes; a cached token that is still good stays in use.
    void on_failure(clock::time_point now, error_code ec, diagnostics diag);
    /// The error a `fail` verdict answers with.
    error_code held_error() const noexcept { return held_ec_; }
    /// Its diagnostics.
    const diagnostics& held_diag() const noexcept { return held_diag_; }

    /// A server refused `value`: drops it if it is the cached token. Returns whether it was.
    bool invalidate(std::string_view value);

    /// Whether a refresh is in flight.
    bool in_flight() const noexcept { return in_flight_; }

private:
    refresh_policy policy_;
    std::string value_;
    bool cached_ = false;
    clock::time_point obtained_{};
    clock::time_point expires_at_{};
    bool in_flight_ = false;
    bool force_ = false;
    error_code held_ec_{};
    diagnostics held_diag_{};
    clock::time_point hold_until_{};
};

} // namespace mailroom::auth::detail
