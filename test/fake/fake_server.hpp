// A scripted SMTP peer on 127.0.0.1 for the faults real servers won't produce: wrong replies,
// injected bytes, stalls, closes at any point, broken TLS. One connection per script; see
// fake_listener.hpp for a server that plays a script on each of many connections.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mailroom::test {

namespace asio = boost::asio;

/// The "accept everything" mode of script::sink: an SMTP sink for any number of pipelined
/// transactions, with faults placed by message and command.
struct sink_options {
    /// Sent first; empty: none (the script greeted already).
    std::string greeting = "220 fake.test ESMTP";
    /// The EHLO reply's extensions. "AUTH PLAIN" makes it answer AUTH PLAIN with 235.
    std::vector<std::string> extensions = {"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"};
    /// Closes the connection right after accepting this many messages; 0: never.
    std::size_t close_after = 0;

    /// Replaces, delays or drops the reply to one command. Each fault fires once.
    struct fault {
        /// The transaction, counted from 0 by MAIL commands on this connection. MAIL, RCPT, DATA
        /// and "." belong to theirs; other commands count with the next one.
        std::size_t message = 0;
        /// "MAIL", "RCPT", "DATA", "." (the final dot), "RSET", "NOOP", "QUIT", "EHLO", "AUTH".
        std::string command;
        /// The reply instead of the usual one ("421 ..." also closes); empty: the usual one.
        std::string reply{};
        std::chrono::milliseconds delay{0}; ///< before replying (or dropping)
        bool drop = false;                  ///< close the connection instead of replying
    };
    std::vector<fault> faults{};
};

/// What the server does, step by step, for one client connection.
class script {
public:
    enum class kind { reply, raw, expect, data, delay, hang, close, starttls, rst, sink };
    struct step {
        kind k;
        std::string text;
        std::chrono::milliseconds wait{0};
        std::shared_ptr<const sink_options> sink{};
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
    /// Serves transactions until the connection ends (see sink_options); the last step.
    script& sink(sink_options o = {})
    {
        steps_.push_back({kind::sink, {}, {}, std::make_shared<const sink_options>(std::move(o))});
        return *this;
    }

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

/// What one connection's client did, as the server saw it.
struct session_log {
    /// Everything the client sent, in order (after TLS: the decrypted bytes).
    std::string received;
    /// Script steps that failed (an expect that didn't match, an early close), for CHECKs.
    std::vector<std::string> mismatches;
    /// sink: the command lines, without CRLF (AUTH lines as "AUTH <mechanism>").
    std::vector<std::string> commands;
    /// sink: the Message-ID header of each message whose data ended (the final dot arrived).
    std::vector<std::string> messages;
    /// sink: of those, the ones it accepted (2xx to the final dot).
    std::vector<std::string> accepted;
    /// sink: the user of each AUTH PLAIN it accepted.
    std::vector<std::string> auth_users;
    bool quit = false;     ///< sink: QUIT received
    bool finished = false; ///< the script ran to its end (or closed as it said)
    std::chrono::steady_clock::time_point opened{};                ///< accepted
    std::optional<std::chrono::steady_clock::time_point> closed{}; ///< the connection ended
};

/// Plays one script on one connection: the engine of fake_server and fake_listener.
/// Thread safety: the session runs on its socket's executor; log() may be called from any
/// thread.
class session {
public:
    /// `tls`: a context with the server's certificate, for script::starttls and `implicit_tls`.
    session(asio::any_io_executor ex, script s, asio::ssl::context* tls = nullptr,
            bool implicit_tls = false);
    ~session();

    /// The socket to accept into.
    asio::ip::tcp::socket& socket();
    /// Plays the script. Returns when the connection ends, or when a step fails (the
    /// connection then stays open until close()).
    asio::awaitable<void> run();
    /// Closes the connection. Not concurrently with the session's own work.
    void close();
    /// A copy of what it saw so far.
    session_log log() const;
    /// Calls `f` with what it saw so far, under the session's lock.
    void inspect(const std::function<void(const session_log&)>& f) const;
    /// The same without a copy or a lock, while nothing runs the session.
    const session_log& log_unlocked() const;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
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
