// The HTTP client's I/O driver: a coroutine per request, on the client's strand, that resolves
// and connects (the shared resolver in core/detail: c-ares, Happy Eyeballs), runs the TLS
// handshake and then writes the exchange's request and feeds it what it reads (exchange.hpp
// decides what the bytes mean). Each phase has its deadline on Beast's tcp_stream, and its own
// error. close() ends every request in flight through its socket or its connect stopper.

#include "exchange.hpp"

#include "detail/completion.hpp"
#include "detail/resolver.hpp" // name resolution and the TCP connect in one deadline

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>

namespace mailroom::http {

namespace beast = boost::beast;
using asio::awaitable;
using tcp = asio::ip::tcp;
using mailroom::detail::post_completion;

namespace detail {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using outcome = std::pair<error_code, response>;

// An I/O error as the caller should see it: Beast's expiry becomes the phase's own timeout, a
// peer that went away connection_lost; cancellation stays as it is.
error_code map_io(error_code ec, error on_timeout)
{
    if (ec == beast::error::timeout)
        return make_error_code(on_timeout);
    if (ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated ||
        ec == asio::error::connection_aborted)
        return make_error_code(error::connection_lost);
    return ec;
}

// "host:port", an IPv6 address in brackets.
std::string endpoint(const url& u)
{
    const bool v6 = u.host.find(':') != std::string::npos;
    return (v6 ? "[" + u.host + "]" : u.host) + ":" + std::to_string(u.port);
}

} // namespace

// One request's connection, reachable from close() (which holds it weakly).
struct request_state {
    std::shared_ptr<mailroom::detail::connect_stopper> stopper; // while connecting
    std::optional<beast::tcp_stream> tcp;
    std::optional<asio::ssl::stream<beast::tcp_stream&>> tls; // over tcp; destroyed first
    bool aborted = false;

    void shut() noexcept
    {
        if (stopper)
            stopper->stop();
        if (tcp) {
            error_code ignored;
            tcp->socket().shutdown(tcp::socket::shutdown_both, ignored);
            tcp->close();
        }
    }
};

struct client_impl final : std::enable_shared_from_this<client_impl> {
    client_impl(asio::any_io_executor e, options o)
        : ex(std::move(e))
        , strand(asio::make_strand(ex))
        , opts(std::move(o))
    {
    }

    asio::any_io_executor ex;     // the client's: handlers complete here by default
    asio::any_io_executor strand; // requests run on it
    const options opts;
    std::atomic<bool> closed{false};
    std::unique_ptr<asio::ssl::context> ssl_ctx; // made by the first https request
    std::vector<std::weak_ptr<request_state>> inflight;

    void log(log_level l, const std::string& line) const
    {
        if (opts.log.enabled(l))
            opts.log(l, line);
    }

    static error_code fail(diagnostics& diag, std::string step, error_code ec, std::string why = {})
    {
        diag.field = std::move(step);
        diag.detail = why.empty() ? ec.message() : std::move(why);
        return ec;
    }

    void abort_all()
    {
        for (auto& w : inflight)
            if (auto st = w.lock()) {
                st->aborted = true;
                st->shut();
            }
        inflight.clear();
    }

    // Once per client: the system's store parses every certificate in it. A failure is kept
    // for no one: the next request tries again.
    error_code make_tls_context(diagnostics& diag)
    {
        if (ssl_ctx)
            return {};
        auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        // TLS 1.2 at least (RFC 8996 retired 1.0 and 1.1).
        SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
        const tls_options& t = opts.tls;
        error_code ec;
        if (t.ca_file.empty() && t.ca_dir.empty())
            ctx->set_default_verify_paths(ec);
        if (!ec && !t.ca_file.empty())
            ctx->load_verify_file(t.ca_file, ec);
        if (!ec && !t.ca_dir.empty())
            ctx->add_verify_path(t.ca_dir, ec);
        if (ec)
            return fail(diag, "TLS set-up", make_error_code(error::tls_configuration_invalid),
                        "loading the trust anchors: " + ec.message());
        ctx->set_verify_mode(t.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
        ssl_ctx = std::move(ctx);
        return {};
    }

    awaitable<error_code> handshake(request_state& st, const std::string& host, diagnostics& diag)
    {
        st.tls.emplace(*st.tcp, *ssl_ctx);
        SSL* native = st.tls->native_handle();
        // SNI takes a host name, never an address literal (RFC 6066 §3).
        error_code addr_ec;
        asio::ip::make_address(host, addr_ec);
        if (addr_ec)
            SSL_set_tlsext_host_name(native, host.c_str());
        if (opts.tls.verify)
            st.tls->set_verify_callback(asio::ssl::host_name_verification(host));
        st.tcp->expires_after(opts.tls_handshake_timeout);
        auto [ec] = co_await st.tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
        if (!ec)
            co_return ec;
        if (ec == beast::error::timeout)
            co_return fail(diag, "TLS handshake", make_error_code(error::tls_handshake_timeout));
        const long verify = SSL_get_verify_result(native);
        if (verify != X509_V_OK)
            co_return fail(diag, "TLS handshake", make_error_code(error::certificate_rejected),
                           "certificate of '" + host +
                               "' rejected: " + X509_verify_cert_error_string(verify));
        if (ec == asio::error::operation_aborted)
            co_return ec;
        co_return fail(diag, "TLS handshake", make_error_code(error::tls_handshake_failed),
                       ec.message());
    }

    // Writes the request and reads until the exchange has its answer, all within
    // response_timeout.
    template <class Stream>
    awaitable<error_code> talk(Stream& s, beast::tcp_stream& tcp, exchange& x, diagnostics& diag)
    {
        tcp.expires_after(opts.response_timeout);
        auto [wec, written] =
            co_await asio::async_write(s, asio::buffer(x.request_bytes()), use_tuple);
        if (wec)
            co_return fail(diag, "writing the request", map_io(wec, error::http_timeout));
        auto buf = std::make_unique_for_overwrite<char[]>(read_size);
        while (x.current() == exchange::state::reading) {
            auto [ec, n] =
                co_await s.async_read_some(asio::buffer(buf.get(), read_size), use_tuple);
            x.on_read(std::string_view(buf.get(), n));
            if (!ec || x.current() != exchange::state::reading)
                continue;
            if (ec == asio::error::eof)
                x.on_eof(true); // plain TCP's close, or TLS's close_notify
            else if (ec == asio::ssl::error::stream_truncated)
                x.on_eof(false);
            else
                co_return fail(diag, "reading the response", map_io(ec, error::http_timeout));
        }
        if (x.current() == exchange::state::failed) {
            diag = x.take().diag;
            co_return x.error();
        }
        co_return error_code{};
    }

    // One request, from the URL to the response.
    awaitable<error_code> steps(request_state& st, const url& u, exchange& x, diagnostics& diag)
    {
        if (u.tls)
            if (auto ec = make_tls_context(diag))
                co_return ec;
        const std::string where = endpoint(u);
        log(log_level::debug, "http[" + where + "] connecting");
        st.stopper = mailroom::detail::make_connect_stopper(strand);
        mailroom::detail::connect_outcome c = co_await mailroom::detail::resolve_and_connect(
            strand, u.host, u.port, opts.dns_servers, opts.connect_timeout, st.stopper);
        st.stopper.reset();
        if (c.ec) {
            if (c.resolving)
                co_return fail(diag, "resolving " + u.host, c.ec);
            co_return fail(diag, "connecting to " + where, map_io(c.ec, error::connect_timeout));
        }
        if (st.aborted)
            co_return asio::error::operation_aborted;
        st.tcp.emplace(std::move(*c.socket));
        error_code ignored;
        st.tcp->socket().set_option(tcp::no_delay(true), ignored);
        if (!u.tls)
            co_return co_await talk(*st.tcp, *st.tcp, x, diag);
        if (auto ec = co_await handshake(st, u.host, diag))
            co_return ec;
        co_return co_await talk(*st.tls, *st.tcp, x, diag);
    }

    static awaitable<outcome> run(std::shared_ptr<client_impl> self, url u, form f)
    {
        auto st = std::make_shared<request_state>();
        std::erase_if(self->inflight, [](auto& w) { return w.expired(); });
        self->inflight.push_back(st);
        response r;
        error_code ec = asio::error::operation_aborted;
        if (!self->closed) {
            exchange x(u, f, self->opts.max_response_size);
            ec = co_await self->steps(*st, u, x, r.diag);
            if (!ec)
                r = x.take();
        }
        st->shut();
        if (self->closed || st->aborted) {
            ec = asio::error::operation_aborted;
            r = {};
            r.diag = {"request", "the client was closed"};
        }
        if (!ec)
            self->log(log_level::debug,
                      "http[" + endpoint(u) + "] status " + std::to_string(r.status));
        co_return outcome{ec, std::move(r)};
    }

    static constexpr std::size_t read_size = 16 * 1024;
};

} // namespace detail

client::client(executor_type ex, options o)
    : impl_(std::make_shared<detail::client_impl>(std::move(ex), std::move(o)))
{
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
    try {
        asio::post(i->strand, [i] { i->abort_all(); });
    } catch (...) {
        // Out of memory: requests in flight end at their deadlines, as operation_aborted.
    }
}

const options& client::get_options() const noexcept
{
    return impl_->opts;
}

void client::initiate_post(std::shared_ptr<detail::client_impl> i, url u, form f,
                           asio::any_completion_handler<void(error_code, response)> h)
{
    if (i->closed) {
        response r;
        r.diag = {"request", "the client was closed"};
        post_completion(i->ex, std::move(h), make_error_code(asio::error::operation_aborted),
                        std::move(r));
        return;
    }
    auto slot = asio::get_associated_cancellation_slot(h);
    auto ex = i->strand;
    // co_spawn completes through the strand; the handler is then posted to its own executor.
    asio::co_spawn(
        ex, detail::client_impl::run(i, std::move(u), std::move(f)),
        asio::bind_cancellation_slot(
            slot, [i, h = std::move(h)](std::exception_ptr e, detail::outcome o) mutable {
                if (e) {
                    o = {};
                    o.first = make_error_code(boost::system::errc::not_enough_memory);
                    try {
                        std::rethrow_exception(e);
                    } catch (const boost::system::system_error& x) {
                        o.first = x.code();
                    } catch (...) {
                    }
                    o.second.diag = {"request", o.first.message()};
                }
                post_completion(i->ex, std::move(h), o.first, std::move(o.second));
            }));
}

} // namespace mailroom::http
