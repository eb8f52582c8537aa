#include "detail/shutdown.hpp"

#include <algorithm>

namespace mailroom::detail {

void shutdown_registry::add(std::weak_ptr<shutdown_listener> l)
{
    {
        std::lock_guard lock(mutex_);
        if (!shut_down_) {
            // Forget the ones gone, now and then, so the list stays as long as the live ones.
            if (listeners_.size() >= 64 && listeners_.size() == listeners_.capacity())
                std::erase_if(listeners_, [](const auto& w) { return w.expired(); });
            listeners_.push_back(std::move(l));
            return;
        }
    }
    if (auto s = l.lock())
        s->on_shutdown();
}

void shutdown_registry::shutdown()
{
    std::vector<std::weak_ptr<shutdown_listener>> all;
    {
        std::lock_guard lock(mutex_);
        shut_down_ = true;
        all.swap(listeners_);
    }
    // Outside the lock: dropping handlers may destroy other listeners, or register new ones.
    for (auto& w : all)
        if (auto s = w.lock())
            s->on_shutdown();
}

} // namespace mailroom::detail
