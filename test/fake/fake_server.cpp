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
#include <stdexcept>

#include <unistd.h>

namespace mailroom::test {

using tcp = asio::ip::tcp;
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

struct fake_server::state : std::enable_shared_from_this<state> {
    state(asio::io_context& io, script s, asio::ssl::context* ctx, bool implicit)
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , stream(io, ctx ? *ctx : fallback_ctx())
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

    tcp::acceptor acceptor;
    asio::ssl::stream<tcp::socket> stream;
    std::vector<script::step> steps;
    bool implicit_tls;
    bool have_tls;
    bool tls = false;
    bool done = false;
    std::string rbuf;
    std::string received;
    std::vector<std::string> mismatches;

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
        received.append(buf, n);
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
        for (;;) {
            const auto p = rbuf.find(delim);
            if (p != std::string::npos) {
                out = rbuf.substr(0, p + delim.size());
                rbuf.erase(0, p + delim.size());
                co_return true;
            }
            if (!co_await read_more())
                co_return false;
        }
    }

    asio::awaitable<void> run()
    {
        auto self = shared_from_this();
        auto [aec, sock] = co_await acceptor.async_accept(use_tuple);
        if (aec)
            co_return;
        stream.next_layer() = std::move(sock);
        if (implicit_tls) {
            auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
            if (hec) {
                mismatches.push_back("implicit TLS handshake: " + hec.message());
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
                    mismatches.push_back("connection closed; expected " + s.text);
                    co_return;
                }
                const bool match =
                    line.size() >= s.text.size() &&
                    std::equal(s.text.begin(), s.text.end(), line.begin(), [](char a, char b) {
                        return std::tolower(static_cast<unsigned char>(a)) ==
                               std::tolower(static_cast<unsigned char>(b));
                    });
                if (!match) {
                    mismatches.push_back("expected " + s.text + ", got " + line);
                    co_return;
                }
                break;
            }
            case script::kind::data: {
                std::string body;
                // Message data ends at a line holding only '.'; the data may be empty.
                if (rbuf.starts_with(".\r\n")) {
                    rbuf.erase(0, 3);
                    break;
                }
                if (!co_await read_until("\r\n.\r\n", body)) {
                    mismatches.push_back("connection closed in message data");
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
                co_return;
            case script::kind::close: {
                boost::system::error_code ignored;
                stream.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
                stream.next_layer().close(ignored);
                done = true;
                co_return;
            }
            case script::kind::rst: {
                boost::system::error_code ignored;
                stream.next_layer().set_option(asio::socket_base::linger(true, 0), ignored);
                stream.next_layer().close(ignored);
                done = true;
                co_return;
            }
            case script::kind::starttls: {
                if (!have_tls) {
                    mismatches.push_back("starttls step without a TLS context");
                    co_return;
                }
                auto [hec] =
                    co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
                if (hec) {
                    mismatches.push_back("TLS handshake: " + hec.message());
                    co_return;
                }
                tls = true;
                break;
            }
            }
        }
        done = true;
        // Keep the connection until the client closes it.
        while (co_await read_more())
            rbuf.clear();
    }
};

fake_server::fake_server(asio::io_context& io, script s, asio::ssl::context* tls, bool implicit_tls)
    : state_(std::make_shared<state>(io, std::move(s), tls, implicit_tls))
{
    asio::co_spawn(io, state_->run(), asio::detached);
}

fake_server::~fake_server()
{
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    state_->stream.next_layer().close(ignored);
}

std::uint16_t fake_server::port() const
{
    return state_->acceptor.local_endpoint().port();
}
const std::string& fake_server::received() const
{
    return state_->received;
}
const std::vector<std::string>& fake_server::mismatches() const
{
    return state_->mismatches;
}
bool fake_server::finished() const
{
    return state_->done;
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
