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
    /// Takes over `other`'s acquisition; `other` is left empty.
    permit(permit&& other) noexcept;
    /// Releases what this permit holds (as release()), then takes over `other`'s.
    permit& operator=(permit&& other) noexcept;
    /// Releases what it holds (as release()).
    ~permit();

    /// The send is done: frees the concurrency slot; the tokens stay spent.
    void release() noexcept;
    /// The send never happened: gives the tokens back and frees the slot.
    void cancel() noexcept;

    /// True while it holds a granted acquisition.
    explicit operator bool() const noexcept { return impl_ != nullptr; }
    /// The acquisition's ticket; the 0 ticket when empty.
    limit::ticket ticket() const noexcept { return ticket_; }

    /// For the library itself (limiter): a permit for a granted ticket.
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
