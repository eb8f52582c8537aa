// Private: the OAuth2 token exchange without I/O: the request each grant sends (RFC 6749 §4.4,
// §6; RFC 7523 with an RS256 assertion) and what a response means (RFC 6749 §5.1, §5.2).
#pragma once

#include <mailroom/auth/token_source.hpp>
#include <mailroom/http/client.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

struct evp_pkey_st; // OpenSSL's EVP_PKEY

namespace mailroom::auth::detail {

/// An RSA private key parsed once from PEM, for RS256 signatures.
class rsa_key {
public:
    /// Parses `pem`: nothing (and the reason in `why`) when it isn't an RSA private key.
    static std::optional<rsa_key> parse(const std::string& pem, std::string& why);
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `data` (RFC 7518 §3.3); empty on failure.
    std::string sign(std::string_view data) const;

private:
    std::shared_ptr<evp_pkey_st> key_;
};

/// base64url without padding (RFC 7515 §2).
std::string base64url(std::string_view in);

/// The JWT-bearer grant's assertion (RFC 7523 §3; Google's service-account form): header
/// {alg RS256, typ JWT, kid}, claims {iss, scope, aud, iat, exp, sub}, signed with `key`.
std::string make_assertion(const service_account& account, const rsa_key& key,
                           const std::string& scope, const std::string& subject,
                           const std::string& audience, std::chrono::system_clock::time_point now,
                           duration lifetime);

/// The form each grant posts.
http::form grant_form(const oauth2_options& o, const std::string& refresh_token,
                      const std::string& assertion);

/// What a token endpoint's response means.
struct token_reply {
    /// Empty: `token` holds the access token. token_refresh_failed: transient (5xx, 429, 408,
    /// a 200 without a usable token, JSON that isn't); token_refresh_refused: permanent (an
    /// OAuth2 error such as invalid_grant, or another 4xx).
    error_code ec{};
    /// The token and its expiry (now + expires_in), or the diagnostics of a failure: the
    /// endpoint's `error` and `error_description`, never the body as a whole.
    access_token token{};
    /// A rotated refresh token (RFC 6749 §6), if the response carried one.
    std::optional<std::string> refresh_token{};
    /// The server's Retry-After, in seconds (0: none).
    std::uint32_t retry_after = 0;
};

/// Reads a token endpoint's response received at `now`.
token_reply read_token_response(const http::response& r, clock::time_point now);

/// Maps a failed request's error to the token source's: permanent HTTP failures (a redirect,
/// an oversized response, a CA file that can't be loaded) are token_refresh_refused,
/// everything else (network, TLS, timeouts) token_refresh_failed. operation_aborted stays.
error_code map_request_error(error_code ec);

} // namespace mailroom::auth::detail
