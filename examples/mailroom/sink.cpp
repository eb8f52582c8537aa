// mailroom sink: a local SMTP server that accepts everything, for development and demos.
//
// It answers pipelined commands in one write per flight, so it can keep up with a pipelining
// client; it can store what it receives in a Maildir. It is not a mail server: no relaying, no
// authentication, no queue.

#include "cli.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace mailroom::cli {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t max_line = 4096;             // command lines; RFC 5321 asks for 512
constexpr std::uint64_t max_message = 64ull << 20; // SIZE advertised and enforced

struct sink_stats {
    std::uint64_t connections = 0;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
};

struct sink_config {
    std::filesystem::path maildir;
    asio::ssl::context* tls = nullptr;
    sink_stats* stats = nullptr;
};

std::string upper_word(std::string_view line)
{
    std::string w;
    for (char c : line) {
        if (c == ' ' || c == ':')
            break;
        w += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return w;
}

// Writes a message into maildir/new by way of maildir/tmp (the Maildir delivery protocol).
bool store(const std::filesystem::path& maildir, const std::string& data, std::string& name)
{
    static std::atomic<std::uint64_t> counter{0};
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    name = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "." +
           std::to_string(::getpid()) + "_" + std::to_string(++counter) + ".mailroom-sink";
    const auto tmp = maildir / "tmp" / name;
    {
        std::ofstream f(tmp, std::ios::binary);
        f.write(data.data(), static_cast<std::streamsize>(data.size()));
        if (!f.flush())
            return false;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, maildir / "new" / name, ec);
    return !ec;
}

class session {
public:
    session(tcp::socket s, const sink_config& cfg)
        : stream_(std::move(s), cfg.tls ? *cfg.tls : plain_ctx())
        , cfg_(cfg)
    {
    }

    static asio::ssl::context& plain_ctx()
    {
        static asio::ssl::context c(asio::ssl::context::tls_server);
        return c;
    }

    asio::awaitable<void> run()
    {
        ++cfg_.stats->connections;
        out_ = "220 mailroom-sink ESMTP ready\r\n";
        if (!co_await flush())
            co_return;
        for (;;) {
            std::string line;
            const int got = next_line(line);
            if (got < 0) {
                out_ += "500 5.5.2 line too long\r\n";
                if (!co_await flush())
                    co_return;
                co_return;
            }
            if (got == 0) {
                // No complete line buffered: answer what was asked so far, in one write.
                if (!co_await flush() || !co_await read_more())
                    co_return;
                continue;
            }
            if (!co_await command(line))
                co_return;
        }
    }

private:
    // 1: a line in `line`; 0: need more input; -1: over-long line.
    int next_line(std::string& line)
    {
        const auto p = in_.find("\r\n", pos_);
        if (p == std::string::npos) {
            if (in_.size() - pos_ > max_line)
                return -1;
            return 0;
        }
        line.assign(in_, pos_, p - pos_);
        pos_ = p + 2;
        return line.size() > max_line ? -1 : 1;
    }

    asio::awaitable<bool> read_more()
    {
        if (pos_ > 0) {
            in_.erase(0, pos_);
            pos_ = 0;
        }
        const std::size_t old = in_.size();
        in_.resize(old + 64 * 1024);
        auto buf = asio::buffer(in_.data() + old, 64 * 1024);
        boost::system::error_code ec;
        std::size_t n = 0;
        if (tls_)
            std::tie(ec, n) = co_await stream_.async_read_some(buf, use_tuple);
        else
            std::tie(ec, n) = co_await stream_.next_layer().async_read_some(buf, use_tuple);
        in_.resize(old + n);
        co_return n > 0;
    }

    asio::awaitable<bool> flush()
    {
        if (out_.empty())
            co_return true;
        boost::system::error_code ec;
        if (tls_)
            std::tie(ec, std::ignore) =
                co_await asio::async_write(stream_, asio::buffer(out_), use_tuple);
        else
            std::tie(ec, std::ignore) =
                co_await asio::async_write(stream_.next_layer(), asio::buffer(out_), use_tuple);
        out_.clear();
        co_return !ec;
    }

    // Reads message data up to the line holding only '.', undoing dot-stuffing
    // (RFC 5321 §4.5.2). Returns false when the connection ends first.
    asio::awaitable<bool> read_data(std::string& data, bool& too_big)
    {
        for (;;) {
            std::string line;
            const int got = next_line_unbounded(line);
            if (got == 0) {
                if (!co_await read_more())
                    co_return false;
                continue;
            }
            if (line == ".")
                co_return true;
            if (line.starts_with("."))
                line.erase(0, 1);
            if (data.size() + line.size() + 2 > max_message)
                too_big = true;
            if (!too_big) {
                data += line;
                data += "\r\n";
            }
        }
    }

    int next_line_unbounded(std::string& line)
    {
        const auto p = in_.find("\r\n", pos_);
        if (p == std::string::npos)
            return 0;
        line.assign(in_, pos_, p - pos_);
        pos_ = p + 2;
        return 1;
    }

    asio::awaitable<bool> command(const std::string& line)
    {
        const std::string verb = upper_word(line);
        if (verb == "EHLO" || verb == "HELO") {
            reset();
            if (verb == "HELO") {
                out_ += "250 mailroom-sink\r\n";
            } else {
                out_ += "250-mailroom-sink\r\n250-PIPELINING\r\n250-SIZE " +
                        std::to_string(max_message) +
                        "\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n";
                if (cfg_.tls && !tls_)
                    out_ += "250-STARTTLS\r\n";
                out_ += "250 HELP\r\n";
            }
        } else if (verb == "STARTTLS" && cfg_.tls && !tls_) {
            out_ += "220 2.0.0 ready to start TLS\r\n";
            if (!co_await flush())
                co_return false;
            // RFC 3207 §4.2: nothing received before TLS carries over.
            in_.clear();
            pos_ = 0;
            auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::server, use_tuple);
            if (ec)
                co_return false;
            tls_ = true;
            reset();
        } else if (verb == "MAIL") {
            const auto size = line.find(" SIZE=");
            if (size != std::string::npos &&
                std::strtoull(line.c_str() + size + 6, nullptr, 10) > max_message) {
                out_ += "552 5.3.4 message too big\r\n";
            } else {
                reset();
                mail_ = true;
                out_ += "250 2.1.0 ok\r\n";
            }
        } else if (verb == "RCPT") {
            if (!mail_) {
                out_ += "503 5.5.1 MAIL first\r\n";
            } else {
                ++rcpts_;
                out_ += "250 2.1.5 ok\r\n";
            }
        } else if (verb == "DATA") {
            if (!mail_ || rcpts_ == 0) {
                out_ += "554 5.5.1 no valid recipients\r\n";
                co_return true;
            }
            out_ += "354 end data with <CR><LF>.<CR><LF>\r\n";
            if (!co_await flush())
                co_return false;
            std::string data;
            bool too_big = false;
            if (!co_await read_data(data, too_big))
                co_return false;
            if (too_big) {
                out_ += "552 5.3.4 message too big\r\n";
            } else {
                std::string name = std::to_string(cfg_.stats->messages + 1);
                if (!cfg_.maildir.empty() && !store(cfg_.maildir, data, name)) {
                    out_ += "451 4.3.0 cannot store the message\r\n";
                } else {
                    ++cfg_.stats->messages;
                    cfg_.stats->bytes += data.size();
                    out_ += "250 2.0.0 ok: queued as " + name + "\r\n";
                }
            }
            reset();
        } else if (verb == "RSET") {
            reset();
            out_ += "250 2.0.0 ok\r\n";
        } else if (verb == "NOOP") {
            out_ += "250 2.0.0 ok\r\n";
        } else if (verb == "QUIT") {
            out_ += "221 2.0.0 bye\r\n";
            co_await flush();
            co_return false;
        } else {
            out_ += "502 5.5.1 command not implemented\r\n";
        }
        co_return true;
    }

    void reset()
    {
        mail_ = false;
        rcpts_ = 0;
    }

    asio::ssl::stream<tcp::socket> stream_;
    const sink_config& cfg_;
    bool tls_ = false;
    bool mail_ = false;
    std::size_t rcpts_ = 0;
    std::string in_;
    std::size_t pos_ = 0;
    std::string out_;
};

asio::awaitable<void> serve(tcp::socket s, const sink_config& cfg)
{
    session ss(std::move(s), cfg);
    co_await ss.run();
}

asio::awaitable<void> accept_loop(tcp::acceptor& acc, const sink_config& cfg)
{
    for (;;) {
        auto [ec, sock] = co_await acc.async_accept(use_tuple);
        if (ec)
            co_return;
        error_code ignored;
        sock.set_option(tcp::no_delay(true), ignored);
        asio::co_spawn(acc.get_executor(), serve(std::move(sock), cfg), asio::detached);
    }
}

tcp::endpoint parse_listen(const std::string& v)
{
    const auto colon = v.rfind(':');
    if (colon == std::string::npos)
        throw failure(ex_usage, "--listen: expected ADDRESS:PORT");
    std::string host = v.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
    const std::string port = v.substr(colon + 1);
    char* end = nullptr;
    const unsigned long p = std::strtoul(port.c_str(), &end, 10);
    if (ec || port.empty() || *end || p > 65535)
        throw failure(ex_usage, "--listen: expected ADDRESS:PORT, e.g. 127.0.0.1:2525");
    return {addr, static_cast<unsigned short>(p)};
}

} // namespace

const char* sink_usage()
{
    return "usage: mailroom sink [--listen 127.0.0.1:2525] [--maildir DIR]\n"
           "                     [--tls-cert FILE --tls-key FILE] [--max-seconds N]\n"
           "A local SMTP server that accepts every message (PIPELINING, SIZE, 8BITMIME,\n"
           "SMTPUTF8, STARTTLS with a certificate), optionally storing them in a Maildir.\n"
           "Prints 'listening on ADDRESS:PORT' first (port 0 picks a free one); stops on\n"
           "SIGINT/SIGTERM or after --max-seconds, printing what it received.\n";
}

int sink_main(std::span<char*> argv)
{
    arg_reader args(argv);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 2525);
    std::string maildir, cert, key;
    long max_seconds = 0;
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::printf("%s", sink_usage());
            return ex_ok;
        }
        if (flag == "--version") {
            print_version();
            return ex_ok;
        }
        if (flag == "--listen")
            ep = parse_listen(args.value());
        else if (flag == "--maildir")
            maildir = args.value();
        else if (flag == "--tls-cert")
            cert = args.value();
        else if (flag == "--tls-key")
            key = args.value();
        else if (flag == "--max-seconds")
            max_seconds = std::strtol(args.value().c_str(), nullptr, 10);
        else
            throw failure(ex_usage, "sink: unknown option " + std::string(flag));
    }
    if (cert.empty() != key.empty())
        throw failure(ex_usage, "--tls-cert and --tls-key go together");

    sink_stats stats;
    sink_config cfg;
    cfg.stats = &stats;
    std::optional<asio::ssl::context> tls;
    if (!cert.empty()) {
        tls.emplace(asio::ssl::context::tls_server);
        error_code ec;
        tls->use_certificate_chain_file(cert, ec);
        if (!ec)
            tls->use_private_key_file(key, asio::ssl::context::pem, ec);
        if (ec)
            throw failure(ex_noinput, "--tls-cert/--tls-key: " + ec.message());
        cfg.tls = &*tls;
    }
    if (!maildir.empty()) {
        cfg.maildir = maildir;
        std::error_code ec;
        for (const char* sub : {"tmp", "new", "cur"})
            std::filesystem::create_directories(cfg.maildir / sub, ec);
        if (ec)
            throw failure(73, "--maildir: cannot create '" + maildir + "': " + ec.message());
    }

    asio::io_context io;
    tcp::acceptor acc(io);
    error_code ec;
    acc.open(ep.protocol(), ec);
    if (!ec)
        acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec)
        acc.bind(ep, ec);
    if (!ec)
        acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw failure(69, "cannot listen on " + ep.address().to_string() + ":" +
                              std::to_string(ep.port()) + ": " + ec.message());
    // Caught before anyone is told where to connect: a SIGINT or SIGTERM sent as soon as the
    // "listening" line is read still ends with the count, never with the default action.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](error_code, int) { io.stop(); });
    const auto local = acc.local_endpoint();
    std::printf("listening on %s:%u\n", local.address().to_string().c_str(), local.port());
    std::fflush(stdout);
    asio::steady_timer limit(io);
    if (max_seconds > 0) {
        limit.expires_after(std::chrono::seconds(max_seconds));
        limit.async_wait([&](error_code e) {
            if (!e)
                io.stop();
        });
    }
    asio::co_spawn(io, accept_loop(acc, cfg), asio::detached);
    io.run();
    std::printf("received %llu messages (%llu octets) on %llu connections\n",
                static_cast<unsigned long long>(stats.messages),
                static_cast<unsigned long long>(stats.bytes),
                static_cast<unsigned long long>(stats.connections));
    return ex_ok;
}

} // namespace mailroom::cli
