// The SMTP client's I/O driver: the queue of operations, and coroutines that run the sans-I/O
// session algos (connect_algo.hpp, send_algo.hpp) over Beast's tcp_stream (for per-phase
// deadlines) and Asio's OpenSSL stream. Every decision (what to send, what a reply means,
// when the connection can't be trusted) is made by the pure code beside this file.

#include <mailroom/auth/token_source.hpp>
#include <mailroom/smtp/client.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include "asio.hpp"
#include "command.hpp"
#include "connect_algo.hpp"
#include "detail/completion.hpp"
#include "detail/resolver.hpp"
#include "detail/shutdown.hpp"
#include "reply_parser.hpp"
#include "send_algo.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <deque>

namespace mailroom::smtp {

namespace beast = boost::beast;
using asio::awaitable;
using tcp = asio::ip::tcp;
using duration = timeouts::duration;

using mailroom::detail::post_completion;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::atomic<std::uint64_t> connection_counter{0};

} // namespace

struct client::impl final : std::enable_shared_from_this<impl>,
                            mailroom::detail::shutdown_listener {
    // One queued operation: a send, or NOOP / RSET / QUIT.
    struct op {
        enum class kind { send, noop, rset, quit } k;
        std::optional<mime::message> msg;
        send_options options;
        asio::any_completion_handler<void(error_code, delivery_report)> send_handler;
        asio::any_completion_handler<void(error_code)> simple_handler;
        delivery_report report;
        detail::send_algo* algo = nullptr; // while the send runs
        bool envelope_sent = false;        // written behind the previous message's final dot
        bool started = false;
        bool cancelled = false;
        bool done = false; // the handler has been called (or posted)
    };
    enum class state { closed, connecting, open };

    impl(asio::any_io_executor e, client_options o)
        : ex(std::move(e))
        , opts(std::move(o))
    {
        slog.log = &opts.log;
        next_envelope = [this](std::string& out) {
            return pipeline_next(out);
        };
    }

    asio::any_io_executor ex;
    client_options opts;
    std::unique_ptr<asio::ssl::context> ssl_ctx;
    // The TLS layer exists only once TLS starts: a plaintext connection never allocates
    // OpenSSL's buffers (about 40 KiB), and without TLS OpenSSL is never initialised.
    std::unique_ptr<beast::tcp_stream> tcp;
    std::unique_ptr<asio::ssl::stream<beast::tcp_stream&>> ssl;
    // While resolving and connecting: stops them (close(), destruction).
    std::shared_ptr<mailroom::detail::connect_stopper> stopper;
    detail::session_state session;
    detail::session_log slog;
    state st = state::closed;
    detail::reply_parser parser;
    // Bytes read and not yet parsed: rbuf[rpos, rend).
    // Not zero-filled: replies are small, so most of its pages are never touched.
    static constexpr std::size_t rbuf_size = 16 * 1024;
    std::unique_ptr<char[]> rbuf = std::make_unique_for_overwrite<char[]>(rbuf_size);
    std::size_t rpos = 0;
    std::size_t rend = 0;
    std::string wbuf;
    diagnostics diag;
    detail::next_envelope_fn next_envelope;
    std::deque<std::shared_ptr<op>> queue;
    bool pumping = false;

    beast::tcp_stream& tcp_layer() { return *tcp; }

    // The io_context is shutting down: queued operations' handlers are dropped unrun, as Asio
    // drops its own (see detail/shutdown.hpp).
    void on_shutdown() noexcept override
    {
        auto q = std::move(queue);
        queue.clear();
        st = state::closed;
    }

    void log(log_level l, std::string_view what) { slog(l, what); }

    error_code fail(std::string_view step, error_code ec, std::string detail = {})
    {
        return detail::record_failure(diag, slog, step, ec, std::move(detail));
    }

    // An I/O error as the caller should see it: Beast's expiry becomes the step's own
    // timeout, a peer that went away becomes connection_lost; cancellation stays as it is.
    static error_code map_io(error_code ec, error on_timeout)
    {
        if (ec == beast::error::timeout)
            return make_error_code(on_timeout);
        if (ec == asio::error::eof || ec == asio::error::connection_reset ||
            ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated ||
            ec == asio::error::connection_aborted)
            return make_error_code(error::connection_lost);
        return ec;
    }

    // The deadline of each phase, and the error it becomes (RFC 5321 §4.5.3.2).
    std::pair<duration, error> deadline(detail::phase p) const
    {
        const timeouts& t = opts.timeouts;
        using detail::phase;
        switch (p) {
        case phase::tls_handshake: return {t.tls_handshake, error::tls_handshake_timeout};
        case phase::greeting: return {t.greeting, error::greeting_timeout};
        case phase::command: break;
        case phase::mail: return {t.mail, error::mail_timeout};
        case phase::rcpt: return {t.rcpt, error::rcpt_timeout};
        case phase::data: return {t.data, error::data_timeout};
        case phase::data_block: return {t.data_block, error::data_block_timeout};
        case phase::data_end: return {t.data_end, error::data_end_timeout};
        }
        return {t.command, error::command_timeout};
    }

    // ---- I/O primitives -------------------------------------------------------------------

    awaitable<error_code> write(std::string_view data, duration limit, error on_timeout)
    {
        tcp_layer().expires_after(limit);
        error_code ec;
        if (session.tls)
            std::tie(ec, std::ignore) =
                co_await asio::async_write(*ssl, asio::buffer(data), use_tuple);
        else
            std::tie(ec, std::ignore) =
                co_await asio::async_write(tcp_layer(), asio::buffer(data), use_tuple);
        co_return map_io(ec, on_timeout);
    }

    // Reads one reply. The deadline covers the whole reply, however the server trickles it; it
    // is only armed when the socket must be read (pipelined replies are often all buffered).
    awaitable<error_code> read_reply(reply& out, duration limit, error on_timeout)
    {
        // RFC 3463 status codes are parsed where EHLO announced ENHANCEDSTATUSCODES.
        parser.set_enhanced_status_codes(session.caps.enhanced_status_codes);
        bool armed = false;
        for (;;) {
            if (rpos < rend) {
                error_code ec;
                rpos += parser.feed(std::string_view(rbuf.get() + rpos, rend - rpos), ec);
                if (ec)
                    co_return fail("reading a reply", ec, std::string(parser.error_detail()));
                if (parser.has_reply()) {
                    out = parser.take();
                    co_return error_code{};
                }
            }
            // The parser has taken every byte: read into a buffer allocated once, never
            // cleared or zero-filled per read.
            rpos = rend = 0;
            if (!armed) {
                tcp_layer().expires_after(limit);
                armed = true;
            }
            auto buf = asio::buffer(rbuf.get(), rbuf_size);
            error_code ec;
            std::size_t n = 0;
            if (session.tls)
                std::tie(ec, n) = co_await ssl->async_read_some(buf, use_tuple);
            else
                std::tie(ec, n) = co_await tcp_layer().async_read_some(buf, use_tuple);
            rend = n;
            if (ec && n == 0)
                co_return map_io(ec, on_timeout);
        }
    }

    // Runs a session algo to its end: every action it asks for, with its phase's deadline.
    template <class Algo> awaitable<detail::action> drive(Algo& a)
    {
        using kind = detail::action::kind;
        detail::io_result r;
        for (;;) {
            const detail::action x = a.resume(r);
            r = {};
            const auto [limit, on_timeout] = deadline(x.ph);
            switch (x.k) {
            case kind::write: r.ec = co_await write(x.bytes, limit, on_timeout); break;
            case kind::read:
                r.ec = co_await read_reply(*x.into, limit, on_timeout);
                r.more_buffered = rpos < rend || !parser.idle();
                break;
            case kind::handshake: r.ec = co_await handshake(); break;
            case kind::token: {
                // The source's own deadlines and retries bound the wait (refresh_policy).
                auto [ec, tok] = co_await opts.auth->tokens->async_get(use_tuple);
                r.ec = ec;
                r.token = std::move(tok.value);
                r.token_detail = tok.diag.to_string();
                break;
            }
            case kind::done: co_return x;
            }
        }
    }

    void close_socket() noexcept
    {
        if (stopper)
            stopper->stop(); // a connect in progress: its lookup and attempts end now
        if (tcp) {
            error_code ignored;
            tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
            tcp_layer().close();
        }
        st = state::closed;
        session.tls = false;
    }

    // ---- connect ------------------------------------------------------------------------

    // Once per client: loading the system's CA store parses every certificate in it (tens of
    // milliseconds), which a reconnect shouldn't pay again, and plaintext never needs.
    error_code make_tls_context()
    {
        if (ssl_ctx)
            return {};
        ssl_ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        SSL_CTX* ctx = ssl_ctx->native_handle();
        // TLS 1.2 at least (RFC 8996 retired 1.0 and 1.1).
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        error_code ec;
        const tls_options& t = opts.tls;
        if (t.ca_file.empty() && t.ca_dir.empty())
            ssl_ctx->set_default_verify_paths(ec);
        if (!ec && !t.ca_file.empty())
            ssl_ctx->load_verify_file(t.ca_file, ec);
        if (!ec && !t.ca_dir.empty())
            ssl_ctx->add_verify_path(t.ca_dir, ec);
        if (!ec && !t.cert_file.empty())
            ssl_ctx->use_certificate_chain_file(t.cert_file, ec);
        if (!ec && !t.key_file.empty())
            ssl_ctx->use_private_key_file(t.key_file, asio::ssl::context::pem, ec);
        if (ec) {
            ssl_ctx.reset();
            return fail("TLS set-up", make_error_code(error::tls_configuration_invalid),
                        "loading certificates: " + ec.message());
        }
        ssl_ctx->set_verify_mode(t.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
        return {};
    }

    // The TLS handshake, implicit or after STARTTLS; the reply parser starts afresh after it.
    awaitable<error_code> handshake()
    {
        const std::string& name = opts.tls.verify_name.empty() ? opts.host : opts.tls.verify_name;
        if (auto ec = make_tls_context())
            co_return ec;
        ssl = std::make_unique<asio::ssl::stream<beast::tcp_stream&>>(*tcp, *ssl_ctx);
        SSL* native = ssl->native_handle();
        // SNI takes a host name, never an address literal (RFC 6066 §3).
        error_code addr_ec;
        asio::ip::make_address(name, addr_ec);
        if (addr_ec)
            SSL_set_tlsext_host_name(native, name.c_str());
        if (opts.tls.verify)
            ssl->set_verify_callback(asio::ssl::host_name_verification(name));
        tcp_layer().expires_after(opts.timeouts.tls_handshake);
        auto [ec] = co_await ssl->async_handshake(asio::ssl::stream_base::client, use_tuple);
        if (ec) {
            if (ec == beast::error::timeout)
                co_return fail("TLS handshake", make_error_code(error::tls_handshake_timeout));
            const long verify = SSL_get_verify_result(native);
            if (verify != X509_V_OK)
                co_return fail("TLS handshake", make_error_code(error::certificate_rejected),
                               std::string("certificate of '") + name +
                                   "' rejected: " + X509_verify_cert_error_string(verify));
            if (ec == asio::error::operation_aborted)
                co_return ec;
            co_return fail("TLS handshake", make_error_code(error::tls_handshake_failed),
                           ec.message());
        }
        session.tls = true;
        parser.reset();
        rpos = rend = 0;
        co_return error_code{};
    }

    awaitable<error_code> connect_steps(bool token_retry = true)
    {
        if (opts.port == 0)
            opts.port = opts.tls.mode == tls_mode::implicit ? 465 : 587;
        slog.prefix = "smtp[" + opts.host + "#" + std::to_string(++connection_counter) + "]";
        parser = detail::reply_parser{};
        rpos = rend = 0;
        session = {};
        diag.clear();
        if (opts.tls.mode != tls_mode::none) {
            // Certificate files are read before connecting, so a wrong path fails at once.
            if (auto ec = make_tls_context())
                co_return ec;
        }
        ssl.reset();
        tcp = std::make_unique<beast::tcp_stream>(ex);

        // The name resolved (c-ares, never a blocked thread) and the addresses raced
        // (RFC 8305), all inside timeouts::connect; close() stops it.
        stopper = mailroom::detail::make_connect_stopper(ex);
        mailroom::detail::connect_outcome c = co_await mailroom::detail::resolve_and_connect(
            ex, opts.host, opts.port, opts.dns_servers, opts.timeouts.connect, stopper);
        stopper.reset();
        if (c.ec) {
            if (c.resolving)
                co_return fail("resolving " + opts.host, c.ec);
            co_return fail("connecting to " + opts.host + ":" + std::to_string(opts.port),
                           map_io(c.ec, error::connect_timeout));
        }
        if (slog.enabled(log_level::debug)) {
            std::string line = "resolved " + opts.host + ":";
            for (std::size_t k = 0; k < c.addresses.size(); ++k)
                line += (k ? ", " : " ") + c.addresses[k].to_string();
            log(log_level::debug, line);
        }
        tcp = std::make_unique<beast::tcp_stream>(std::move(*c.socket));
        error_code ignored;
        tcp_layer().socket().set_option(tcp::no_delay(true), ignored);
        const auto ep = tcp_layer().socket().remote_endpoint(ignored);
        log(log_level::debug,
            "connected to " + ep.address().to_string() + ":" + std::to_string(ep.port()));

        detail::connect_algo algo(opts, session, diag, slog, token_retry);
        const detail::action x = co_await drive(algo);
        if (x.ec && session.token_retry_needs_reconnect) {
            // The server refused the token and closed the connection before the retry with a
            // refreshed one: that retry goes on a new connection, once.
            log(log_level::info, "retrying AUTH with the refreshed token on a new connection");
            error_code ignored;
            tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
            tcp_layer().close();
            session.tls = false;
            co_return co_await connect_steps(false);
        }
        co_return x.ec;
    }

    // ---- the send queue ---------------------------------------------------------------------

    bool use_bdat() const { return opts.chunking && session.caps.chunking; }
    bool use_pipelining() const { return opts.pipelining && session.caps.pipelining; }

    // Puts the next queued send's envelope into `out`, to ride behind a final dot.
    bool pipeline_next(std::string& out)
    {
        if (!use_pipelining() || queue.size() < 2)
            return false;
        op& next = *queue[1];
        if (next.k != op::kind::send || next.envelope_sent || next.cancelled)
            return false;
        if (detail::format_envelope(*next.msg, next.options, session.caps, use_bdat(), out))
            return false;
        next.envelope_sent = true;
        return true;
    }

    void complete(const std::shared_ptr<op>& o, error_code ec)
    {
        if (o->done)
            return; // close() or a cancellation got there first
        o->done = true;
        o->algo = nullptr;
        if (!queue.empty() && queue.front() == o)
            queue.pop_front();
        else
            std::erase(queue, o);
        // Posted, so a handler never runs inside the call that completes it; it runs on its
        // own associated executor, the client's by default.
        if (o->k == op::kind::send)
            post_completion(ex, std::move(o->send_handler), ec, std::move(o->report));
        else
            post_completion(ex, std::move(o->simple_handler), ec);
    }

    // Fails every queued operation but `keep` (a send whose driver will end it).
    void fail_queue(error_code ec, const std::shared_ptr<op>& keep = nullptr)
    {
        const std::vector<std::shared_ptr<op>> ops(queue.begin(), queue.end());
        for (const auto& o : ops) {
            if (o == keep)
                continue;
            if (o->k == op::kind::send)
                o->report.diag = {"queued", ec.message()};
            complete(o, ec);
        }
    }

    // Closes a connection that can no longer be trusted; queued work fails, retryable.
    void broken(std::string_view why)
    {
        log(log_level::warning, "closing the connection: " + std::string(why));
        close_socket();
    }

    // `keep_alive` is a parameter, so it is in the coroutine frame from its creation: the
    // client may be destroyed before the pump first runs.
    awaitable<void> pump([[maybe_unused]] std::shared_ptr<impl> keep_alive)
    {
        while (!queue.empty() && st == state::open) {
            auto o = queue.front();
            o->started = true;
            if (o->k == op::kind::send)
                co_await run_send(o);
            else
                co_await run_simple(o);
        }
        pumping = false;
        // The connection broke: what is still queued never reached its final dot.
        if (!queue.empty())
            fail_queue(make_error_code(error::connection_lost));
    }

    awaitable<void> run_simple(std::shared_ptr<op> o)
    {
        std::string line;
        const char* name = "NOOP";
        switch (o->k) {
        case op::kind::noop: detail::format_noop(line); break;
        case op::kind::rset: detail::format_rset(line), name = "RSET"; break;
        default: detail::format_quit(line), name = "QUIT"; break;
        }
        reply r;
        slog.client_lines(line);
        error_code ec = co_await write(line, opts.timeouts.command, error::command_timeout);
        if (!ec) {
            ec = co_await read_reply(r, opts.timeouts.command, error::command_timeout);
            if (!ec)
                slog.server_reply(r);
        }
        if (o->k == op::kind::quit) {
            // A server that closes at once instead of answering QUIT has done what was asked.
            if (ec == error::connection_lost)
                ec = {};
            else if (!ec && r.code / 100 != 2)
                ec = fail(name, detail::unexpected_reply(r), r.to_string());
            close_socket();
        } else if (ec) {
            fail(name, ec);
            broken(ec.message());
        } else if (r.code / 100 != 2) {
            // RFC 5321 §4.2.1: judged by the first digit; a 3yz here is out of step.
            ec = fail(name, detail::unexpected_reply(r), r.to_string());
            if (r.code == 421)
                broken("421 from the server");
            else if (r.code / 100 == 3)
                broken("a reply out of step with the commands");
        }
        if (o->cancelled)
            ec = asio::error::operation_aborted;
        complete(o, ec);
    }

    awaitable<void> run_send(std::shared_ptr<op> o)
    {
        detail::send_algo algo({.msg = *o->msg,
                                .options = o->options,
                                .session = session,
                                .pipelining = opts.pipelining,
                                .chunking = opts.chunking,
                                .envelope_sent = o->envelope_sent,
                                .log = slog,
                                .out = wbuf,
                                .next_envelope = &next_envelope},
                               o->report);
        if (o->cancelled)
            algo.cancel();
        o->algo = &algo;
        const detail::action x = co_await drive(algo);
        o->algo = nullptr;
        if (!x.close.empty())
            broken(x.close);
        complete(o, x.ec);
    }

    void start_pump()
    {
        if (pumping || queue.empty())
            return;
        pumping = true;
        asio::co_spawn(ex, pump(shared_from_this()), asio::detached);
    }

    // Connects a handler's cancellation slot to its queued operation. A queued operation has
    // done nothing yet: any type of cancellation takes it out. Once its bytes are on the wire
    // only terminal cancellation acts, by closing the connection.
    template <class Handler> void watch_cancellation(Handler& h, const std::shared_ptr<op>& o)
    {
        auto slot = asio::get_associated_cancellation_slot(h);
        if (!slot.is_connected())
            return;
        std::weak_ptr<impl> wi = weak_from_this();
        std::weak_ptr<op> wo = o;
        slot.assign([wi, wo](asio::cancellation_type type) {
            auto i = wi.lock();
            auto op_ = wo.lock();
            if (!i || !op_ || op_->cancelled || op_->done)
                return;
            const bool in_flight = op_->started || op_->envelope_sent;
            if (in_flight &&
                (type & asio::cancellation_type::terminal) == asio::cancellation_type::none)
                return; // partial or total: the send can't be undone once begun
            op_->cancelled = true;
            if (!in_flight) {
                // Not written yet: just take it out of the queue.
                if (op_->k == op::kind::send)
                    op_->report.diag = {"queued", "cancelled before it started"};
                i->complete(op_, asio::error::operation_aborted);
            } else if (op_->started) {
                if (op_->algo)
                    op_->algo->cancel();
                i->broken("operation cancelled");
            }
            // Else its envelope rode behind the previous message: its send sees the flag when
            // its turn comes, and closes the connection.
        });
    }
};

// ---- client -------------------------------------------------------------------------------

client::client(executor_type ex, client_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts)))
{
    mailroom::detail::shutdown_registry::of(impl_->ex).add(impl_);
}
client::client(client&&) noexcept = default;
client& client::operator=(client&& other) noexcept
{
    if (this != &other) {
        close();
        impl_ = std::move(other.impl_);
    }
    return *this;
}
client::~client()
{
    close();
}

client::executor_type client::get_executor() const noexcept
{
    return impl_->ex;
}
const client_options& client::options() const noexcept
{
    return impl_->opts;
}
bool client::is_open() const noexcept
{
    return impl_ && impl_->st == impl::state::open;
}
bool client::peer_closed() const noexcept
{
    // An idle connection the server has closed (end of stream) or spoken on unasked (a 421,
    // a TLS alert before its close): one non-blocking peek. A connection with work queued is
    // the driver's to judge.
    if (!is_open())
        return false;
    const impl& i = *impl_;
    if (!i.queue.empty() || !i.tcp || i.rpos < i.rend)
        return false;
    char c;
    const auto fd = i.tcp->socket().native_handle();
    const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
bool client::is_secure() const noexcept
{
    return impl_ && impl_->session.tls;
}
const capabilities& client::server_capabilities() const noexcept
{
    return impl_->session.caps;
}
std::optional<auth_mechanism> client::authenticated_with() const noexcept
{
    return impl_->session.auth_used;
}
const diagnostics& client::last_diagnostics() const noexcept
{
    return impl_->diag;
}

std::shared_ptr<const diagnostics>
diagnostics_source(const std::shared_ptr<client::impl>& i) noexcept
{
    if (!i)
        return nullptr;
    return std::shared_ptr<const diagnostics>(i, &i->diag);
}

void client::close() noexcept
{
    if (!impl_)
        return;
    // A send under way ends through its algo, which knows whether the write holding its final
    // dot was started: then its outcome is unknown, not operation_aborted. Closing the socket
    // ends the I/O it waits for; everything else in the queue fails now.
    std::shared_ptr<impl::op> running;
    if (!impl_->queue.empty() && impl_->queue.front()->algo) {
        running = impl_->queue.front();
        running->cancelled = true;
        running->algo->cancel();
    }
    impl_->close_socket();
    impl_->fail_queue(asio::error::operation_aborted, running);
}

void client::initiate_connect(std::shared_ptr<impl> i,
                              asio::any_completion_handler<void(error_code)> h)
{
    if (i->st != impl::state::closed || !i->queue.empty()) {
        post_completion(i->ex, std::move(h), make_error_code(error::already_connected));
        return;
    }
    i->st = impl::state::connecting;
    auto slot = asio::get_associated_cancellation_slot(h);
    auto run = [](std::shared_ptr<impl> i) -> awaitable<error_code> {
        error_code ec = co_await i->connect_steps();
        if (ec) {
            i->close_socket();
        } else {
            i->st = impl::state::open;
        }
        co_return ec;
    };
    // co_spawn completes through post() on the client's executor; the handler is then posted
    // again to its own associated executor.
    asio::co_spawn(i->ex, run(i),
                   asio::bind_cancellation_slot(
                       slot, [i, h = std::move(h)](std::exception_ptr e, error_code ec) mutable {
                           if (e) {
                               i->close_socket();
                               ec = make_error_code(error::protocol_error);
                           }
                           post_completion(i->ex, std::move(h), ec);
                       }));
}

void client::initiate_send(std::shared_ptr<impl> i, mime::message m, send_options so,
                           asio::any_completion_handler<void(error_code, delivery_report)> h)
{
    auto o = std::make_shared<impl::op>();
    o->k = impl::op::kind::send;
    o->msg = std::move(m);
    o->options = std::move(so);
    o->report.message_id = o->msg->message_id();
    if (i->st != impl::state::open) {
        o->send_handler.swap(h); // not operator=: see detail/completion.hpp
        o->report.diag = {"send", "the client is not connected"};
        i->queue.push_back(o);
        i->complete(o, make_error_code(error::not_connected));
        return;
    }
    i->watch_cancellation(h, o);
    o->send_handler.swap(h); // not operator=: see detail/completion.hpp
    i->queue.push_back(std::move(o));
    i->start_pump();
}

void client::initiate_simple(std::shared_ptr<impl> i, command c,
                             asio::any_completion_handler<void(error_code)> h)
{
    auto o = std::make_shared<impl::op>();
    o->k = c == command::noop   ? impl::op::kind::noop
           : c == command::rset ? impl::op::kind::rset
                                : impl::op::kind::quit;
    if (i->st != impl::state::open) {
        o->simple_handler.swap(h); // not operator=: see detail/completion.hpp
        i->queue.push_back(o);
        i->complete(o, make_error_code(error::not_connected));
        return;
    }
    i->watch_cancellation(h, o);
    o->simple_handler.swap(h); // not operator=: see detail/completion.hpp
    i->queue.push_back(std::move(o));
    i->start_pump();
}

} // namespace mailroom::smtp
