// Private: letting an io_context's shutdown destroy the handlers mailroom keeps.
//
// Asio's own I/O objects keep their pending handlers in the io_context (reactor, timer queues),
// so destroying the io_context destroys them, and with them whatever they own. The client, the
// pool and the limiter keep queued handlers in their own state instead (queued sends, waiting
// checkouts and acquisitions). A handler that owns, through its coroutine frame, the object
// that stores it (a frame holding a pooled connection whose client queue holds the frame's
// handler) would then keep itself alive for ever once the io_context is gone. So each such
// object registers here, and the execution context's shutdown, which runs before its handlers
// are destroyed, tells it to drop its handlers unrun, as Asio does with its own.
#pragma once

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

#include <memory>
#include <mutex>
#include <vector>

namespace mailroom::detail {

namespace asio = boost::asio;

class shutdown_listener {
public:
    /// Drops every stored handler without running it; the object will see no more I/O.
    virtual void on_shutdown() noexcept = 0;

protected:
    ~shutdown_listener() = default;
};

class shutdown_registry final : public asio::execution_context::service {
public:
    using key_type = shutdown_registry;
    static inline asio::execution_context::id id;

    explicit shutdown_registry(asio::execution_context& ctx)
        : service(ctx)
    {
    }

    /// Registers `l` (held weakly). After shutdown, tells it at once.
    void add(std::weak_ptr<shutdown_listener> l);

    /// The registry of the context that runs `ex`.
    template <class Executor> static shutdown_registry& of(const Executor& ex)
    {
        return asio::use_service<shutdown_registry>(asio::query(ex, asio::execution::context));
    }

private:
    void shutdown() override;

    std::mutex mutex_;
    std::vector<std::weak_ptr<shutdown_listener>> listeners_;
    bool shut_down_ = false;
};

} // namespace mailroom::detail
