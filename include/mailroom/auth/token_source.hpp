// mailroom::auth::token_source: OAuth2 access tokens for XOAUTH2 / OAUTHBEARER, cached and
// refreshed ahead of expiry, one refresh at a time however many connections ask.
#pragma once

#include <mailroom/asio_config.hpp>
#include <mailroom/config.hpp>
#include <mailroom/error.hpp>
#include <mailroom/http/client.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mailroom::auth {

namespace asio = boost::asio;

/// The clock of expiry times.
using clock = std::chrono::steady_clock;
/// Steady-clock durations.
using duration = clock::duration;

/// An access token and when it stops being good, or why there is none.
struct access_token {
    /// The bearer token. Never logged, never in a report.
    std::string value{};
    /// When the token expires; time_point::max() when the issuer didn't say.
    clock::time_point expires_at = clock::time_point::max();
    /// When getting one failed: the step and the endpoint's `error` / `error_description`
    /// (never a secret). Empty on success.
    diagnostics diag{};
};

/// The handler a token callback completes: `(error_code, access_token)`.
using token_handler = asio::any_completion_handler<void(error_code, access_token)>;

/// A service's own way to get a token (an identity library, a secrets agent): called with
/// `refresh = true` when the last token it gave was refused by a server (don't hand back the
/// same one), and completes the handler once, from any thread. An error from it is reported
/// as given when it is a mailroom error, as error::token_refresh_failed otherwise.
using token_callback = std::function<void(bool refresh, token_handler handler)>;

/// An OAuth2 grant (RFC 6749) to get access tokens with.
enum class grant {
    /// RFC 6749 §6: a long-lived refresh token from a user's consent (Gmail, Outlook.com,
    /// Microsoft 365 delegated). A rotated refresh token in a response replaces the old one.
    refresh_token,
    /// RFC 6749 §4.4: the application's own identity (Microsoft 365 app-only, scope
    /// `https://outlook.office365.com/.default`).
    client_credentials,
    /// RFC 7523: a JWT signed RS256 with a Google service account's key, `sub` = the mailbox
    /// (Google Workspace domain-wide delegation).
    jwt_bearer,
};

/// "refresh_token", "client_credentials", "jwt_bearer".
MAILROOM_API const char* to_string(grant g) noexcept;

/// A Google service account's JSON key file (the fields the JWT-bearer grant needs).
struct service_account {
    /// The account's e-mail address: the assertion's `iss`.
    std::string client_email{};
    /// The RSA private key (PEM). Never logged.
    std::string private_key{};
    /// The key's id: the assertion's `kid`.
    std::string private_key_id{};
    /// The token endpoint: the assertion's `aud`, and where it is sent.
    std::string token_uri{};

    /// Reads a key file's JSON: invalid_token_source (with the reason in `diag`) when it isn't
    /// JSON, lacks a field, or its key isn't an RSA private key in PEM.
    MAILROOM_API static result<service_account> parse(std::string_view json, diagnostics& diag);
    /// Reads and parses the file at `path` (invalid_token_source when it can't be read).
    MAILROOM_API static result<service_account> load(const std::string& path, diagnostics& diag);
};

/// A built-in OAuth2 client: the grant, its secrets, and the token endpoint.
struct oauth2_options {
    /// Which grant.
    auth::grant grant = grant::refresh_token;
    /// The token endpoint (https). For jwt_bearer, empty: the service account's token_uri.
    std::string token_url{};
    /// The OAuth2 client id (refresh_token, client_credentials).
    std::string client_id{};
    /// The client secret (client_credentials; refresh_token for confidential clients). Never
    /// logged.
    std::string client_secret{};
    /// The refresh token (refresh_token). Never logged.
    std::string refresh_token{};
    /// Space-separated scopes; empty: none sent (refresh_token keeps the consent's scopes).
    std::string scope{};
    /// The service account (jwt_bearer).
    std::optional<service_account> account{};
    /// The mailbox to act for (jwt_bearer's `sub`); empty: the service account itself.
    std::string subject{};
    /// How long an assertion is valid (jwt_bearer; Google allows at most an hour).
    duration assertion_lifetime = std::chrono::hours(1);
    /// The HTTPS client's deadlines, size cap and trust anchors (the system store, or the
    /// same CA file as the SMTP server's).
    http::options http{};
};

/// When to refresh and how to retry.
struct refresh_policy {
    /// Refresh once a token has less than this left (but no sooner than when four fifths of
    /// its lifetime have passed, so short-lived tokens aren't refreshed all the time). The
    /// cached token is still used while the refresh runs.
    duration margin = std::chrono::minutes(5);
    /// A transient failure (5xx, 429, network, timeout) is retried after this, doubling up
    /// to retry_max, with jitter.
    duration retry_initial = std::chrono::milliseconds(500);
    /// The longest wait between retries.
    duration retry_max = std::chrono::seconds(30);
    /// Tries per refresh (the first and the retries) before its waiters get the error. ≥ 1.
    unsigned max_attempts = 4;
    /// A token whose response has no `expires_in` is kept this long.
    duration default_lifetime = std::chrono::hours(1);
    /// After a refresh failed, gets fail at once with its error for this long (so a burst of
    /// connects doesn't hammer a failing endpoint); a permanent failure is held for
    /// retry_max.
    duration failure_hold = std::chrono::seconds(1);
};

/// Counters and state of a token source. Never holds a token or a secret.
struct token_source_snapshot {
    std::uint64_t gets = 0;          ///< async_get calls
    std::uint64_t cache_hits = 0;    ///< gets answered from the cache at once
    std::uint64_t joined = 0;        ///< gets that waited on a refresh another started
    std::uint64_t refreshes = 0;     ///< refreshes that got a token
    std::uint64_t requests = 0;      ///< token requests made (callback calls), retries too
    std::uint64_t failures = 0;      ///< refreshes that ended in an error
    std::uint64_t invalidations = 0; ///< tokens a server refused (invalidate)
    bool cached = false;             ///< a token is cached now
    duration remaining{};            ///< how long the cached token has left
    error_code last_error{};         ///< the last refresh's error, if it failed
    std::string last_error_detail{}; ///< its diagnostics (the endpoint's error text)
};

namespace detail {
struct token_source_impl;
}

/// Access tokens for one account, shared by every connection of every pool that uses it.
/// Thread-safe. The first get (or one after invalidate) fetches; later ones get the cached
/// token; a refresh starts once the token is near its end (refresh_policy::margin), and only
/// one runs at a time: concurrent gets wait for it and share its result.
///
///     auto tokens = auth::token_source::oauth2(ex, {.grant = auth::grant::refresh_token,
///         .token_url = "https://oauth2.googleapis.com/token", .client_id = id,
///         .client_secret = secret, .refresh_token = refresh});
///     opts.auth = smtp::credentials{.username = "me@gmail.com", .tokens = tokens};
class MAILROOM_API token_source {
public:
    /// The executor refreshes run on.
    using executor_type = asio::any_io_executor;

    /// Tokens from a user callback.
    static std::shared_ptr<token_source> from_callback(executor_type ex, token_callback fn,
                                                       refresh_policy policy = {});
    /// Tokens from a built-in OAuth2 grant. Throws system_error(invalid_token_source) when
    /// the options can't work (no token URL, a grant without its secret, no service account).
    static std::shared_ptr<token_source> oauth2(executor_type ex, oauth2_options opts,
                                                refresh_policy policy = {});
    /// The same, as a result: invalid_token_source with the reason in `diag`.
    static result<std::shared_ptr<token_source>>
    make_oauth2(executor_type ex, oauth2_options opts, refresh_policy policy, diagnostics& diag);

    ~token_source();
    token_source(const token_source&) = delete;
    token_source& operator=(const token_source&) = delete;

    /// A token good for now: cached, or from a refresh (this one's or one in flight).
    /// Completes with token_refresh_failed (transient), token_refresh_refused (permanent),
    /// invalid_token_source, or operation_aborted after close(); the token's `diag` says
    /// why.
    template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(error_code, access_token))
                  Token = asio::deferred_t>
    auto async_get(Token&& token = {})
    {
        return asio::async_initiate<Token, void(error_code, access_token)>(
            [](auto handler, std::shared_ptr<detail::token_source_impl> i) {
                initiate_get(std::move(i), std::move(handler));
            },
            token, impl_);
    }

    /// A server refused `token` (expired, revoked): if it is the cached one, it is dropped
    /// and the next get refreshes. A token refused after it was already replaced changes
    /// nothing, so 100 connections refused at once cause one refresh.
    void invalidate(std::string_view token);

    /// Ends waiting gets with operation_aborted and stops refreshing.
    void close() noexcept;

    /// Counters and state.
    token_source_snapshot snapshot() const;

private:
    explicit token_source(std::shared_ptr<detail::token_source_impl> i);
    static void initiate_get(std::shared_ptr<detail::token_source_impl> i,
                             asio::any_completion_handler<void(error_code, access_token)> h);

    std::shared_ptr<detail::token_source_impl> impl_;
};

} // namespace mailroom::auth
