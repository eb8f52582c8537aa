#include "fake_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include <unistd.h>

namespace mailroom::test {

using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

script& script::greet(std::vector<std::string> extensions)
{
    reply("220 fake.test ESMTP");
    expect("EHLO");
    std::string r = "250";
    r += extensions.empty() ? " " : "-";
    r += "fake.test";
    for (std::size_t i = 0; i < extensions.size(); ++i)
        r += "\r\n250" + std::string(i + 1 == extensions.size() ? " " : "-") + extensions[i];
    return reply(r);
}

namespace {

bool iequal_prefix(std::string_view s, std::string_view prefix)
{
    return s.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

std::string upper(std::string s)
{
    for (auto& c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// The value of the Message-ID header in message data (CRLF lines), or "" if there is none.
std::string message_id_of(const std::string& data)
{
    for (std::size_t pos = 0; pos < data.size();) {
        std::size_t end = data.find("\r\n", pos);
        if (end == std::string::npos)
            end = data.size();
        const std::string_view line(data.data() + pos, end - pos);
        if (line.empty())
            break; // end of the header
        if (iequal_prefix(line, "Message-ID:")) {
            auto v = line.substr(11);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
                v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
                v.remove_suffix(1);
            return std::string(v);
        }
        pos = end + 2;
    }
    return {};
}

std::string base64_decode(std::string_view in)
{
    static constexpr std::string_view chars =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned bits = 0;
    int have = 0;
    for (char c : in) {
        const auto v = chars.find(c);
        if (v == std::string_view::npos)
            break; // '=' or the end
        bits = (bits << 6) | static_cast<unsigned>(v);
        have += 6;
        if (have >= 8) {
            have -= 8;
            out += static_cast<char>((bits >> have) & 0xff);
        }
    }
    return out;
}

} // namespace

// GCC 12 warns at -O2 that a coroutine frame's class-specific operator delete doesn't match
// its operator new (-Wmismatched-new-delete): both are Asio's awaitable_frame_base's; a false
// positive of GCC's coroutine lowering (fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
struct session::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, script s, asio::ssl::context* ctx, bool implicit)
        : stream(tcp::socket(ex), ctx ? *ctx : fallback_ctx())
        , steps(s.steps())
        , implicit_tls(implicit)
        , have_tls(ctx != nullptr)
    {
    }

    static asio::ssl::context& fallback_ctx()
    {
        static asio::ssl::context c(asio::ssl::context::tls_server);
        return c;
    }

    asio::ssl::stream<tcp::socket> stream;
    std::vector<script::step> steps;
    bool implicit_tls;
    bool have_tls;
    bool tls = false;
    std::string rbuf;

    mutable std::mutex mutex; // guards log
    session_log log;

    template <class F> void record(F f)
    {
        std::lock_guard lock(mutex);
        f(log);
    }
    void mismatch(std::string what)
    {
        record([&](session_log& l) { l.mismatches.push_back(std::move(what)); });
    }

    // `graceful`: FIN first; else a plain close, which is a reset when SO_LINGER is 0.
    void close(bool graceful = true)
    {
        boost::system::error_code ignored;
        if (graceful)
            stream.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
        stream.next_layer().close(ignored);
        record([](session_log& l) {
            if (!l.closed)
                l.closed = steady::now();
        });
    }

    asio::awaitable<bool> read_more()
    {
        char buf[4096];
        std::size_t n = 0;
        boost::system::error_code ec;
        if (tls)
            std::tie(ec, n) = co_await stream.async_read_some(asio::buffer(buf), use_tuple);
        else
            std::tie(ec, n) =
                co_await stream.next_layer().async_read_some(asio::buffer(buf), use_tuple);
        record([&](session_log& l) { l.received.append(buf, n); });
        rbuf.append(buf, n);
        co_return !ec || n > 0;
    }

    asio::awaitable<bool> write(std::string data)
    {
        boost::system::error_code ec;
        if (tls)
            std::tie(ec, std::ignore) =
                co_await asio::async_write(stream, asio::buffer(data), use_tuple);
        else
            std::tie(ec, std::ignore) =
                co_await asio::async_write(stream.next_layer(), asio::buffer(data), use_tuple);
        co_return !ec;
    }

    asio::awaitable<bool> read_until(std::string_view delim, std::string& out)
    {
        // Each search starts where the last one could still match: message data of many
        // megabytes arrives 4 KiB at a time, and searching it all again would be quadratic.
        std::size_t from = 0;
        for (;;) {
            const auto p = rbuf.find(delim, from);
            if (p != std::string::npos) {
                out = rbuf.substr(0, p + delim.size());
                rbuf.erase(0, p + delim.size());
                co_return true;
            }
            from = rbuf.size() < delim.size() ? 0 : rbuf.size() - delim.size() + 1;
            if (!co_await read_more())
                co_return false;
        }
    }

    // Message data up to and including the line holding only '.'; the data may be empty.
    asio::awaitable<bool> read_data(std::string& body)
    {
        if (rbuf.starts_with(".\r\n")) {
            rbuf.erase(0, 3);
            body.clear();
            co_return true;
        }
        co_return co_await read_until("\r\n.\r\n", body);
    }

    // `keep_alive` is a parameter, so the session outlives its coroutine.
    asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<impl> keep_alive)
    {
        if (implicit_tls) {
            auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
            if (hec) {
                mismatch("implicit TLS handshake: " + hec.message());
                co_return;
            }
            tls = true;
        }
        for (const auto& s : steps) {
            switch (s.k) {
            case script::kind::reply:
                if (!co_await write(s.text + "\r\n"))
                    co_return;
                break;
            case script::kind::raw:
                if (!co_await write(s.text))
                    co_return;
                break;
            case script::kind::expect: {
                std::string line;
                if (!co_await read_until("\r\n", line)) {
                    mismatch("connection closed; expected " + s.text);
                    co_return;
                }
                if (!iequal_prefix(line, s.text)) {
                    mismatch("expected " + s.text + ", got " + line);
                    co_return;
                }
                break;
            }
            case script::kind::data: {
                std::string body;
                if (!co_await read_data(body)) {
                    mismatch("connection closed in message data");
                    co_return;
                }
                break;
            }
            case script::kind::delay: {
                asio::steady_timer t(stream.get_executor(), s.wait);
                co_await t.async_wait(use_tuple);
                break;
            }
            case script::kind::hang:
                while (co_await read_more())
                    rbuf.clear();
                close();
                co_return;
            case script::kind::close:
                record([](session_log& l) { l.finished = true; });
                close();
                co_return;
            case script::kind::rst: {
                boost::system::error_code ignored;
                stream.next_layer().set_option(asio::socket_base::linger(true, 0), ignored);
                record([](session_log& l) { l.finished = true; });
                close(false);
                co_return;
            }
            case script::kind::starttls: {
                if (!have_tls) {
                    mismatch("starttls step without a TLS context");
                    co_return;
                }
                auto [hec] =
                    co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
                if (hec) {
                    mismatch("TLS handshake: " + hec.message());
                    co_return;
                }
                tls = true;
                break;
            }
            case script::kind::sink:
                co_await sink(*s.sink);
                record([](session_log& l) { l.finished = true; });
                close();
                co_return;
            }
        }
        record([](session_log& l) { l.finished = true; });
        // Keep the connection until the client closes it.
        while (co_await read_more())
            rbuf.clear();
        close();
    }

    // ---- the sink -----------------------------------------------------------------------------

    std::vector<bool> fired; // per sink_options::faults

    const sink_options::fault* find_fault(const sink_options& o, std::size_t message,
                                          const std::string& verb)
    {
        fired.resize(o.faults.size());
        for (std::size_t i = 0; i < o.faults.size(); ++i) {
            const auto& f = o.faults[i];
            if (!fired[i] && f.message == message && upper(f.command) == verb) {
                fired[i] = true;
                return &f;
            }
        }
        return nullptr;
    }

    // Sends `usual`, or what `f` says instead. Returns the reply sent; "" when the connection
    // is over (dropped, lost, or closed after a 421). `usual` must outlive the call.
    asio::awaitable<std::string> answer(const sink_options::fault* f, std::string_view usual)
    {
        if (f && f->delay.count() > 0) {
            asio::steady_timer t(stream.get_executor(), f->delay);
            co_await t.async_wait(use_tuple);
        }
        if (f && f->drop) {
            close();
            co_return "";
        }
        std::string r = f && !f->reply.empty() ? f->reply : std::string(usual);
        const std::string out = r + "\r\n";
        if (!co_await write(out))
            co_return "";
        if (r.starts_with("421")) { // RFC 5321 §3.8: the server closes the channel
            close();
            co_return "";
        }
        co_return r;
    }

    asio::awaitable<void> sink(const sink_options& o)
    {
        if (!o.greeting.empty() && !co_await write(o.greeting + "\r\n"))
            co_return;
        std::size_t mails = 0, accepted = 0, rcpts = 0;
        bool in_transaction = false;
        for (;;) {
            std::string line;
            if (!co_await read_until("\r\n", line))
                co_return; // the client went away
            line.resize(line.size() - 2);
            std::string verb = upper(line.substr(0, line.find_first_of(" :")));
            const bool in_tx_command = verb == "RCPT" || verb == "DATA";
            const std::size_t message = verb == "MAIL"               ? mails
                                        : in_tx_command && mails > 0 ? mails - 1
                                                                     : mails;
            record([&](session_log& l) {
                l.commands.push_back(verb == "AUTH" ? line.substr(0, line.find(' ', 5)) : line);
            });
            const auto* f = find_fault(o, message, verb);
            std::string r;
            if (verb == "EHLO") {
                std::string usual = "250";
                usual += o.extensions.empty() ? " fake.test" : "-fake.test";
                for (std::size_t i = 0; i < o.extensions.size(); ++i)
                    usual += "\r\n250" + std::string(i + 1 == o.extensions.size() ? " " : "-") +
                             o.extensions[i];
                r = co_await answer(f, usual);
            } else if (verb == "HELO") {
                r = co_await answer(f, "250 fake.test");
            } else if (verb == "AUTH") {
                // RFC 4616: [authzid] NUL authcid NUL passwd, as an initial response or after
                // an empty 334 challenge.
                if (!iequal_prefix(line, "AUTH PLAIN")) {
                    r = co_await answer(f, "504 5.5.4 mechanism not supported");
                } else {
                    std::string ir = line.size() > 11 ? line.substr(11) : "";
                    if (ir.empty()) {
                        if (!co_await write("334 \r\n") || !co_await read_until("\r\n", ir))
                            co_return;
                        ir.resize(ir.size() - 2);
                    }
                    const std::string plain = base64_decode(ir);
                    const auto a = plain.find('\0');
                    const auto b = a == std::string::npos ? a : plain.find('\0', a + 1);
                    const std::string user =
                        b == std::string::npos ? "" : plain.substr(a + 1, b - a - 1);
                    r = co_await answer(f, "235 2.7.0 authenticated");
                    if (r.starts_with("2"))
                        record([&](session_log& l) { l.auth_users.push_back(user); });
                }
            } else if (verb == "MAIL") {
                ++mails;
                rcpts = 0;
                r = co_await answer(f, "250 2.1.0 ok");
                in_transaction = r.starts_with("2");
            } else if (verb == "RCPT") {
                r = co_await answer(f, in_transaction ? "250 2.1.5 ok" : "503 5.5.1 MAIL first");
                rcpts += r.starts_with("2");
            } else if (verb == "DATA") {
                r = co_await answer(f, in_transaction && rcpts > 0
                                           ? "354 go ahead"
                                           : "554 5.5.1 no valid recipients");
                if (r.starts_with("3")) {
                    std::string body;
                    if (!co_await read_data(body))
                        co_return;
                    const std::string id = message_id_of(body);
                    record([&](session_log& l) { l.messages.push_back(id); });
                    in_transaction = false;
                    const auto* dot = find_fault(o, message, ".");
                    const std::string queued =
                        "250 2.0.0 ok: queued as Q" + std::to_string(message);
                    r = co_await answer(dot, queued);
                    if (r.starts_with("2")) {
                        record([&](session_log& l) { l.accepted.push_back(id); });
                        if (++accepted == o.close_after)
                            co_return;
                    }
                }
            } else if (verb == "RSET") {
                in_transaction = false;
                r = co_await answer(f, "250 2.0.0 ok");
            } else if (verb == "NOOP") {
                r = co_await answer(f, "250 2.0.0 ok");
            } else if (verb == "QUIT") {
                record([](session_log& l) { l.quit = true; });
                r = co_await answer(f, "221 2.0.0 bye");
                co_return;
            } else {
                r = co_await answer(f, "500 5.5.2 unknown command");
            }
            if (r.empty())
                co_return;
        }
    }
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

session::session(asio::any_io_executor ex, script s, asio::ssl::context* tls, bool implicit_tls)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(s), tls, implicit_tls))
{
}
session::~session() = default;

tcp::socket& session::socket()
{
    return impl_->stream.next_layer();
}
asio::awaitable<void> session::run()
{
    impl_->record([](session_log& l) { l.opened = steady::now(); });
    return impl_->run(impl_);
}
void session::close()
{
    impl_->close();
}
session_log session::log() const
{
    std::lock_guard lock(impl_->mutex);
    return impl_->log;
}
void session::inspect(const std::function<void(const session_log&)>& f) const
{
    std::lock_guard lock(impl_->mutex);
    f(impl_->log);
}
const session_log& session::log_unlocked() const
{
    return impl_->log;
}

struct fake_server::state {
    state(asio::io_context& io, script s, asio::ssl::context* ctx, bool implicit)
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , conn(io.get_executor(), std::move(s), ctx, implicit)
    {
    }

    tcp::acceptor acceptor;
    session conn;

    static asio::awaitable<void> run(std::shared_ptr<state> self)
    {
        auto [aec] = co_await self->acceptor.async_accept(self->conn.socket(), use_tuple);
        if (aec)
            co_return;
        co_await self->conn.run();
    }
};

fake_server::fake_server(asio::io_context& io, script s, asio::ssl::context* tls, bool implicit_tls)
    : state_(std::make_shared<state>(io, std::move(s), tls, implicit_tls))
{
    asio::co_spawn(io, state::run(state_), asio::detached);
}

fake_server::~fake_server()
{
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    state_->conn.close();
}

std::uint16_t fake_server::port() const
{
    return state_->acceptor.local_endpoint().port();
}
const std::string& fake_server::received() const
{
    return state_->conn.log_unlocked().received;
}
const std::vector<std::string>& fake_server::mismatches() const
{
    return state_->conn.log_unlocked().mismatches;
}
bool fake_server::finished() const
{
    return state_->conn.log_unlocked().finished;
}

const std::string& test_pki()
{
    static const std::string dir = [] {
        const std::string d = "/tmp/mailroom-test-pki-" + std::to_string(::getuid());
        const std::string cmd = "/usr/bin/python3 " MAILROOM_SOURCE_DIR
                                "/test/integration/peers/make_test_pki.py " +
                                d + " >/dev/null";
        if (std::system(cmd.c_str()) != 0)
            throw std::runtime_error("make_test_pki.py failed");
        return d;
    }();
    return dir;
}

} // namespace mailroom::test
