// A scripted SMTP server for many connections: the k-th connection (from 0) plays the script a
// factory makes for k, and the server records what each connection saw.
#pragma once

#include "fake_server.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mailroom::test {

/// Listens on 127.0.0.1:0 and accepts any number of connections, each on its own strand, so
/// an io_context run by several threads is fine. Every accessor may be called from any thread.
///
///     fake_listener srv(io, [](std::size_t k) {
///         return k == 0 ? script().reply("421 4.3.2 busy").close() : script().sink();
///     });
class fake_listener {
public:
    using factory = std::function<script(std::size_t)>;

    /// Starts listening; `make(k)` gives the script for connection k.
    fake_listener(asio::io_context& io, factory make);
    /// The same with a context holding the server's certificate, for script::starttls (which
    /// must outlive the listener).
    fake_listener(asio::io_context& io, factory make, asio::ssl::context* tls);
    /// Stops listening and closes every connection; not while other threads run the
    /// io_context.
    ~fake_listener();

    std::uint16_t port() const;
    /// Connections accepted so far.
    std::size_t accepted() const;
    /// Connections open now, and the most ever open at once (as the server saw them: a close
    /// by the client counts once the server has read it).
    std::size_t open() const;
    std::size_t max_open() const;
    /// What each connection saw, in accept order.
    std::vector<session_log> sessions() const;
    /// Over all connections: how often a message with this Message-ID was accepted (2xx to its
    /// final dot), and how often its data arrived at all.
    std::size_t accepted_count(const std::string& message_id) const;
    std::size_t data_count(const std::string& message_id) const;
    /// Messages accepted over all connections.
    std::size_t total_accepted() const;
    /// Every connection's failed script steps, as "#k: what".
    std::vector<std::string> mismatches() const;

    struct state;

private:
    std::shared_ptr<state> state_;
};

} // namespace mailroom::test
