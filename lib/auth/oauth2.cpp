// The OAuth2 token exchange without I/O (see oauth2.hpp). JSON through Boost.JSON; RS256
// through OpenSSL's EVP interface.
#include "oauth2.hpp"

#include "detail/base64.hpp"

#include <boost/json.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace mailroom::auth {

namespace json = boost::json;

const char* to_string(grant g) noexcept
{
    switch (g) {
    case grant::refresh_token: return "refresh_token";
    case grant::client_credentials: return "client_credentials";
    case grant::jwt_bearer: return "jwt_bearer";
    }
    return "?";
}

namespace {

const json::string* string_field(const json::object& o, std::string_view name)
{
    const json::value* v = o.if_contains(name);
    return v ? v->if_string() : nullptr;
}

result<service_account> invalid(diagnostics& diag, std::string field, std::string why)
{
    diag.field = std::move(field);
    diag.detail = std::move(why);
    return make_error_code(error::invalid_token_source);
}

} // namespace

result<service_account> service_account::parse(std::string_view text, diagnostics& diag)
{
    error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object())
        return invalid(diag, "service account", "not a JSON object (a Google key file is)");
    const json::object& o = v.get_object();
    if (const json::string* type = string_field(o, "type"); type && *type != "service_account")
        return invalid(diag, "service account",
                       "\"type\" is \"" + std::string(*type) + "\", not \"service_account\"");
    service_account a;
    for (auto [name, into] :
         {std::pair{"client_email", &a.client_email}, std::pair{"private_key", &a.private_key},
          std::pair{"private_key_id", &a.private_key_id}, std::pair{"token_uri", &a.token_uri}}) {
        if (const json::string* s = string_field(o, name))
            *into = std::string(*s);
    }
    if (a.client_email.empty())
        return invalid(diag, "service account", "no \"client_email\"");
    if (a.private_key.empty())
        return invalid(diag, "service account", "no \"private_key\"");
    if (a.token_uri.empty())
        a.token_uri = "https://oauth2.googleapis.com/token";
    std::string why;
    if (!detail::rsa_key::parse(a.private_key, why))
        return invalid(diag, "service account \"private_key\"", why);
    return a;
}

result<service_account> service_account::load(const std::string& path, diagnostics& diag)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (!in || !(text << in.rdbuf()))
        return invalid(diag, "service account", "can't read " + path);
    return parse(text.view(), diag);
}

namespace detail {

// ---- RS256 -----------------------------------------------------------------------------------

std::optional<rsa_key> rsa_key::parse(const std::string& pem, std::string& why)
{
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    // No passphrase callback: an encrypted key fails here rather than prompting.
    EVP_PKEY* k =
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")) : nullptr;
    if (!k) {
        why = "not a PEM private key (or an encrypted one)";
        return std::nullopt;
    }
    rsa_key key;
    key.key_.reset(k, &EVP_PKEY_free);
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
        why = "not an RSA key (RS256 needs one)";
        return std::nullopt;
    }
    if (EVP_PKEY_get_bits(k) < 2048) {
        why = "an RSA key under 2048 bits (RFC 7518 §3.3 asks for 2048 at least)";
        return std::nullopt;
    }
    return key;
}

std::string rsa_key::sign(std::string_view data) const
{
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        return {};
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        return {};
    sig.resize(len);
    return sig;
}

std::string base64url(std::string_view in)
{
    std::string out;
    mailroom::detail::base64_append(out, in);
    while (!out.empty() && out.back() == '=')
        out.pop_back();
    std::replace(out.begin(), out.end(), '+', '-');
    std::replace(out.begin(), out.end(), '/', '_');
    return out;
}

std::string make_assertion(const service_account& account, const rsa_key& key,
                           const std::string& scope, const std::string& subject,
                           const std::string& audience, std::chrono::system_clock::time_point now,
                           duration lifetime)
{
    json::object header{{"alg", "RS256"}, {"typ", "JWT"}};
    if (!account.private_key_id.empty())
        header["kid"] = account.private_key_id;
    const auto iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
    const auto life = std::chrono::duration_cast<std::chrono::seconds>(lifetime);
    json::object claims{{"iss", account.client_email},
                        {"aud", audience},
                        {"iat", iat.count()},
                        {"exp", (iat + life).count()}};
    if (!scope.empty())
        claims["scope"] = scope;
    if (!subject.empty())
        claims["sub"] = subject;
    std::string signing_input =
        base64url(json::serialize(header)) + "." + base64url(json::serialize(claims));
    const std::string sig = key.sign(signing_input);
    if (sig.empty())
        return {};
    return signing_input + "." + base64url(sig);
}

http::form grant_form(const oauth2_options& o, const std::string& refresh_token,
                      const std::string& assertion)
{
    http::form f;
    switch (o.grant) {
    case grant::refresh_token:
        f = {{"grant_type", "refresh_token"}, {"refresh_token", refresh_token}};
        break;
    case grant::client_credentials: f = {{"grant_type", "client_credentials"}}; break;
    case grant::jwt_bearer:
        f = {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
             {"assertion", assertion}};
        return f; // the assertion carries the scope and identifies the client
    }
    // Client authentication in the body (RFC 6749 §2.3.1, client_secret_post): what Google's
    // and Microsoft's endpoints take.
    if (!o.client_id.empty())
        f.emplace_back("client_id", o.client_id);
    if (!o.client_secret.empty())
        f.emplace_back("client_secret", o.client_secret);
    if (!o.scope.empty())
        f.emplace_back("scope", o.scope);
    return f;
}

namespace {

// Only the standard fields, shortened, and only printable ASCII: an endpoint's error text is
// shown to people and logged.
std::string printable(std::string_view s, std::size_t max = 300)
{
    std::string out;
    for (char c : s.substr(0, max))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max)
        out += "...";
    return out;
}

} // namespace

token_reply read_token_response(const http::response& r, clock::time_point now)
{
    token_reply t;
    t.retry_after = r.retry_after;
    error_code jec;
    const json::value v = json::parse(r.body, jec);
    const json::object* o = jec ? nullptr : v.if_object();
    const std::string status = "HTTP " + std::to_string(r.status);
    if (r.status >= 200 && r.status < 300) {
        const json::string* tok = o ? string_field(*o, "access_token") : nullptr;
        if (!tok || tok->empty()) {
            t.ec = make_error_code(error::token_refresh_failed);
            t.token.diag = {"token endpoint", status + (o ? ", but no \"access_token\" in it"
                                                          : ", but the body isn't JSON")};
            return t;
        }
        if (const json::string* type = string_field(*o, "token_type")) {
            std::string lower(*type);
            std::transform(lower.begin(), lower.end(), lower.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (lower != "bearer") {
                t.ec = make_error_code(error::token_refresh_failed);
                t.token.diag = {"token endpoint",
                                "token_type \"" + printable(*type, 40) + "\", not Bearer"};
                return t;
            }
        }
        t.token.value = std::string(*tok);
        // expires_in is a number of seconds (RFC 6749 §5.1); some endpoints send it quoted.
        std::optional<std::int64_t> secs;
        if (const json::value* e = o->if_contains("expires_in")) {
            if (e->is_int64())
                secs = e->get_int64();
            else if (e->is_uint64())
                secs =
                    static_cast<std::int64_t>(std::min<std::uint64_t>(e->get_uint64(), 1u << 30));
            else if (e->is_double())
                secs = static_cast<std::int64_t>(e->get_double());
            else if (e->is_string()) {
                try {
                    secs = std::stoll(std::string(e->get_string()));
                } catch (...) {
                }
            }
        }
        if (secs)
            t.token.expires_at =
                now + std::chrono::seconds(std::clamp<std::int64_t>(*secs, 0, 1 << 30));
        if (const json::string* rt = string_field(*o, "refresh_token"); rt && !rt->empty())
            t.refresh_token = std::string(*rt);
        return t;
    }
    // An error response (RFC 6749 §5.2): "error", "error_description".
    std::string what = status;
    std::string code;
    if (o) {
        if (const json::string* e = string_field(*o, "error")) {
            code = std::string(*e);
            what += ": " + printable(*e, 80);
        }
        if (const json::string* d = string_field(*o, "error_description"))
            what += ": " + printable(*d);
    }
    t.token.diag = {"token endpoint", what};
    // 5xx, 429 (too many requests) and 408 may pass; an OAuth2 error or another 4xx won't.
    const bool transient = r.status >= 500 || r.status == 429 || r.status == 408 ||
                           code == "temporarily_unavailable" || code == "server_error" ||
                           (r.status < 400);
    t.ec = make_error_code(transient ? error::token_refresh_failed : error::token_refresh_refused);
    return t;
}

error_code map_request_error(error_code ec)
{
    if (ec == boost::asio::error::operation_aborted)
        return ec;
    if (ec == error::tls_configuration_invalid || ec == error::invalid_url ||
        ec == error::http_redirect_refused || ec == error::http_response_too_large)
        return make_error_code(error::token_refresh_refused);
    return make_error_code(error::token_refresh_failed);
}

} // namespace detail
} // namespace mailroom::auth
