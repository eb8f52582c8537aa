// A scripted SMTP peer on 127.0.0.1 for the faults real servers won't produce: wrong replies,
// injected bytes, stalls, closes at any point, broken TLS. One connection per script.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace mailroom::test {

namespace asio = boost::asio;

/// What the server does, step by step, for one client connection.
class script {
public:
    enum class kind { reply, raw, expect, data, delay, hang, close, starttls, rst };
    struct step {
        kind k;
        std::string text;
        std::chrono::milliseconds wait{0};
    };

    /// Sends `lines` (several lines joined by "\r\n") and a final CRLF.
    script& reply(std::string lines) { return add(kind::reply, std::move(lines)); }
    /// Sends bytes as they are.
    script& raw(std::string bytes) { return add(kind::raw, std::move(bytes)); }
    /// Reads one command line; it must start with `prefix` (case-insensitive).
    script& expect(std::string prefix) { return add(kind::expect, std::move(prefix)); }
    /// Reads message data up to and including the "\r\n.\r\n" that ends it.
    script& data() { return add(kind::data, {}); }
    script& delay(std::chrono::milliseconds d)
    {
        steps_.push_back({kind::delay, {}, d});
        return *this;
    }
    /// Reads and discards until the client goes away; sends nothing.
    script& hang() { return add(kind::hang, {}); }
    script& close() { return add(kind::close, {}); }
    /// Closes with a TCP reset (SO_LINGER 0).
    script& reset() { return add(kind::rst, {}); }
    /// TLS server handshake with the server's certificate.
    script& starttls() { return add(kind::starttls, {}); }

    /// The usual opening: greeting, EHLO with `extensions` (one per line).
    script& greet(std::vector<std::string> extensions = {"PIPELINING", "8BITMIME"});

    const std::vector<step>& steps() const { return steps_; }

private:
    script& add(kind k, std::string t)
    {
        steps_.push_back({k, std::move(t)});
        return *this;
    }
    std::vector<step> steps_;
};

/// Listens on 127.0.0.1:0, accepts one connection and plays the script on it.
class fake_server {
public:
    /// `tls`: a context with the server's certificate, for script::starttls and `implicit`.
    fake_server(asio::io_context& io, script s, asio::ssl::context* tls = nullptr,
                bool implicit_tls = false);
    ~fake_server();

    std::uint16_t port() const;
    /// Everything the client sent, in order (after TLS: the decrypted bytes).
    const std::string& received() const;
    /// Script steps that failed (an expect that didn't match, an early close), for CHECKs.
    const std::vector<std::string>& mismatches() const;
    /// True once the script ran to its end.
    bool finished() const;

    struct state;

private:
    std::shared_ptr<state> state_;
};

/// A PEM test PKI (see test/integration/peers/make_test_pki.py), made once per test run.
/// Returns its directory.
const std::string& test_pki();

} // namespace mailroom::test
