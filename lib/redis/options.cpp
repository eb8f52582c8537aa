// redis::options::from_url: redis://[[user][:password]@]host[:port][/db] and rediss://.
// The userinfo is RFC 3986 §3.2.1's, percent-decoded (§2.1); an IPv6 literal is bracketed
// (§3.2.2). The password never reaches a diagnostic.

#include "codec.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <limits>

namespace mailroom::redis {

namespace {

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// RFC 3986 §2.1. False on a '%' not followed by two hex digits.
bool percent_decode(std::string_view in, std::string& out)
{
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size())
            return false;
        const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0)
            return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

bool all_digits(std::string_view s)
{
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// A host name (RFC 1123 letters, digits, '-', '.', and '_' as some service names have) or an
// IPv4 literal.
bool plain_host(std::string_view h)
{
    return !h.empty() && std::all_of(h.begin(), h.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_';
    });
}

} // namespace

result<options> options::from_url(std::string_view url, diagnostics& diag)
{
    diag.clear();
    auto bad = [&](const char* field, std::string detail) -> result<options> {
        diag.field = field;
        diag.detail = std::move(detail);
        return make_error_code(error::invalid_redis_options);
    };
    options o;
    const auto colon = url.find("://");
    if (colon == std::string_view::npos)
        return bad("scheme", "expected redis:// or rediss://");
    const auto scheme = url.substr(0, colon);
    if (iequals(scheme, "redis"))
        o.tls = false;
    else if (iequals(scheme, "rediss"))
        o.tls = true;
    else
        return bad("scheme", "expected redis:// or rediss://");
    std::string_view rest = url.substr(colon + 3);
    if (rest.find_first_of("?#") != std::string_view::npos)
        return bad("url", "query and fragment are not supported");

    // The userinfo ends at the last '@': a password's own '@' and '/' survive unencoded.
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto sep = userinfo.find(':');
        const std::string_view user = userinfo.substr(0, sep);
        if (!percent_decode(user, o.username))
            return bad("username", "bad percent-encoding");
        if (sep != std::string_view::npos &&
            !percent_decode(userinfo.substr(sep + 1), o.password)) {
            o.password.clear();
            return bad("password", "bad percent-encoding");
        }
    }

    // host[:port][/db]
    const auto slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    std::string_view host, port;
    if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos)
            return bad("host", "'[' without ']'");
        host = hostport.substr(1, close - 1);
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return bad("host", "unexpected text after ']'");
            port = after.substr(1);
            if (port.empty())
                return bad("port", "empty");
        }
        boost::system::error_code ec;
        boost::asio::ip::make_address_v6(std::string(host), ec);
        if (ec)
            return bad("host", "not an IPv6 address in brackets");
    } else {
        const auto c = hostport.find(':');
        host = hostport.substr(0, c);
        if (c != std::string_view::npos) {
            port = hostport.substr(c + 1);
            if (port.empty())
                return bad("port", "empty");
        }
        if (host.empty())
            return bad("host", "empty");
        if (!plain_host(host))
            return bad("host", "not a host name or an IP address");
    }
    o.host = std::string(host);
    if (!port.empty()) {
        if (!all_digits(port) || port.size() > 5 || std::stoul(std::string(port)) == 0 ||
            std::stoul(std::string(port)) > 65535)
            return bad("port", "must be 1..65535");
        o.port = static_cast<std::uint16_t>(std::stoul(std::string(port)));
    }
    if (!path.empty()) {
        if (!all_digits(path) || path.size() > 10)
            return bad("db", "must be a number");
        const unsigned long long db = std::stoull(std::string(path));
        if (db > static_cast<unsigned long long>(std::numeric_limits<int>::max()))
            return bad("db", "out of range");
        o.db = static_cast<unsigned>(db);
    }
    if (auto ec = detail::validate(o, diag))
        return ec;
    return o;
}

} // namespace mailroom::redis
