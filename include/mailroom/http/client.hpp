// mailroom::http::client: HTTPS requests with Boost.Beast over Asio's OpenSSL stream, for the
// small exchanges the library needs (OAuth2 token endpoints; later HTTP API transports).
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/logger.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailroom::http {

namespace asio = boost::asio;

/// Steady-clock durations.
using duration = std::chrono::steady_clock::duration;

/// An absolute http(s) URL, split for a request: `https://host[:port]/path?query`.
struct url {
    /// TLS (https). Plain http is accepted only for a loopback host (127.0.0.0/8, ::1,
    /// "localhost"): secrets never cross a network in the clear.
    bool tls = true;
    std::string host{};       ///< a host name or an IP address (IPv6 without brackets)
    std::uint16_t port = 0;   ///< 443 for https, 80 for http when the URL has none
    std::string target = "/"; ///< path and query, as sent in the request line

    /// Parses `text`; invalid_url (with the reason in `diag`) when it can't be used: not
    /// http(s), no host, a port out of range, user info, a fragment, spaces or controls.
    MAILROOM_API static result<url> parse(std::string_view text, diagnostics& diag);
    /// The URL back as text (`https://host:port/target`, the port only when not the default).
    MAILROOM_API std::string to_string() const;
};

/// How the server's certificate is checked: the chain against trust anchors, and the name
/// against the URL's host (also sent as SNI).
struct tls_options {
    /// Check the chain and the name. Off only for tests with throwaway certificates.
    bool verify = true;
    /// PEM trust anchors in a file; with ca_dir empty too: the system's default store.
    std::string ca_file{};
    /// A directory of PEM trust anchors under hashed names (`openssl rehash`), besides ca_file.
    std::string ca_dir{};
};

/// Limits and settings shared by a client's requests.
struct options {
    /// Name resolution and the TCP connect, every address tried (RFC 8305).
    duration connect_timeout = std::chrono::seconds(10);
    /// The TLS handshake.
    duration tls_handshake_timeout = std::chrono::seconds(10);
    /// Writing the request and reading the whole response.
    duration response_timeout = std::chrono::seconds(30);
    /// The most a response (status line, headers and body) may hold; more is
    /// http_response_too_large. Token responses are a few KiB.
    std::size_t max_response_size = 64 * 1024;
    /// Certificate checks.
    http::tls_options tls{};
    /// Name servers instead of the system's, as smtp::client_options::dns_servers.
    std::string dns_servers{};
    /// Where the client's log lines go. Request and response bodies are never logged.
    logger log{};
};

/// One response: any status (a 4xx or 5xx is a response, not an error code; a 3xx is
/// http_redirect_refused).
struct response {
    unsigned status = 0;        ///< e.g. 200
    std::string content_type{}; ///< the Content-Type field, as sent
    std::string body{};         ///< the body, de-chunked
    /// Retry-After in seconds when the server sent a delay (429, 503); 0 otherwise.
    std::uint32_t retry_after = 0;
    /// When the request failed: the step (e.g. "connecting to host:443", "TLS handshake",
    /// "reading the response") and why. Empty on success.
    diagnostics diag{};
};

/// The name/value pairs of an application/x-www-form-urlencoded body, in order.
using form = std::vector<std::pair<std::string, std::string>>;

/// Encodes `fields` as application/x-www-form-urlencoded (WHATWG URL: space as '+',
/// everything but `*-._` and alphanumerics percent-encoded).
MAILROOM_API std::string encode_form(const form& fields);

namespace detail {
struct client_impl;
}

/// HTTPS requests, one connection each (a token endpoint is asked about once an hour:
/// keeping a connection open isn't worth its state). Trust anchors are loaded once, on the
/// first request. Each request has deadlines for connect, handshake and the response; the
/// response is capped in size; redirects are refused; the certificate's chain and name are
/// checked and SNI sent. Thread-compatible: use a client from one strand.
class MAILROOM_API client {
public:
    /// The executor requests run on.
    using executor_type = asio::any_io_executor;

    /// A client making its requests on `ex`. Nothing is loaded or connected until the first.
    client(executor_type ex, options o = {});
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// POSTs `fields` form-encoded to `u` (`Accept: application/json`). Completes with the
    /// response, or: invalid_url, connect_timeout / a network error, tls_handshake_failed,
    /// certificate_rejected, tls_handshake_timeout, tls_configuration_invalid (a CA file that
    /// can't be loaded), http_timeout, http_response_too_large, http_redirect_refused,
    /// http_protocol_error, connection_lost; operation_aborted after close(). On failure
    /// the response's `diag` says which step failed and why.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, response)) Token = asio::deferred_t>
    auto async_post_form(url u, form fields, Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, response)>(
            [](auto handler, std::shared_ptr<detail::client_impl> i, url to, form f) {
                initiate_post(std::move(i), std::move(to), std::move(f), std::move(handler));
            },
            token, impl_, std::move(u), std::move(fields));
    }

    /// Ends every request in flight with operation_aborted; later requests fail the same way.
    void close() noexcept;

    /// The options given.
    const options& get_options() const noexcept;

private:
    static void initiate_post(std::shared_ptr<detail::client_impl> i, url u, form f,
                              asio::any_completion_handler<void(error_code, response)> h);

    std::shared_ptr<detail::client_impl> impl_;
};

} // namespace mailroom::http
