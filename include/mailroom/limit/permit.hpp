// mailroom::limit::permit: a granted rate-limiter acquisition, released when dropped.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/limit/rate_limiter.hpp>

#include <memory>

namespace mailroom::limit {

namespace detail {
struct limiter_impl;
}

/// What limiter::async_acquire grants: its tokens are taken and it counts as in flight. Destroy
/// it (or call release()) when the send is done, whatever its outcome: the concurrency slot is
/// freed and the tokens stay spent. cancel() instead gives the tokens back, for a send that
/// never reached the server (nothing was sent, so nothing should count).
///
/// Move-only. An empty permit (default-constructed, moved from, released) holds nothing.
/// Thread safety: a permit may be released from any thread; one permit, one thread at a time.
class MAILROOM_API permit {
public:
    permit() noexcept = default;
    permit(permit&& other) noexcept;
    permit& operator=(permit&& other) noexcept;
    ~permit();

    /// The send is done: frees the concurrency slot; the tokens stay spent.
    void release() noexcept;
    /// The send never happened: gives the tokens back and frees the slot.
    void cancel() noexcept;

    explicit operator bool() const noexcept { return impl_ != nullptr; }
    limit::ticket ticket() const noexcept { return ticket_; }

    permit(std::shared_ptr<detail::limiter_impl> i, limit::ticket t) noexcept
        : impl_(std::move(i))
        , ticket_(t)
    {
    }

private:
    std::shared_ptr<detail::limiter_impl> impl_;
    limit::ticket ticket_{};
};

} // namespace mailroom::limit
