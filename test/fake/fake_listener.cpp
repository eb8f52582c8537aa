#include "fake_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <mutex>

namespace mailroom::test {

using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct fake_listener::state {
    state(asio::io_context& io_, factory f, asio::ssl::context* tls_)
        : io(io_)
        , acceptor(asio::make_strand(io_), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , make(std::move(f))
        , tls(tls_)
    {
    }

    asio::io_context& io;
    tcp::acceptor acceptor;
    factory make; // called on the acceptor's strand only
    asio::ssl::context* tls;

    mutable std::mutex mutex; // guards what follows
    std::vector<std::shared_ptr<session>> sessions;
    std::size_t open = 0;
    std::size_t max_open = 0;

    static asio::awaitable<void> accept_loop(std::shared_ptr<state> self)
    {
        for (std::size_t k = 0;; ++k) {
            auto s =
                std::make_shared<session>(asio::make_strand(self->io), self->make(k), self->tls);
            auto [ec] = co_await self->acceptor.async_accept(s->socket(), use_tuple);
            if (ec)
                co_return; // the listener is gone
            // The sink answers a pipelined flight one reply at a time; with Nagle's algorithm
            // each would wait for the client's delayed ACK.
            boost::system::error_code ignored;
            s->socket().set_option(tcp::no_delay(true), ignored);
            {
                std::lock_guard lock(self->mutex);
                self->sessions.push_back(s);
                self->max_open = std::max(self->max_open, ++self->open);
            }
            auto ex = s->socket().get_executor();
            asio::co_spawn(ex, serve(self, std::move(s)), asio::detached);
        }
    }

    static asio::awaitable<void> serve(std::shared_ptr<state> self, std::shared_ptr<session> s)
    {
        co_await s->run();
        s->close(); // also after a failed step: the client shouldn't wait for its timeouts
        std::lock_guard lock(self->mutex);
        --self->open;
    }

    template <class F> std::size_t count(F f) const
    {
        std::size_t n = 0;
        std::lock_guard lock(mutex);
        for (auto& s : sessions)
            s->inspect([&](const session_log& l) { n += f(l); });
        return n;
    }
};

fake_listener::fake_listener(asio::io_context& io, factory make)
    : fake_listener(io, std::move(make), nullptr)
{
}

fake_listener::fake_listener(asio::io_context& io, factory make, asio::ssl::context* tls)
    : state_(std::make_shared<state>(io, std::move(make), tls))
{
    asio::co_spawn(state_->acceptor.get_executor(), state::accept_loop(state_), asio::detached);
}

fake_listener::~fake_listener()
{
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    std::lock_guard lock(state_->mutex);
    for (auto& s : state_->sessions)
        s->close();
}

std::uint16_t fake_listener::port() const
{
    return state_->acceptor.local_endpoint().port();
}
std::size_t fake_listener::accepted() const
{
    std::lock_guard lock(state_->mutex);
    return state_->sessions.size();
}
std::size_t fake_listener::open() const
{
    std::lock_guard lock(state_->mutex);
    return state_->open;
}
std::size_t fake_listener::max_open() const
{
    std::lock_guard lock(state_->mutex);
    return state_->max_open;
}
std::vector<session_log> fake_listener::sessions() const
{
    std::vector<session_log> out;
    std::lock_guard lock(state_->mutex);
    for (auto& s : state_->sessions)
        out.push_back(s->log());
    return out;
}
std::size_t fake_listener::accepted_count(const std::string& id) const
{
    return state_->count([&](const session_log& l) {
        return static_cast<std::size_t>(std::count(l.accepted.begin(), l.accepted.end(), id));
    });
}
std::size_t fake_listener::data_count(const std::string& id) const
{
    return state_->count([&](const session_log& l) {
        return static_cast<std::size_t>(std::count(l.messages.begin(), l.messages.end(), id));
    });
}
std::size_t fake_listener::total_accepted() const
{
    return state_->count([](const session_log& l) { return l.accepted.size(); });
}
std::vector<std::string> fake_listener::mismatches() const
{
    std::vector<std::string> out;
    const auto logs = sessions();
    for (std::size_t k = 0; k < logs.size(); ++k)
        for (auto& m : logs[k].mismatches)
            out.push_back("#" + std::to_string(k) + ": " + m);
    return out;
}

} // namespace mailroom::test
