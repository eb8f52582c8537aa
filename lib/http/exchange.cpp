// URLs, form encoding and the request/response exchange, without I/O (exchange.hpp).

#include "exchange.hpp"

#include "detail/resolver.hpp" // addresses_without_dns: which hosts are loopback

#include <mailroom/version.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/serializer.hpp>

#include <algorithm>
#include <charconv>
#include <limits>

namespace mailroom::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}

bool alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// A host name (letters, digits, '-', '.', '_') or an IPv4 literal: nothing to percent-decode,
// nothing a Host field or SNI can't carry. Names beyond ASCII come as A-labels.
bool plain_host(std::string_view h)
{
    return !h.empty() && h.size() <= 253 && std::all_of(h.begin(), h.end(), [](unsigned char c) {
        return alnum(c) || c == '-' || c == '.' || c == '_';
    });
}

// 127.0.0.0/8, ::1, "localhost" and names under ".localhost": what the resolver connects to
// without DNS, all of it loopback.
bool loopback(const std::string& host)
{
    const auto addrs = mailroom::detail::addresses_without_dns(host);
    return addrs && !addrs->empty() &&
           std::all_of(addrs->begin(), addrs->end(), [](auto& a) { return a.is_loopback(); });
}

} // namespace

result<url> url::parse(std::string_view text, diagnostics& diag)
{
    diag.clear();
    auto bad = [&](const char* field, std::string detail) -> result<url> {
        diag.field = field;
        diag.detail = std::move(detail);
        return make_error_code(error::invalid_url);
    };
    // Nothing a request line can't carry: spaces, controls, bytes beyond ASCII.
    for (unsigned char c : text)
        if (c <= 0x20 || c >= 0x7f)
            return bad("url", "a space, a control character or a byte beyond ASCII");
    if (text.find('#') != std::string_view::npos)
        return bad("url", "a fragment ('#')");

    url u;
    const auto colon = text.find("://");
    const std::string_view scheme =
        colon == std::string_view::npos ? std::string_view{} : text.substr(0, colon);
    if (iequals(scheme, "https"))
        u.tls = true;
    else if (iequals(scheme, "http"))
        u.tls = false;
    else
        return bad("scheme", "expected https:// (or http:// to a loopback address)");
    std::string_view rest = text.substr(colon + 3);
    const auto end = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, end);
    const std::string_view target = end == std::string_view::npos ? "" : rest.substr(end);
    if (authority.find('@') != std::string_view::npos)
        return bad("url", "user info ('user@'): credentials don't belong in a URL");

    std::string_view host, port;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            return bad("host", "'[' without ']'");
        host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return bad("host", "unexpected text after ']'");
            has_port = true;
            port = after.substr(1);
        }
        error_code ec;
        const auto a = asio::ip::make_address_v6(std::string(host), ec);
        if (ec || host.find('%') != std::string_view::npos) // no zone ids
            return bad("host", "not an IPv6 address: '" + std::string(host) + "'");
        u.host = a.to_string();
    } else {
        const auto c = authority.find(':');
        host = authority.substr(0, c);
        if (c != std::string_view::npos) {
            has_port = true;
            port = authority.substr(c + 1);
        }
        if (host.empty())
            return bad("host", "empty");
        if (!plain_host(host))
            return bad("host", "not a host name or an IP address: '" + std::string(host) + "'");
        u.host.resize(host.size());
        std::transform(host.begin(), host.end(), u.host.begin(), lower);
    }
    u.port = u.tls ? 443 : 80;
    if (has_port && !port.empty()) {
        unsigned p = 0;
        const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc{} || ptr != port.data() + port.size() || p == 0 || p > 65535)
            return bad("port", "not a number from 1 to 65535: '" + std::string(port) + "'");
        u.port = static_cast<std::uint16_t>(p);
    }
    if (!u.tls && !loopback(u.host))
        return bad("scheme", "http:// only to a loopback address (127.0.0.0/8, ::1, localhost); "
                             "use https://");
    if (target.empty())
        u.target = "/";
    else if (target.front() == '?')
        u.target = "/" + std::string(target);
    else
        u.target = std::string(target);
    return u;
}

std::string url::to_string() const
{
    std::string s = tls ? "https://" : "http://";
    s += detail::host_field(*this);
    return s + target;
}

std::string encode_form(const form& fields)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    auto put = [&](const std::string& s) {
        for (unsigned char c : s) {
            if (alnum(c) || c == '*' || c == '-' || c == '.' || c == '_') {
                out += static_cast<char>(c);
            } else if (c == ' ') {
                out += '+';
            } else {
                out += '%';
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
    };
    for (const auto& [name, value] : fields) {
        if (!out.empty())
            out += '&';
        put(name);
        out += '=';
        put(value);
    }
    return out;
}

namespace detail {

std::string host_field(const url& u)
{
    const bool v6 = u.host.find(':') != std::string::npos;
    std::string s = v6 ? "[" + u.host + "]" : u.host;
    if (u.port != (u.tls ? 443 : 80))
        s += ":" + std::to_string(u.port);
    return s;
}

std::string format_post(const url& u, const form& fields)
{
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, u.target, 11};
    req.set(bhttp::field::host, host_field(u));
    req.set(bhttp::field::user_agent, "mailroom/" MAILROOM_VERSION_STRING);
    req.set(bhttp::field::accept, "application/json");
    req.set(bhttp::field::content_type, "application/x-www-form-urlencoded");
    req.set(bhttp::field::connection, "close");
    req.body() = encode_form(fields);
    req.prepare_payload();
    // Serialized here, so the driver writes plain bytes.
    std::string out;
    bhttp::request_serializer<bhttp::string_body> sr{req};
    error_code ec;
    while (!ec && !sr.is_done()) {
        sr.next(ec, [&](error_code&, const auto& buffers) {
            for (const auto b : beast::buffers_range_ref(buffers))
                out.append(static_cast<const char*>(b.data()), b.size());
            sr.consume(beast::buffer_bytes(buffers));
        });
    }
    return out;
}

std::uint32_t retry_after_seconds(std::string_view v) noexcept
{
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return 0;
    std::uint64_t n = 0;
    for (char c : v) {
        n = n * 10 + static_cast<unsigned>(c - '0');
        if (n > std::numeric_limits<std::uint32_t>::max())
            return std::numeric_limits<std::uint32_t>::max();
    }
    return static_cast<std::uint32_t>(n);
}

exchange::exchange(const url& u, const form& fields, std::size_t max_response)
    : request_(format_post(u, fields))
    , max_(max_response)
{
    new_parser();
}

void exchange::new_parser()
{
    parser_.emplace();
    parser_->eager(true);
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(max_, std::numeric_limits<std::uint32_t>::max())));
    parser_->body_limit(max_);
}

exchange::state exchange::fail(error_code ec, std::string detail)
{
    st_ = state::failed;
    ec_ = ec;
    resp_ = {};
    resp_.diag = {"reading the response", std::move(detail)};
    return st_;
}

exchange::state exchange::on_read(std::string_view data)
{
    if (st_ != state::reading)
        return st_;
    received_ += data.size();
    pending_.append(data);
    while (!pending_.empty()) {
        // A server that doesn't speak HTTP at all fails at once, not at the deadline.
        if (!parser_->got_some()) {
            constexpr std::string_view magic = "HTTP/";
            const std::size_t n = std::min(magic.size(), pending_.size());
            if (std::string_view(pending_).substr(0, n) != magic.substr(0, n))
                return fail(error::http_protocol_error, "not an HTTP response");
        }
        error_code ec;
        const std::size_t used = parser_->put(boost::asio::buffer(pending_), ec);
        pending_.erase(0, used);
        if (ec == bhttp::error::need_more)
            break;
        if (ec == bhttp::error::header_limit || ec == bhttp::error::body_limit ||
            ec == bhttp::error::buffer_overflow)
            return fail(error::http_response_too_large,
                        "more than " + std::to_string(max_) + " bytes");
        if (ec)
            return fail(error::http_protocol_error, "not HTTP/1.1: " + ec.message());
        if (parser_->is_done()) {
            const unsigned status = parser_->get().result_int();
            if (status == 101)
                return fail(error::http_protocol_error, "101 Switching Protocols, unasked");
            if (status >= 200)
                return finish();
            new_parser(); // 1xx: an interim response; the final one follows
            continue;
        }
        if (used == 0)
            break;
    }
    if (received_ > max_)
        return fail(error::http_response_too_large, "more than " + std::to_string(max_) + " bytes");
    return st_;
}

exchange::state exchange::on_eof(bool clean)
{
    if (st_ != state::reading)
        return st_;
    if (received_ == 0)
        return fail(error::connection_lost, "the server closed the connection without a response");
    error_code ec;
    parser_->put_eof(ec);
    if (ec || !parser_->is_done())
        return fail(error::connection_lost, "the connection closed before the response was whole");
    // The body ran to the close: only a TLS close_notify proves nothing was cut off.
    if (!clean)
        return fail(error::connection_lost, "closed without TLS close_notify: the body may be cut "
                                            "short");
    return finish();
}

exchange::state exchange::finish()
{
    auto& msg = parser_->get();
    const unsigned status = msg.result_int();
    if (status >= 300 && status < 400)
        return fail(error::http_redirect_refused,
                    "the server answered " + std::to_string(status) +
                        "; redirects are never followed (is the URL right?)");
    resp_.status = status;
    resp_.content_type = std::string(msg[bhttp::field::content_type]);
    resp_.retry_after = retry_after_seconds(msg[bhttp::field::retry_after]);
    resp_.body = std::move(msg.body());
    st_ = state::done;
    return st_;
}

} // namespace detail

} // namespace mailroom::http
