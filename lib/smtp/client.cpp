// The SMTP client's I/O: straight-line coroutines over Beast's tcp_stream (for per-step
// deadlines) and Asio's OpenSSL stream. Every decision (reply grammar, capabilities, command
// formatting, dot-stuffing, SASL) is made by the pure code beside this file.

#include <mailroom/smtp/client.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include "detail/completion.hpp"
#include "detail/shutdown.hpp"
#include "smtp/asio.hpp"
#include "smtp/auth_exchange.hpp"
#include "smtp/command.hpp"
#include "smtp/dot_stuffer.hpp"
#include "smtp/envelope_verdict.hpp"
#include "smtp/reply_parser.hpp"
#include "smtp/sasl.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <deque>

namespace mailroom::smtp {

namespace beast = boost::beast;
using asio::awaitable;
using tcp = asio::ip::tcp;
using duration = timeouts::duration;

using mailroom::detail::post_completion;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Message data is written in blocks of about this size: large enough for few system calls,
// small enough to keep memory per connection low.
constexpr std::size_t write_block = 64 * 1024;

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
        bool envelope_sent = false; // written behind the previous message's final dot
        bool started = false;
        bool cancelled = false;
        bool done = false; // the handler has been called (or posted)
    };
    enum class state { closed, connecting, open };

    impl(asio::any_io_executor e, client_options o)
        : ex(std::move(e))
        , opts(std::move(o))
    {
    }

    asio::any_io_executor ex;
    client_options opts;
    std::unique_ptr<asio::ssl::context> ssl_ctx;
    // The TLS layer exists only once TLS starts: a plaintext connection never allocates
    // OpenSSL's buffers (about 40 KiB), and without TLS OpenSSL is never initialised.
    std::unique_ptr<beast::tcp_stream> tcp;
    std::unique_ptr<asio::ssl::stream<beast::tcp_stream&>> ssl;
    bool tls = false;
    state st = state::closed;
    detail::reply_parser parser;
    // Bytes read and not yet parsed: rbuf[rpos, rend).
    // Not zero-filled: replies are small, so most of its pages are never touched.
    static constexpr std::size_t rbuf_size = 16 * 1024;
    std::unique_ptr<char[]> rbuf = std::make_unique_for_overwrite<char[]>(rbuf_size);
    std::size_t rpos = 0;
    std::size_t rend = 0;
    std::string wbuf;
    capabilities caps;
    std::optional<auth_mechanism> auth_used;
    diagnostics diag;
    std::string prefix;
    std::deque<std::shared_ptr<op>> queue;
    bool pumping = false;
    bool connect_cancelled = false;

    beast::tcp_stream& tcp_layer() { return *tcp; }

    // The io_context is shutting down: queued operations' handlers are dropped unrun, as Asio
    // drops its own (see detail/shutdown.hpp).
    void on_shutdown() noexcept override
    {
        auto q = std::move(queue);
        queue.clear();
        st = state::closed;
    }

    // ---- logging ------------------------------------------------------------------------

    void log(log_level l, std::string_view what)
    {
        if (!opts.log.enabled(l))
            return;
        std::string line = prefix;
        line += ' ';
        line += what;
        opts.log(l, line);
    }

    void log_client_lines(std::string_view data, bool sasl_response = false)
    {
        if (!opts.log.enabled(log_level::trace))
            return;
        std::size_t pos = 0;
        while (pos < data.size()) {
            std::size_t e = data.find("\r\n", pos);
            if (e == std::string_view::npos)
                e = data.size();
            log(log_level::trace,
                "C: " + detail::redact_client_line(data.substr(pos, e - pos), sasl_response));
            pos = e + 2;
        }
    }

    void log_reply(const reply& r)
    {
        if (!opts.log.enabled(log_level::trace))
            return;
        for (std::size_t i = 0; i < r.lines.size(); ++i)
            log(log_level::trace,
                "S: " + std::to_string(r.code) + (i + 1 < r.lines.size() ? "-" : " ") + r.lines[i]);
    }

    // ---- errors -------------------------------------------------------------------------

    error_code fail(std::string_view step, error_code ec, std::string detail = {})
    {
        diag.field = std::string(step);
        diag.detail = detail.empty() ? ec.message() : std::move(detail);
        log(log_level::warning, diag.field + " failed: " + diag.detail);
        return ec;
    }

    error_code fail_reply(std::string_view step, const reply& r)
    {
        return fail(step, make_error_code(r), r.to_string());
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

    // ---- I/O primitives -------------------------------------------------------------------

    awaitable<error_code> write(std::string_view data, duration limit, error on_timeout)
    {
        tcp_layer().expires_after(limit);
        error_code ec;
        if (tls)
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
        bool armed = false;
        for (;;) {
            if (rpos < rend) {
                error_code ec;
                rpos += parser.feed(std::string_view(rbuf.get() + rpos, rend - rpos), ec);
                if (ec)
                    co_return fail("reading a reply", ec, std::string(parser.error_detail()));
                if (parser.has_reply()) {
                    out = parser.take();
                    log_reply(out);
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
            if (tls)
                std::tie(ec, n) = co_await ssl->async_read_some(buf, use_tuple);
            else
                std::tie(ec, n) = co_await tcp_layer().async_read_some(buf, use_tuple);
            rend = n;
            if (ec && n == 0)
                co_return map_io(ec, on_timeout);
        }
    }

    awaitable<error_code> command(std::string_view line, reply& r, duration limit, error on_timeout)
    {
        log_client_lines(line);
        if (auto ec = co_await write(line, limit, on_timeout))
            co_return ec;
        co_return co_await read_reply(r, limit, on_timeout);
    }

    void close_socket() noexcept
    {
        if (tcp) {
            error_code ignored;
            tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
            tcp_layer().close();
        }
        st = state::closed;
        tls = false;
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
            return fail("TLS set-up", make_error_code(error::tls_handshake_failed),
                        "loading certificates: " + ec.message());
        }
        ssl_ctx->set_verify_mode(t.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
        return {};
    }

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
        tls = true;
        co_return error_code{};
    }

    // EHLO, or HELO where the server refuses EHLO and TLS isn't required (RFC 5321 §3.2).
    awaitable<error_code> hello()
    {
        std::string line;
        if (auto ec = detail::format_ehlo(line, opts.helo_name))
            co_return fail("EHLO", ec, "EHLO name '" + opts.helo_name + "' is not a domain");
        reply r;
        if (auto ec = co_await command(line, r, opts.timeouts.command, error::command_timeout))
            co_return fail("EHLO", ec);
        if (r.code == 250) {
            caps = capabilities::parse(r);
            parser.set_enhanced_status_codes(caps.enhanced_status_codes);
            co_return error_code{};
        }
        const bool may_helo =
            (r.code == 500 || r.code == 502) && !tls &&
            (opts.tls.mode == tls_mode::none || opts.tls.mode == tls_mode::opportunistic);
        if (!may_helo)
            co_return fail_reply("EHLO", r);
        line.clear();
        (void)detail::format_helo(line, opts.helo_name);
        if (auto ec = co_await command(line, r, opts.timeouts.command, error::command_timeout))
            co_return fail("HELO", ec);
        if (r.code != 250)
            co_return fail_reply("HELO", r);
        caps = capabilities{};
        co_return error_code{};
    }

    awaitable<error_code> starttls()
    {
        const bool required = opts.tls.mode == tls_mode::required;
        if (!caps.starttls) {
            if (required)
                co_return fail("STARTTLS", make_error_code(error::starttls_unavailable),
                               "the server does not offer STARTTLS");
            co_return error_code{};
        }
        std::string line;
        detail::format_starttls(line);
        reply r;
        if (auto ec = co_await command(line, r, opts.timeouts.command, error::command_timeout))
            co_return fail("STARTTLS", ec);
        if (r.code != 220) {
            if (required)
                co_return fail("STARTTLS", make_error_code(error::starttls_unavailable),
                               r.to_string());
            co_return error_code{};
        }
        // RFC 3207 §5 (CVE-2011-0411): bytes that arrived with the 220 were sent before TLS and
        // could be an attacker's "replies" for the protected session.
        if (rpos < rend || !parser.idle())
            co_return fail("STARTTLS", make_error_code(error::starttls_injection),
                           "the server sent data after its 220 reply, before the TLS handshake");
        if (auto ec = co_await handshake())
            co_return ec;
        // Everything learned before TLS is forgotten (RFC 3207 §4.2).
        caps = capabilities{};
        parser.reset();
        parser.set_enhanced_status_codes(false);
        co_return co_await hello();
    }

    awaitable<error_code> authenticate()
    {
        const credentials& c = *opts.auth;
        detail::sasl_credentials sc;
        sc.username = c.username;
        sc.password = c.password;
        sc.host = opts.host;
        sc.port = opts.port;
        if (c.token_provider)
            sc.bearer_token = c.token_provider(false);
        std::vector<auth_mechanism> allowed;
        if (c.mechanism)
            allowed.push_back(*c.mechanism);
        else
            allowed.assign(std::begin(detail::all_auth_mechanisms),
                           std::end(detail::all_auth_mechanisms));
        const bool protected_channel = tls || c.allow_plaintext;
        auto mech = detail::choose_mechanism(caps.auth, sc, protected_channel, allowed);
        if (!mech) {
            // Say so plainly when the only thing missing is TLS.
            if (!protected_channel && detail::choose_mechanism(caps.auth, sc, true, allowed))
                co_return fail("AUTH", make_error_code(error::plaintext_auth_refused),
                               "credentials would be sent without TLS");
            co_return fail("AUTH", mech.error(), "no usable mechanism among the server's");
        }
        const bool oauth = *mech == auth_mechanism::xoauth2 || *mech == auth_mechanism::oauthbearer;
        for (int attempt = 0;; ++attempt) {
            error_code ec = co_await auth_exchange_once(*mech, sc);
            // One retry with a refreshed token when the server refused the token
            // (RFC 7628 §3.2.2: the client may try again with a new token).
            if (ec && oauth && attempt == 0 && ec.category() == reply_category() &&
                ec.value() / 100 == 5 && c.token_provider) {
                sc.bearer_token = c.token_provider(true);
                if (!sc.bearer_token.empty())
                    continue;
            }
            if (ec)
                co_return ec;
            auth_used = *mech;
            co_return error_code{};
        }
    }

    awaitable<error_code> auth_exchange_once(auth_mechanism mech,
                                             const detail::sasl_credentials& sc)
    {
        std::string out;
        auto ex = detail::auth_exchange::start(mech, sc, out);
        if (!ex)
            co_return fail("AUTH", ex.error());
        bool response_line = false;
        for (;;) {
            log_client_lines(out, response_line);
            if (auto ec = co_await write(out, opts.timeouts.command, error::command_timeout))
                co_return fail("AUTH", ec);
            reply r;
            if (auto ec = co_await read_reply(r, opts.timeouts.command, error::command_timeout))
                co_return fail("AUTH", ec);
            out.clear();
            error_code ec;
            const auto step = ex->on_reply(r, out, ec);
            if (step == detail::auth_exchange::step::done) {
                if (ec)
                    co_return fail("AUTH " + std::string(to_string(mech)), ec,
                                   ec.category() == reply_category() ? r.to_string()
                                                                     : ec.message());
                co_return error_code{};
            }
            response_line = ex->awaiting_response_line();
        }
    }

    awaitable<error_code> connect_steps()
    {
        if (opts.port == 0)
            opts.port = opts.tls.mode == tls_mode::implicit ? 465 : 587;
        prefix = "smtp[" + opts.host + "#" + std::to_string(++connection_counter) + "]";
        parser = detail::reply_parser{};
        rpos = rend = 0;
        caps = capabilities{};
        auth_used.reset();
        tls = false;
        diag.clear();
        if (opts.tls.mode != tls_mode::none) {
            // Certificate files are read before connecting, so a wrong path fails at once.
            if (auto ec = make_tls_context())
                co_return ec;
        }
        ssl.reset();
        tcp = std::make_unique<beast::tcp_stream>(ex);

        tcp::resolver resolver(ex);
        auto [rec, endpoints] = co_await resolver.async_resolve(
            opts.host, std::to_string(opts.port), tcp::resolver::numeric_service, use_tuple);
        if (rec)
            co_return fail("resolving " + opts.host, rec);
        tcp_layer().expires_after(opts.timeouts.connect);
        auto [cec, ep] = co_await tcp_layer().async_connect(endpoints, use_tuple);
        if (cec)
            co_return fail("connecting to " + opts.host + ":" + std::to_string(opts.port),
                           map_io(cec, error::connect_timeout));
        error_code ignored;
        tcp_layer().socket().set_option(tcp::no_delay(true), ignored);
        log(log_level::debug,
            "connected to " + ep.address().to_string() + ":" + std::to_string(ep.port()));

        if (opts.tls.mode == tls_mode::implicit)
            if (auto ec = co_await handshake())
                co_return ec;
        reply r;
        if (auto ec = co_await read_reply(r, opts.timeouts.greeting, error::greeting_timeout))
            co_return fail("greeting", ec);
        if (r.code != 220)
            co_return fail_reply("greeting", r);
        if (auto ec = co_await hello())
            co_return ec;
        if (!tls &&
            (opts.tls.mode == tls_mode::required || opts.tls.mode == tls_mode::opportunistic))
            if (auto ec = co_await starttls())
                co_return ec;
        if (opts.auth)
            if (auto ec = co_await authenticate())
                co_return ec;
        co_return error_code{};
    }

    // ---- the send queue ---------------------------------------------------------------------

    // Checks what can be checked before anything is written, and formats MAIL, RCPT (and DATA)
    // into `out`. Nothing is appended on an error.
    error_code envelope_commands(op& o, std::string& out)
    {
        const mime::message& m = *o.msg;
        const envelope& env = m.envelope();
        if (env.recipients.empty())
            return make_error_code(error::no_recipients);
        if (caps.size && *caps.size > 0 && m.size() > *caps.size)
            return make_error_code(error::size_exceeded);
        if (env.smtputf8 && !caps.smtputf8)
            return make_error_code(error::smtputf8_unavailable);
        if (env.eight_bit && !caps.eight_bit_mime)
            return make_error_code(error::eight_bit_unavailable);
        detail::mail_parameters mp;
        if (caps.size)
            mp.size = m.size();
        if (env.eight_bit)
            mp.body = detail::body_type::eight_bit_mime;
        mp.smtputf8 = env.smtputf8;
        detail::rcpt_parameters rp;
        if (caps.dsn) {
            // RFC 3461: only where the server offers DSN; elsewhere the requests are dropped
            // rather than failing the message.
            const dsn_options& d = o.options.dsn;
            using rc = dsn_options::return_content;
            mp.ret = d.ret == rc::full      ? detail::dsn_ret::full
                     : d.ret == rc::headers ? detail::dsn_ret::headers
                                            : detail::dsn_ret::unspecified;
            mp.envid = d.envid;
            auto n = detail::dsn_notify::unspecified;
            if (d.notify_never)
                n = detail::dsn_notify::never;
            if (d.notify_success)
                n = n | detail::dsn_notify::success;
            if (d.notify_failure)
                n = n | detail::dsn_notify::failure;
            if (d.notify_delay)
                n = n | detail::dsn_notify::delay;
            rp.notify = n;
        }
        // Formatted straight into the write buffer; taken back out on an error.
        const std::size_t old_size = out.size();
        auto undo = [&](error_code ec) {
            out.resize(old_size);
            return ec;
        };
        if (auto ec = detail::format_mail_from(out, env.from, mp))
            return undo(ec);
        for (const address& a : env.recipients) {
            if (caps.dsn && o.options.dsn.original_recipient && !a.needs_smtputf8())
                rp.orcpt = a.str();
            if (auto ec = detail::format_rcpt_to(out, a, rp))
                return undo(ec);
        }
        if (!use_bdat())
            detail::format_data(out);
        return {};
    }

    bool use_bdat() const { return opts.chunking && caps.chunking; }
    bool use_pipelining() const { return opts.pipelining && caps.pipelining; }

    // Puts the next queued send's envelope into `out`, to ride behind a final dot.
    void pipeline_next(std::string& out)
    {
        if (!use_pipelining() || queue.size() < 2)
            return;
        op& next = *queue[1];
        if (next.k != op::kind::send || next.envelope_sent || next.cancelled)
            return;
        if (!envelope_commands(next, out))
            next.envelope_sent = true;
    }

    void complete(const std::shared_ptr<op>& o, error_code ec)
    {
        if (o->done)
            return; // close() or a cancellation got there first
        o->done = true;
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

    void fail_queue(error_code ec)
    {
        while (!queue.empty()) {
            auto o = queue.front();
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
        error_code ec = co_await command(line, r, opts.timeouts.command, error::command_timeout);
        if (o->k == op::kind::quit) {
            // A server that closes at once instead of answering QUIT has done what was asked.
            if (ec == error::connection_lost)
                ec = {};
            else if (!ec && r.code != 221)
                ec = fail_reply(name, r);
            close_socket();
        } else if (ec) {
            fail(name, ec);
            broken(ec.message());
        } else if (r.code != 250) {
            ec = fail_reply(name, r);
            if (r.code == 421)
                broken("421 from the server");
        }
        if (o->cancelled)
            ec = asio::error::operation_aborted;
        complete(o, ec);
    }

    awaitable<void> run_send(std::shared_ptr<op> o)
    {
        delivery_report& rep = o->report;
        const mime::message& m = *o->msg;
        rep.message_id = m.message_id();
        rep.recipients.clear();
        for (const address& a : m.envelope().recipients)
            rep.recipients.push_back({a, {}});

        auto finish = [&](error_code ec, std::string_view step, std::string detail = {}) {
            if (ec) {
                rep.diag.field = std::string(step);
                rep.diag.detail = detail.empty() ? ec.message() : std::move(detail);
            }
            if (o->cancelled && rep.outcome != outcome::unknown)
                ec = asio::error::operation_aborted;
            complete(o, ec);
        };
        // An I/O failure before the final dot: nothing was delivered, the connection is gone.
        auto lost = [&](error_code ec, std::string_view step) {
            broken(ec.message());
            finish(ec, step);
        };

        if (o->cancelled) {
            // Cancelled while its envelope rode behind the previous message: its replies are
            // on the way, so the session can't be resynchronised. Start afresh.
            broken("operation cancelled");
            finish(asio::error::operation_aborted, "queued");
            co_return;
        }
        const bool pipe = use_pipelining();
        const bool bdat = use_bdat();
        std::string& out = wbuf;
        out.clear();
        if (!o->envelope_sent) {
            if (auto ec = envelope_commands(*o, out)) {
                finish(ec, "envelope");
                co_return;
            }
        }

        // MAIL, RCPT, DATA: in one flight where the server pipelines (RFC 2920 §3.1), every
        // reply read and checked in order; else one at a time.
        reply mail_r, data_r;
        bool data_sent = false;
        if (pipe) {
            if (!o->envelope_sent) {
                log_client_lines(out);
                if (auto ec = co_await write(out, opts.timeouts.mail, error::mail_timeout))
                    co_return lost(ec, "MAIL FROM");
            }
            // A 421 closes the connection at once (RFC 5321 §3.8), so the replies to the rest
            // of the flight never come: the 421, not the lost connection, is the answer.
            auto lost_after = [&](error_code ec, std::string_view step) {
                const reply* closing = mail_r.code == 421 ? &mail_r : nullptr;
                for (const auto& rs : rep.recipients)
                    if (!closing && rs.response.code == 421)
                        closing = &rs.response;
                if (!closing)
                    return lost(ec, step);
                broken("421 from the server");
                rep.refusal = *closing;
                finish(make_error_code(*closing), closing == &mail_r ? "MAIL FROM" : "RCPT TO",
                       closing->to_string());
            };
            if (auto ec = co_await read_reply(mail_r, opts.timeouts.mail, error::mail_timeout))
                co_return lost(ec, "MAIL FROM");
            for (auto& rs : rep.recipients)
                if (auto ec =
                        co_await read_reply(rs.response, opts.timeouts.rcpt, error::rcpt_timeout))
                    co_return lost_after(ec, "RCPT TO");
            if (!bdat) {
                data_sent = true;
                if (auto ec = co_await read_reply(data_r, opts.timeouts.data, error::data_timeout))
                    co_return lost_after(ec, "DATA");
            }
        } else {
            // Lock-step: split the formatted envelope back into its lines.
            std::vector<std::string> lines;
            for (std::size_t pos = 0; pos < out.size();) {
                const std::size_t e = out.find("\r\n", pos) + 2;
                lines.emplace_back(out, pos, e - pos);
                pos = e;
            }
            if (auto ec =
                    co_await command(lines[0], mail_r, opts.timeouts.mail, error::mail_timeout))
                co_return lost(ec, "MAIL FROM");
            if (mail_r.code / 100 == 2) {
                for (std::size_t i = 0; i < rep.recipients.size(); ++i)
                    if (auto ec = co_await command(lines[1 + i], rep.recipients[i].response,
                                                   opts.timeouts.rcpt, error::rcpt_timeout))
                        co_return lost(ec, "RCPT TO");
                if (!bdat && rep.accepted_count() > 0) {
                    data_sent = true;
                    if (auto ec = co_await command(lines.back(), data_r, opts.timeouts.data,
                                                   error::data_timeout))
                        co_return lost(ec, "DATA");
                }
            }
        }
        const auto verdict =
            detail::judge_envelope(mail_r, rep.recipients, data_sent ? &data_r : nullptr);
        using verdict_kind = detail::envelope_verdict::kind;
        if (verdict.k == verdict_kind::out_of_step) {
            broken("replies out of step with the commands");
            finish(make_error_code(error::protocol_error), "envelope",
                   "a reply that does not answer its command: the replies are out of step");
            co_return;
        }
        if (verdict.k == verdict_kind::closing) {
            broken("421 from the server");
            rep.refusal = *verdict.cause;
            finish(make_error_code(*verdict.cause), verdict.step, verdict.cause->to_string());
            co_return;
        }

        // Nothing to deliver: say why, and leave the session clean for the next message.
        if (verdict.k == verdict_kind::refused) {
            const error_code ec = make_error_code(*verdict.cause);
            const std::string step = verdict.step, text = verdict.cause->to_string();
            if (verdict.end_empty_data) {
                // The server wants a message although none may be sent: end it empty
                // (RFC 2920 §3.1), then RSET.
                reply dot_r;
                const std::string_view dot = ".\r\n";
                log_client_lines(dot);
                if (auto e2 = co_await command(dot, dot_r, opts.timeouts.data_end,
                                               error::data_end_timeout))
                    co_return lost(e2, "DATA");
            }
            if (verdict.rset) {
                std::string line;
                detail::format_rset(line);
                reply rr;
                if (auto e2 =
                        co_await command(line, rr, opts.timeouts.command, error::command_timeout)) {
                    broken(e2.message());
                } else if (rr.code != 250) {
                    broken("RSET refused");
                }
            }
            rep.outcome = outcome::failed;
            rep.refusal = *verdict.cause;
            finish(ec, step, text);
            co_return;
        }

        // The message data. From here on a lost connection may have delivered it.
        mime::message::reader reader = m.open();
        detail::dot_stuffer stuffer(bdat ? detail::dot_stuffer::dot_stuffing::off
                                         : detail::dot_stuffer::dot_stuffing::on);
        out.clear();
        std::size_t bdat_commands = 0;
        std::string pending; // BDAT: the canonical form of the chunk not yet sent
        error_code ec;
        for (std::string_view chunk = reader.next(ec);; chunk = reader.next(ec)) {
            if (ec) {
                // The message can't be read (file attachment gone): nothing final was sent,
                // but the session is mid-DATA; drop it.
                broken("message unreadable");
                finish(ec, "reading the message");
                co_return;
            }
            bool last = chunk.empty();
            if (bdat) {
                // Chunks are gathered up to a write block per BDAT; the last one carries LAST
                // (RFC 3030 §2), so no empty "BDAT 0 LAST" is needed.
                if (!last) {
                    if (auto e2 = stuffer.feed(chunk, pending)) {
                        broken(e2.message());
                        finish(e2, "message data");
                        co_return;
                    }
                    last = reader.remaining() == 0;
                }
                if (last || pending.size() >= write_block) {
                    if (last)
                        stuffer.finish(pending);
                    detail::format_bdat(out, pending.size(), last);
                    out += pending;
                    pending.clear();
                    ++bdat_commands;
                }
            } else if (!last) {
                if (auto e2 = stuffer.feed(chunk, out)) {
                    broken(e2.message());
                    finish(e2, "message data");
                    co_return;
                }
            } else {
                stuffer.finish(out);
            }
            if (last)
                break;
            if (out.size() >= write_block) {
                if (auto e2 =
                        co_await write(out, opts.timeouts.data_block, error::data_block_timeout)) {
                    co_return lost(e2, "message data");
                }
                out.clear();
            }
        }
        if (opts.log.enabled(log_level::trace))
            log(log_level::trace, "C: [message data, " + std::to_string(m.size()) + " octets]");
        const std::size_t before_next = out.size();
        pipeline_next(out);
        if (out.size() > before_next)
            log_client_lines(std::string_view(out).substr(before_next));

        auto unknown = [&](error_code cause, std::string_view step) {
            broken(cause.message());
            rep.outcome = outcome::unknown;
            finish(make_error_code(error::delivery_status_unknown), step,
                   "after the end of the message data: " + cause.message());
        };
        if (auto e2 = co_await write(out, opts.timeouts.data_block, error::data_block_timeout))
            co_return unknown(e2, "message data");
        out.clear();

        // One reply per BDAT (RFC 3030 §2), or the reply to the final dot.
        reply final_r;
        const std::size_t replies = bdat ? bdat_commands : 1;
        bool refused = false;
        for (std::size_t i = 0; i < replies; ++i) {
            reply r;
            if (auto e2 = co_await read_reply(r, opts.timeouts.data_end, error::data_end_timeout))
                co_return unknown(e2, "final reply");
            if (!refused && (r.code / 100 != 2 || i + 1 == replies)) {
                final_r = r;
                refused = r.code / 100 != 2;
            }
        }
        rep.final_reply = final_r;
        if (final_r.code == 421)
            broken("421 from the server");
        if (final_r.code / 100 != 2) {
            rep.outcome = outcome::failed;
            rep.refusal = final_r;
            finish(make_error_code(final_r), "final reply", final_r.to_string());
            co_return;
        }
        rep.queue_id = find_queue_id(final_r);
        rep.outcome =
            rep.accepted_count() == rep.recipients.size() ? outcome::delivered : outcome::partial;
        finish({}, "");
        // With no command outstanding, the server has nothing to say: bytes waiting now are
        // replies nobody asked for, which could be mistaken for the next transaction's.
        const bool next_pipelined = !queue.empty() && queue.front()->envelope_sent;
        if (!next_pipelined && (rpos < rend || !parser.idle()))
            broken("unsolicited data from the server");
    }

    void start_pump()
    {
        if (pumping || queue.empty())
            return;
        pumping = true;
        asio::co_spawn(ex, pump(shared_from_this()), asio::detached);
    }

    // Connects a handler's cancellation slot to its queued operation.
    template <class Handler> void watch_cancellation(Handler& h, const std::shared_ptr<op>& o)
    {
        auto slot = asio::get_associated_cancellation_slot(h);
        if (!slot.is_connected())
            return;
        std::weak_ptr<impl> wi = weak_from_this();
        std::weak_ptr<op> wo = o;
        slot.assign([wi, wo](asio::cancellation_type) {
            auto i = wi.lock();
            auto op_ = wo.lock();
            if (!i || !op_ || op_->cancelled || op_->done)
                return;
            op_->cancelled = true;
            if (op_->envelope_sent && !op_->started)
                return; // run_send() sees the flag when its turn comes
            if (!op_->started) {
                // Not written yet: just take it out of the queue.
                if (op_->k == op::kind::send)
                    op_->report.diag = {"queued", "cancelled before it started"};
                i->complete(op_, asio::error::operation_aborted);
            } else {
                i->broken("operation cancelled");
            }
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
bool client::is_secure() const noexcept
{
    return impl_ && impl_->tls;
}
const capabilities& client::server_capabilities() const noexcept
{
    return impl_->caps;
}
std::optional<auth_mechanism> client::authenticated_with() const noexcept
{
    return impl_->auth_used;
}
const diagnostics& client::last_diagnostics() const noexcept
{
    return impl_->diag;
}

void client::close() noexcept
{
    if (!impl_)
        return;
    impl_->close_socket();
    impl_->fail_queue(asio::error::operation_aborted);
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
