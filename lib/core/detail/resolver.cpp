// Name resolution on c-ares, driven by the caller's executor, and the RFC 8305 connect race.
#include "detail/resolver.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <ares.h>

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

namespace mailroom::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

bool ends_with_nocase(std::string_view s, std::string_view suffix)
{
    if (s.size() < suffix.size())
        return false;
    s = s.substr(s.size() - suffix.size());
    return std::equal(s.begin(), s.end(), suffix.begin(), [](char a, char b) {
        return (a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) == b;
    });
}

} // namespace

std::optional<std::vector<asio::ip::address>> addresses_without_dns(std::string_view host)
{
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    error_code ec;
    const auto a = asio::ip::make_address(std::string(host), ec);
    if (!ec)
        return std::vector<asio::ip::address>{a};
    if (!host.empty() && host.back() == '.')
        host.remove_suffix(1);
    // RFC 6761 §6.3: localhost names are loopback, and must not be sent to DNS.
    if (host.size() == 9 ? ends_with_nocase(host, "localhost")
                         : ends_with_nocase(host, ".localhost"))
        return std::vector<asio::ip::address>{asio::ip::address_v6::loopback(),
                                              asio::ip::address_v4::loopback()};
    return std::nullopt;
}

std::vector<asio::ip::address> interleave_families(const std::vector<asio::ip::address>& in)
{
    if (in.empty())
        return {};
    const bool first_v6 = in.front().is_v6();
    std::vector<asio::ip::address> same, other, out;
    for (const auto& a : in)
        (a.is_v6() == first_v6 ? same : other).push_back(a);
    for (std::size_t i = 0; i < same.size() || i < other.size(); ++i) {
        if (i < same.size())
            out.push_back(same[i]);
        if (i < other.size())
            out.push_back(other[i]);
    }
    return out;
}

error_code resolve_error(int status) noexcept
{
    switch (status) {
    case ARES_SUCCESS: return {};
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME: return asio::error::host_not_found;
    // The name servers failed, refused or didn't answer: another try may work.
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
    case ARES_EBADRESP: return asio::error::host_not_found_try_again;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return asio::error::operation_aborted;
    case ARES_ENOMEM: return make_error_code(boost::system::errc::not_enough_memory);
    default: return asio::error::host_not_found;
    }
}

std::optional<std::size_t> attempt_schedule::next(bool delay_elapsed) noexcept
{
    if (started_ == total_)
        return std::nullopt;
    // RFC 8305 §5: the first at once; the next after the Connection Attempt Delay, or as soon
    // as the attempts so far have all failed.
    if (started_ == 0 || delay_elapsed || failed_ == started_)
        return started_++;
    return std::nullopt;
}

// ---- c-ares, on an executor -----------------------------------------------------------------

namespace {

// One lookup with its own channel: c-ares's sockets watched with Asio descriptors (which never
// close them: c-ares does), its retransmission timer with a steady_timer. Everything runs on
// the executor; the result is handed to `done` once. stop() ends it at once, sockets closed.
class ares_lookup final : public std::enable_shared_from_this<ares_lookup> {
public:
    using done_fn = std::function<void(error_code, std::vector<asio::ip::address>)>;

    explicit ares_lookup(asio::any_io_executor ex)
        : ex_(std::move(ex))
        , timer_(ex_)
    {
    }
    ~ares_lookup()
    {
        finished_ = true; // c-ares's callbacks during ares_destroy must not post anything
        done_ = nullptr;
        destroy();
    }

    // Starts the lookup; `done` runs from the executor, never inline.
    void start(const std::string& host, const std::string& servers, done_fn done)
    {
        done_ = std::move(done);
        static std::once_flag once;
        std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
        ares_options o{};
        o.sock_state_cb = &ares_lookup::on_sock_state;
        o.sock_state_cb_data = this;
        // /etc/hosts, then DNS (the order of nsswitch's usual "files dns").
        char lookups[] = "fb";
        o.lookups = lookups;
        int st = ares_init_options(&channel_, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS);
        if (st != ARES_SUCCESS) {
            channel_ = nullptr;
            return finish(st, nullptr);
        }
        if (!servers.empty()) {
            st = ares_set_servers_ports_csv(channel_, servers.c_str());
            if (st != ARES_SUCCESS)
                return finish(st, nullptr);
        }
        ares_addrinfo_hints hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &ares_lookup::on_result, this);
        schedule_timer();
    }

    // Ends the lookup without a result: no callback runs.
    void stop() noexcept
    {
        done_ = nullptr;
        finished_ = true;
        destroy();
    }

private:
    struct watch {
        std::unique_ptr<asio::posix::stream_descriptor> d;
        std::uint64_t id = 0; // told apart from a later socket with the same number
        bool want_read = false, want_write = false;
        bool reading = false, writing = false;
    };

    static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable)
    {
        auto* self = static_cast<ares_lookup*>(data);
        if (!readable && !writable) {
            // c-ares is about to close it: let go of the descriptor first (pending waits end
            // with operation_aborted), never closing it ourselves.
            auto it = self->watches_.find(fd);
            if (it != self->watches_.end()) {
                it->second.d->release();
                self->watches_.erase(it);
            }
            return;
        }
        watch& w = self->watches_[fd];
        if (!w.d) {
            w.id = ++self->next_id_;
            w.d = std::make_unique<asio::posix::stream_descriptor>(self->ex_);
            error_code ec;
            w.d->assign(fd, ec);
            if (ec) {
                self->watches_.erase(fd);
                return;
            }
        }
        w.want_read = readable != 0;
        w.want_write = writable != 0;
        self->arm(fd);
    }

    // Asio's waits are not speculative: readiness that arrives while no wait is queued is
    // seen at the next edge. c-ares reads each socket until EAGAIN and this wait is queued
    // from the same handler, so on one thread nothing is missed; should another thread's
    // epoll_wait take an edge in between, c-ares's own timer (schedule_timer) retries.
    void arm(ares_socket_t fd)
    {
        auto it = watches_.find(fd);
        if (it == watches_.end())
            return;
        watch& w = it->second;
        if (w.want_read && !w.reading) {
            w.reading = true;
            w.d->async_wait(asio::posix::stream_descriptor::wait_read,
                            [self = shared_from_this(), fd, id = w.id](error_code ec) {
                                self->on_ready(fd, id, ec, true);
                            });
        }
        if (w.want_write && !w.writing) {
            w.writing = true;
            w.d->async_wait(asio::posix::stream_descriptor::wait_write,
                            [self = shared_from_this(), fd, id = w.id](error_code ec) {
                                self->on_ready(fd, id, ec, false);
                            });
        }
    }

    void on_ready(ares_socket_t fd, std::uint64_t id, error_code ec, bool read)
    {
        auto it = watches_.find(fd);
        // Released (the socket closed, or another socket now has the number): nothing to do.
        if (it == watches_.end() || it->second.id != id)
            return;
        (read ? it->second.reading : it->second.writing) = false;
        if (ec || !channel_)
            return;
        ares_process_fd(channel_, read ? fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : fd);
        if (!channel_)
            return;
        arm(fd);
        schedule_timer();
    }

    // c-ares's own retransmission and per-server timeouts.
    void schedule_timer()
    {
        if (!channel_ || finished_)
            return;
        timeval tv{};
        if (!ares_timeout(channel_, nullptr, &tv)) {
            timer_.cancel();
            return;
        }
        timer_.expires_after(std::chrono::seconds(tv.tv_sec) +
                             std::chrono::microseconds(tv.tv_usec));
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (ec || !self->channel_)
                return;
            ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            self->schedule_timer();
        });
    }

    static void on_result(void* arg, int status, int, ares_addrinfo* res)
    {
        static_cast<ares_lookup*>(arg)->finish(status, res);
    }

    void finish(int status, ares_addrinfo* res)
    {
        std::vector<asio::ip::address> out;
        if (res) {
            for (auto* n = res->nodes; n; n = n->ai_next) {
                if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(sockaddr_in)) {
                    const auto* sa = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
                    asio::ip::address_v4::bytes_type b;
                    std::memcpy(b.data(), &sa->sin_addr, 4);
                    out.emplace_back(asio::ip::address_v4(b));
                } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(sockaddr_in6)) {
                    const auto* sa = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
                    asio::ip::address_v6::bytes_type b;
                    std::memcpy(b.data(), &sa->sin6_addr, 16);
                    out.emplace_back(asio::ip::address_v6(b, sa->sin6_scope_id));
                }
            }
            ares_freeaddrinfo(res);
        }
        if (finished_)
            return;
        finished_ = true;
        error_code ec = resolve_error(status);
        if (!ec && out.empty())
            ec = asio::error::host_not_found;
        // Posted: the channel can't be destroyed from inside its own callback.
        asio::post(ex_, [self = shared_from_this(), ec, out = std::move(out)]() mutable {
            self->destroy();
            if (auto d = std::move(self->done_)) {
                self->done_ = nullptr;
                d(ec, std::move(out));
            }
        });
    }

    void destroy() noexcept
    {
        if (channel_) {
            ares_channel c = channel_;
            channel_ = nullptr;
            ares_destroy(c); // closes its sockets, through on_sock_state
        }
        for (auto& [fd, w] : watches_)
            w.d->release();
        watches_.clear();
        timer_.cancel();
    }

    asio::any_io_executor ex_;
    asio::steady_timer timer_;
    ares_channel channel_ = nullptr;
    std::map<ares_socket_t, watch> watches_;
    done_fn done_;
    std::uint64_t next_id_ = 0;
    bool finished_ = false;
};

} // namespace

// ---- resolve, then race the connects --------------------------------------------------------

struct connect_stopper::state {
    explicit state(asio::any_io_executor ex)
        : wake(ex)
        , deadline(ex)
    {
    }
    // The coroutine waits on `wake`; every event cancels it.
    asio::steady_timer wake;
    asio::steady_timer deadline;
    std::shared_ptr<ares_lookup> lookup;
    std::vector<std::unique_ptr<tcp::socket>> sockets;
    bool stopped = false, timed_out = false;
    // The lookup's result.
    bool resolved = false;
    error_code resolve_ec;
    std::vector<asio::ip::address> addresses;
    // The attempts' results, in order of arrival.
    std::vector<std::pair<std::size_t, error_code>> results;

    void close_all() noexcept
    {
        if (lookup) {
            lookup->stop();
            lookup.reset();
        }
        for (auto& s : sockets) {
            error_code ignored;
            if (s && s->is_open())
                s->close(ignored);
        }
        deadline.cancel();
    }
    void stop() noexcept
    {
        stopped = true;
        close_all();
        wake.cancel();
    }
};

void connect_stopper::stop() noexcept
{
    if (state_)
        state_->stop();
}

std::shared_ptr<connect_stopper> make_connect_stopper(asio::any_io_executor ex)
{
    auto s = std::make_shared<connect_stopper>();
    s->state_ = std::make_shared<connect_stopper::state>(std::move(ex));
    return s;
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

} // namespace

namespace {

enum class woke { event, delay, stopped, timed_out, cancelled };

// Waits for the next event (a lookup's or an attempt's result, which cancel `wake`), or until
// `until`. Coroutine parameters by value (GCC 12).
asio::awaitable<woke> wait_event(std::shared_ptr<connect_stopper::state> st,
                                 std::optional<std::chrono::steady_clock::time_point> until)
{
    if (st->stopped)
        co_return woke::stopped;
    if (st->timed_out)
        co_return woke::timed_out;
    st->wake.expires_at(until ? *until : std::chrono::steady_clock::time_point::max());
    auto [ec] = co_await st->wake.async_wait(use_tuple);
    const auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none)
        co_return woke::cancelled;
    if (st->stopped)
        co_return woke::stopped;
    if (st->timed_out)
        co_return woke::timed_out;
    co_return ec ? woke::event : woke::delay;
}

error_code error_for(woke w)
{
    return w == woke::timed_out ? make_error_code(error::connect_timeout)
                                : error_code(asio::error::operation_aborted);
}

} // namespace

asio::awaitable<connect_outcome> resolve_and_connect(asio::any_io_executor ex, std::string host,
                                                     std::uint16_t port, std::string dns_servers,
                                                     std::chrono::steady_clock::duration limit,
                                                     std::shared_ptr<connect_stopper> stopper)
{
    const std::shared_ptr<connect_stopper::state> st = stopper->state_;
    connect_outcome out;
    // Whatever happens, nothing is left open or armed.
    struct cleanup {
        std::shared_ptr<connect_stopper::state> st;
        ~cleanup() { st->close_all(); }
    } guard{st};
    if (st->stopped) {
        out.ec = asio::error::operation_aborted;
        co_return out;
    }

    // One deadline for the lookup and every attempt (as Beast's tcp_stream::expires_after:
    // expiry closes what is in flight).
    st->deadline.expires_after(limit);
    st->deadline.async_wait([st](error_code ec) {
        if (ec)
            return;
        st->timed_out = true;
        st->close_all();
        st->wake.cancel();
    });

    if (auto known = addresses_without_dns(host)) {
        out.addresses = std::move(*known);
    } else {
        out.resolving = true;
        st->lookup = std::make_shared<ares_lookup>(ex);
        st->lookup->start(host, dns_servers, [st](error_code ec, std::vector<asio::ip::address> a) {
            st->resolved = true;
            st->resolve_ec = ec;
            st->addresses = std::move(a);
            st->lookup.reset();
            st->wake.cancel();
        });
        while (!st->resolved) {
            const woke w = co_await wait_event(st, std::nullopt);
            if (w != woke::event && w != woke::delay) {
                out.ec = error_for(w);
                co_return out;
            }
        }
        if (st->resolve_ec) {
            out.ec = st->resolve_ec;
            co_return out;
        }
        out.addresses = interleave_families(st->addresses);
        out.resolving = false;
    }

    // RFC 8305 §5: the attempts, staggered; the first to connect wins.
    const std::size_t n = out.addresses.size();
    st->sockets.reserve(n);
    attempt_schedule plan(n);
    std::optional<std::size_t> winner;
    std::size_t seen = 0;
    error_code last_ec = asio::error::host_not_found;
    bool delay_elapsed = false;
    auto next_start = std::chrono::steady_clock::now();
    for (;;) {
        for (; seen < st->results.size(); ++seen) {
            const auto [i, e] = st->results[seen];
            if (!e && !winner) {
                winner = i;
            } else if (e) {
                last_ec = e;
                plan.failed();
            }
        }
        if (winner)
            break;
        // A failure starts the next attempt at once, as does the end of the delay.
        while (auto i = plan.next(delay_elapsed)) {
            delay_elapsed = false;
            const tcp::endpoint ep(out.addresses[*i], port);
            st->sockets.push_back(std::make_unique<tcp::socket>(ex));
            tcp::socket& s = *st->sockets.back();
            error_code ec;
            s.open(ep.protocol(), ec);
            if (ec) {
                // This family can't be used here (no IPv6): a failed attempt.
                last_ec = ec;
                plan.failed();
                continue;
            }
            s.async_connect(ep, [st, i = *i](error_code e) {
                st->results.emplace_back(i, e);
                st->wake.cancel();
            });
            next_start = std::chrono::steady_clock::now() + attempt_schedule::attempt_delay;
        }
        if (plan.exhausted()) {
            out.ec = last_ec;
            co_return out;
        }
        const woke w =
            co_await wait_event(st, plan.more() ? std::optional(next_start) : std::nullopt);
        if (w != woke::event && w != woke::delay) {
            out.ec = error_for(w);
            co_return out;
        }
        delay_elapsed = w == woke::delay;
    }
    // The socket's index in `sockets` is the address's: one socket per started attempt.
    out.socket.emplace(std::move(*st->sockets[*winner]));
    st->sockets[*winner].reset();
    co_return out;
}

} // namespace mailroom::detail
