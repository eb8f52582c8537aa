// Private: one HTTP/1.1 request and its response, without I/O. The driver (client.cpp) writes
// request_bytes(), feeds what it reads to on_read() and tells on_eof() when the peer closed;
// the exchange says when the response is whole and what it means: a response, or the error
// and the diagnostics (a redirect, too large, not HTTP, cut short). Beast's response parser
// does the parsing (its put() takes bytes, no stream).
#pragma once

#include <mailroom/http/client.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace mailroom::http::detail {

/// The request's head and form-encoded body, as written: POST, HTTP/1.1, Host, User-Agent,
/// Accept: application/json, Content-Type, Content-Length, Connection: close.
std::string format_post(const url& u, const form& fields);

/// The Host field for `u`: the host (IPv6 in brackets) and the port when not the default.
std::string host_field(const url& u);

/// Retry-After as seconds: delta-seconds (RFC 9110 §10.2.3), saturated; 0 for anything else
/// (an HTTP-date, garbage, nothing).
std::uint32_t retry_after_seconds(std::string_view value) noexcept;

class exchange {
public:
    enum class state { reading, done, failed };

    /// `max_response`: the most the response (head and body, as received) may hold.
    exchange(const url& u, const form& fields, std::size_t max_response);

    /// The request to write.
    const std::string& request_bytes() const noexcept { return request_; }

    /// Bytes read from the server.
    state on_read(std::string_view data);
    /// The server closed the connection. `clean`: with TLS, after its close_notify (or plain
    /// TCP); false when a TLS peer just closed, which can't end a body that runs to the close.
    state on_eof(bool clean);

    state current() const noexcept { return st_; }
    /// When failed: the error; its step and reason are in the response's diag.
    error_code error() const noexcept { return ec_; }
    /// The response (done), or one holding only the diagnostics (failed).
    response take() { return std::move(resp_); }

private:
    using parser_type = boost::beast::http::response_parser<boost::beast::http::string_body>;

    state fail(error_code ec, std::string detail);
    state finish();
    void new_parser();

    std::string request_;
    std::size_t max_;
    std::size_t received_ = 0;
    std::string pending_; // bytes read and not yet taken by the parser
    std::optional<parser_type> parser_;
    state st_ = state::reading;
    error_code ec_{};
    response resp_{};
};

} // namespace mailroom::http::detail
