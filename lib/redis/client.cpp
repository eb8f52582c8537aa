// The Redis client's I/O driver, on one strand: a coroutine per connection that resolves,
// connects (the shared resolver in core/detail: c-ares, Happy Eyeballs), runs the TLS handshake,
// sends AUTH and SELECT (pipelined together, answered before any request goes out, so no request
// ever runs as the wrong user or in the wrong database) and then reads replies; a writer that sends
// requests as they come; one timer for the oldest request's deadline and one for the connect.
// Replies are matched to requests first in, first out (RESP2 has no request ids), which is
// why a missed deadline closes the connection: a late reply would answer the wrong request.
// The protocol is the codec's (codec.hpp, hiredis).

#include <mailroom/redis/client.hpp>

#include "codec.hpp"
#include "detail/backoff.hpp"
#include "detail/completion.hpp"
#include "detail/resolver.hpp" // name resolution and the TCP connect in one deadline
#include "detail/shutdown.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <random>

namespace mailroom::redis {

using asio::awaitable;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using exec_handler = asio::any_completion_handler<void(error_code, reply)>;
using mailroom::detail::post_completion;

namespace detail {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

long long millis(duration d)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

} // namespace

// One connection's streams. Shared by the coroutines using it, so it outlives their last
// operation however the connection ends (an ssl::stream must not die under an operation).
struct connection {
    explicit connection(tcp::socket s)
        : sock(std::move(s))
    {
    }
    tcp::socket sock;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;

    void close() noexcept
    {
        error_code ignored;
        sock.shutdown(tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
};

// A request from submission to completion. Moved only by construction (never assigned: see
// core/detail/completion.hpp on any_completion_handler in Asio 1.26).
struct request {
    exec_handler handler;
    steady::time_point deadline;
    std::string bytes;    // the command, until it is handed to the writer
    bool written = false; // handed to the writer: its reply will come on this connection
};

struct client_impl final : std::enable_shared_from_this<client_impl>,
                           mailroom::detail::shutdown_listener {
    client_impl(asio::any_io_executor e, options o)
        : ex(std::move(e))
        , strand(asio::make_strand(ex))
        , opts(std::move(o))
        , prefix("redis[" + endpoint_name(opts) + "] ")
        , deadline_timer(strand)
        , connect_timer(strand)
        , rng(std::random_device{}())
    {
    }

    asio::any_io_executor ex;     // the client's: handlers complete here by default
    asio::any_io_executor strand; // everything below the stats runs on it
    const options opts;
    const std::string prefix;
    std::atomic<bool> closed{false}; // close() was called (read by any thread)

    mutable std::mutex stats_mutex; // snapshot() reads from any thread
    client_snapshot stats;

    state st = state::idle;
    std::uint64_t gen = 0; // of the current connection (attempt); stale coroutines stop
    std::deque<request> queue;
    std::string out; // bytes for the writer
    bool writing = false;
    std::shared_ptr<connection> conn;
    std::shared_ptr<mailroom::detail::connect_stopper> stopper;
    std::unique_ptr<asio::ssl::context> ssl_ctx;
    decoder dec;
    asio::steady_timer deadline_timer;
    std::optional<steady::time_point> armed; // the deadline the timer waits for
    std::uint64_t deadline_gen = 0;
    asio::steady_timer connect_timer;
    steady::time_point connect_started{};
    unsigned failures = 0; // connects failed in a row
    steady::time_point retry_at{};
    std::mt19937_64 rng;

    // ---- small helpers --------------------------------------------------------------------

    void log(log_level l, std::string_view what) const
    {
        if (opts.log.enabled(l))
            opts.log(l, prefix + std::string(what));
    }

    template <class F> void with_stats(F f)
    {
        std::lock_guard lock(stats_mutex);
        f(stats);
    }

    void set_state(state s)
    {
        st = s;
        with_stats([&](client_snapshot& x) {
            if (x.state != state::closed)
                x.state = s;
        });
    }

    void sync_pending()
    {
        with_stats([&](client_snapshot& x) { x.pending = queue.size(); });
    }

    // Posted, so a handler never runs inside the call that completes it; it runs on its own
    // associated executor, the client's by default.
    void complete(exec_handler h, error_code ec, reply r = {})
    {
        with_stats([&](client_snapshot& x) {
            if (ec)
                ++x.failed;
            if (ec == error::redis_timeout)
                ++x.timeouts;
        });
        post_completion(ex, std::move(h), ec, std::move(r));
    }

    void fail_all(error_code ec)
    {
        std::deque<request> q;
        q.swap(queue);
        sync_pending();
        for (auto& r : q)
            complete(std::move(r.handler), ec);
        arm_deadline();
    }

    // The io_context is shutting down: pending requests' handlers are dropped unrun, as Asio
    // drops its own (see detail/shutdown.hpp).
    void on_shutdown() noexcept override
    {
        closed = true;
        auto q = std::move(queue);
        queue.clear();
        st = state::closed;
    }

    // ---- requests ---------------------------------------------------------------------------

    void submit(request r)
    {
        if (st == state::closed) {
            complete(std::move(r.handler), asio::error::operation_aborted);
            return;
        }
        if (st == state::reconnecting) {
            if (steady::now() < retry_at) {
                complete(std::move(r.handler), error::redis_unavailable);
                return;
            }
            start_connect();
        } else if (st == state::idle) {
            start_connect();
        }
        if (st == state::connected) {
            out += r.bytes;
            r.bytes.clear();
            r.written = true;
        }
        queue.push_back(std::move(r));
        sync_pending();
        start_write();
        arm_deadline();
    }

    // A reply: the oldest written request's. False if there is none (the server is out of
    // step with us).
    bool deliver(reply r)
    {
        if (queue.empty() || !queue.front().written)
            return false;
        exec_handler h(std::move(queue.front().handler));
        queue.pop_front();
        sync_pending();
        with_stats([](client_snapshot& x) { ++x.replies; });
        const error_code ec = judge_reply(r);
        if (ec)
            log(log_level::warning, "refused: " + sanitize(r.str, opts.password));
        complete(std::move(h), ec, std::move(r));
        arm_deadline();
        return true;
    }

    // ---- deadlines -------------------------------------------------------------------------

    // Requests are answered in order and all have the same timeout, so the oldest has the
    // earliest deadline: one timer, armed for it.
    void arm_deadline()
    {
        if (queue.empty() || st == state::closed) {
            if (armed) {
                armed.reset();
                ++deadline_gen;
                deadline_timer.cancel();
            }
            return;
        }
        const auto d = queue.front().deadline;
        if (armed && *armed == d)
            return;
        armed = d;
        const auto dg = ++deadline_gen;
        deadline_timer.expires_at(d);
        deadline_timer.async_wait([weak = weak_from_this(), dg](error_code) {
            if (auto self = weak.lock())
                self->on_deadline(dg);
        });
    }

    void on_deadline(std::uint64_t dg)
    {
        if (dg != deadline_gen)
            return; // re-armed or cancelled since
        armed.reset();
        const auto now = steady::now();
        if (!queue.empty() && queue.front().deadline <= now) {
            if (queue.front().written) {
                timed_out();
                return;
            }
            // Still waiting for a connection: nothing of it is on the wire, so it fails alone.
            while (!queue.empty() && !queue.front().written && queue.front().deadline <= now) {
                exec_handler h(std::move(queue.front().handler));
                queue.pop_front();
                complete(std::move(h), error::redis_timeout);
            }
            sync_pending();
        }
        arm_deadline();
    }

    void timed_out()
    {
        log(log_level::warning, "no reply within " + std::to_string(millis(opts.request_timeout)) +
                                    " ms: closing the connection, " + std::to_string(queue.size()) +
                                    " request(s) fail");
        drop_connection();
        backoff(1);
        fail_all(error::redis_timeout);
    }

    // ---- the connection ----------------------------------------------------------------------

    // Ends the connection or the attempt under way; its coroutines stop at their next step.
    void drop_connection()
    {
        ++gen;
        if (stopper)
            stopper->stop();
        stopper.reset();
        if (conn)
            conn->close();
        conn.reset();
        out.clear();
        writing = false;
        connect_timer.cancel();
    }

    // The next connect may start after the failures-th backoff step (equal jitter).
    void backoff(unsigned f)
    {
        failures = f;
        const pool::backoff_options b{opts.reconnect_initial, opts.reconnect_max};
        const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        retry_at = steady::now() + pool::detail::backoff_delay(b, f, unit);
        set_state(state::reconnecting);
    }

    void start_connect()
    {
        drop_connection();
        dec.reset();
        set_state(state::connecting);
        connect_started = steady::now();
        const auto g = gen;
        connect_timer.expires_after(opts.connect_timeout);
        connect_timer.async_wait([weak = weak_from_this(), g](error_code ec) {
            auto self = weak.lock();
            if (!self || ec || g != self->gen || self->st != state::connecting)
                return;
            self->connect_failed(error::redis_timeout,
                                 "no connection within " +
                                     std::to_string(millis(self->opts.connect_timeout)) + " ms");
        });
        asio::co_spawn(strand, run(shared_from_this(), g), asio::detached);
    }

    void connect_failed(error_code ec, const std::string& why)
    {
        drop_connection();
        with_stats([](client_snapshot& x) { ++x.connect_failures; });
        backoff(failures + 1);
        log(ec == error::redis_auth_failed ? log_level::error : log_level::warning,
            "connect failed: " + why + "; next attempt in " +
                std::to_string(millis(retry_at - steady::now())) + " ms at the earliest");
        fail_all(ec);
    }

    void lost(const std::string& why)
    {
        const bool had_requests = !queue.empty();
        drop_connection();
        // A connection closed while idle (the server's `timeout`, a restart) is re-made by the
        // next request at once; one lost under requests waits out a backoff step.
        if (had_requests) {
            backoff(1);
        } else {
            failures = 0;
            retry_at = steady::now();
            set_state(state::reconnecting);
        }
        log(log_level::warning, "lost: " + why);
        fail_all(error::redis_unavailable);
    }

    void connected(bool tls)
    {
        connect_timer.cancel();
        failures = 0;
        set_state(state::connected);
        with_stats([](client_snapshot& x) { ++x.connects; });
        log(log_level::info, std::string("connected") + (tls ? " (TLS)" : "") + " in " +
                                 std::to_string(millis(steady::now() - connect_started)) + " ms");
        for (auto& r : queue) {
            out += r.bytes;
            r.bytes.clear();
            r.written = true;
        }
        start_write();
    }

    void close_now()
    {
        if (st == state::closed)
            return;
        const bool was_open = st == state::connected;
        drop_connection();
        set_state(state::closed);
        if (was_open)
            log(log_level::info, "closed");
        fail_all(asio::error::operation_aborted);
    }

    // ---- I/O --------------------------------------------------------------------------------

    void start_write()
    {
        if (writing || out.empty() || !conn || st != state::connected)
            return;
        writing = true;
        asio::co_spawn(strand, write_loop(shared_from_this(), conn, gen), asio::detached);
    }

    static awaitable<std::tuple<error_code, std::size_t>> write_to(std::shared_ptr<connection> cn,
                                                                   std::string_view data)
    {
        if (cn->tls)
            co_return co_await asio::async_write(*cn->tls, asio::buffer(data), use_tuple);
        co_return co_await asio::async_write(cn->sock, asio::buffer(data), use_tuple);
    }

    static awaitable<std::tuple<error_code, std::size_t>> read_from(std::shared_ptr<connection> cn,
                                                                    asio::mutable_buffer buf)
    {
        if (cn->tls)
            co_return co_await cn->tls->async_read_some(buf, use_tuple);
        co_return co_await cn->sock.async_read_some(buf, use_tuple);
    }

    // Writes whatever requests have queued, in order, until none is left. `keep_alive` is a
    // parameter, so it is in the coroutine frame from its creation.
    awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<client_impl> keep_alive,
                               std::shared_ptr<connection> cn, std::uint64_t g)
    {
        std::string buf;
        for (;;) {
            if (gen != g)
                co_return;
            if (out.empty()) {
                writing = false;
                co_return;
            }
            buf.clear();
            buf.swap(out);
            auto [ec, n] = co_await write_to(cn, buf);
            if (gen != g)
                co_return;
            if (ec) {
                lost("writing: " + ec.message());
                co_return;
            }
        }
    }

    error_code make_tls_context(std::string& why)
    {
        if (ssl_ctx)
            return {};
        auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        // TLS 1.2 at least (RFC 8996 retired 1.0 and 1.1).
        SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
        error_code ec;
        const tls_options& t = opts.tls_settings;
        if (t.ca_file.empty())
            ctx->set_default_verify_paths(ec);
        else
            ctx->load_verify_file(t.ca_file, ec);
        if (ec) {
            why = "TLS set-up: loading the trust anchors: " + ec.message();
            return error::redis_unavailable;
        }
        ctx->set_verify_mode(t.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
        ssl_ctx = std::move(ctx);
        return {};
    }

    // The TLS handshake on `cn`, inside the connect deadline (connect_timer).
    awaitable<error_code> handshake(std::shared_ptr<connection> cn, std::string& why)
    {
        if (auto ec = make_tls_context(why))
            co_return ec;
        const tls_options& t = opts.tls_settings;
        const std::string name = t.verify_name.empty() ? opts.host : t.verify_name;
        cn->tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(cn->sock, *ssl_ctx);
        SSL* native = cn->tls->native_handle();
        // SNI takes a host name, never an address literal (RFC 6066 §3).
        error_code addr_ec;
        asio::ip::make_address(name, addr_ec);
        if (addr_ec)
            SSL_set_tlsext_host_name(native, name.c_str());
        if (t.verify)
            cn->tls->set_verify_callback(asio::ssl::host_name_verification(name));
        auto [ec] = co_await cn->tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
        if (ec) {
            const long verify = SSL_get_verify_result(native);
            if (verify != X509_V_OK)
                why = "TLS handshake: the certificate of '" + name +
                      "' was rejected: " + X509_verify_cert_error_string(verify);
            else
                why = "TLS handshake: " + ec.message();
            co_return error::redis_unavailable;
        }
        co_return error_code{};
    }

    // Reads until the decoder has a reply (the prelude's).
    awaitable<error_code> read_reply(std::shared_ptr<connection> cn, std::uint64_t g, reply& r,
                                     std::string& why)
    {
        std::unique_ptr<char[]> buf;
        for (;;) {
            if (auto x = dec.next()) {
                r = std::move(*x);
                co_return error_code{};
            }
            if (dec.failed()) {
                why = "protocol error: " + sanitize(dec.error_text(), opts.password);
                co_return error::redis_unavailable;
            }
            if (!buf)
                buf = std::make_unique_for_overwrite<char[]>(4096);
            auto [ec, n] = co_await read_from(cn, asio::buffer(buf.get(), 4096));
            if (gen != g)
                co_return asio::error::operation_aborted;
            dec.feed(std::string_view(buf.get(), n));
            if (ec && n == 0) {
                why = "reading: " + ec.message();
                co_return error::redis_unavailable;
            }
        }
    }

    // One connection, from resolving to its end.
    awaitable<void> run([[maybe_unused]] std::shared_ptr<client_impl> keep_alive, std::uint64_t g)
    {
        // Resolve and connect, inside connect_timeout (the timer covers the rest too).
        stopper = mailroom::detail::make_connect_stopper(strand);
        mailroom::detail::connect_outcome c = co_await mailroom::detail::resolve_and_connect(
            strand, opts.host, opts.port, std::string(), opts.connect_timeout, stopper);
        if (gen != g)
            co_return;
        stopper.reset();
        if (c.ec) {
            if (c.ec == error::connect_timeout)
                connect_failed(error::redis_timeout,
                               "no connection within " +
                                   std::to_string(millis(opts.connect_timeout)) + " ms");
            else
                connect_failed(error::redis_unavailable,
                               std::string(c.resolving ? "resolving: " : "connecting: ") +
                                   c.ec.message());
            co_return;
        }
        auto cn = std::make_shared<connection>(std::move(*c.socket));
        conn = cn;
        error_code ignored;
        cn->sock.set_option(tcp::no_delay(true), ignored);

        std::string why;
        if (opts.tls) {
            const error_code ec = co_await handshake(cn, why);
            if (gen != g)
                co_return;
            if (ec) {
                connect_failed(ec, why);
                co_return;
            }
        }

        // AUTH and SELECT, pipelined together; requests wait for their replies.
        const auto cmds = prelude_commands(opts);
        if (!cmds.empty()) {
            std::string bytes;
            for (const auto& cmd : cmds)
                encode(cmd, bytes);
            auto [wec, n] = co_await write_to(cn, bytes);
            if (gen != g)
                co_return;
            if (wec) {
                connect_failed(error::redis_unavailable, "writing: " + wec.message());
                co_return;
            }
            for (const auto& cmd : cmds) {
                reply r;
                const error_code ec = co_await read_reply(cn, g, r, why);
                if (gen != g)
                    co_return;
                if (ec) {
                    connect_failed(ec, why);
                    co_return;
                }
                const bool is_auth = cmd[0] == "AUTH";
                if (const error_code jec = judge_prelude(r, is_auth)) {
                    // The server's text, never the password (it isn't in it, but a server's
                    // text is untrusted input).
                    connect_failed(jec, std::string(is_auth ? "AUTH" : "SELECT") +
                                            " refused: " + sanitize(r.str, opts.password));
                    co_return;
                }
            }
        }
        connected(opts.tls);

        // Replies, matched to requests in order.
        auto buf = std::make_unique_for_overwrite<char[]>(read_size);
        for (;;) {
            while (auto r = dec.next()) {
                if (!deliver(std::move(*r))) {
                    lost("a reply that answers no request");
                    co_return;
                }
            }
            if (dec.failed()) {
                lost("protocol error: " + sanitize(dec.error_text(), opts.password));
                co_return;
            }
            auto [ec, n] = co_await read_from(cn, asio::buffer(buf.get(), read_size));
            if (gen != g)
                co_return;
            dec.feed(std::string_view(buf.get(), n));
            if (ec && n == 0) {
                lost(ec == asio::error::eof ? std::string("closed by the server")
                                            : "reading: " + ec.message());
                co_return;
            }
        }
    }

    static constexpr std::size_t read_size = 16 * 1024;
};

} // namespace detail

// ---- client -------------------------------------------------------------------------------

client::client(executor_type ex, options o)
{
    diagnostics diag;
    if (auto ec = detail::validate(o, diag))
        throw boost::system::system_error(ec, diag.to_string());
    impl_ = std::make_shared<detail::client_impl>(std::move(ex), std::move(o));
    mailroom::detail::shutdown_registry::of(impl_->ex).add(impl_);
}

client::~client()
{
    close();
}

void client::close() noexcept
{
    auto i = impl_;
    if (!i || i->closed.exchange(true))
        return;
    i->with_stats([](client_snapshot& x) { x.state = state::closed; });
    try {
        asio::post(i->strand, [i] { i->close_now(); });
    } catch (...) {
        // Out of memory: the requests complete when the io_context shuts down.
    }
}

client_snapshot client::snapshot() const
{
    std::lock_guard lock(impl_->stats_mutex);
    return impl_->stats;
}

const options& client::get_options() const noexcept
{
    return impl_->opts;
}

void client::initiate_exec(std::shared_ptr<detail::client_impl> i, std::vector<std::string> a,
                           asio::any_completion_handler<void(error_code, reply)> h)
{
    std::string bytes;
    const error_code ec = detail::encode(a, bytes);
    i->with_stats([](client_snapshot& x) { ++x.requests; });
    if (ec || i->closed) {
        i->complete(std::move(h), ec ? ec : make_error_code(asio::error::operation_aborted));
        return;
    }
    detail::request r{std::move(h), steady::now() + i->opts.request_timeout, std::move(bytes)};
    asio::post(i->strand, [i, r = std::move(r)]() mutable { i->submit(std::move(r)); });
}

} // namespace mailroom::redis
