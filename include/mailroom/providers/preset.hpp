// mailroom::providers: well-known submission services, their settings and published limits.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/smtp/auth_mechanism.hpp>
#include <mailroom/smtp/client_options.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

/// Presets for well-known submission services (lib/providers/presets.cpp holds the table).
namespace mailroom::providers {

/// What stands for the directory (tenant) in a Microsoft identity platform token URL that the
/// user must fill in: the tenant's ID or one of its verified domains. Delegated sign-in
/// works through "common"; the client-credentials (app-only) grant needs the real tenant.
inline constexpr std::string_view tenant_placeholder = "{tenant}";

/// One submission service: where it listens, how it wants to be secured and logged in to, and
/// the sending limits it publishes for a default account. A preset is a starting point: copy
/// it and override any field.
///
///     const providers::preset* p = providers::find("Microsoft365"); // any case
///     smtp::client_options o = providers::client_options_for(*p);
///     o.auth->username = "alerts@contoso.example";
///     o.auth->token_provider = my_token_source;     // the user's credentials
///     limit::rate_limiter_options l = providers::limits_for(*p);
///     l.buckets[1].rate = 5'000;                    // this tenant's own daily figure
///     // or a whole preset of one's own:
///     providers::preset mine = *p;
///     mine.host = "smtp-relay.example.net";
///
/// The limits are those the provider publishes for a new or default account (each figure's
/// source is in `source` and in lib/providers/presets.cpp); an account's real quota may be
/// higher (a paid plan, a raised quota) or lower (a new account still on probation).
struct preset {
    /// The key find() looks up: lower case, e.g. "gmail", "ses-eu-west-1".
    std::string_view name{};
    /// For people, e.g. "Amazon SES (eu-west-1)".
    std::string_view display_name{};
    /// The submission server's host name.
    std::string_view host{};
    /// The submission port (587 with STARTTLS, 465 with implicit TLS).
    std::uint16_t port = 587;
    /// Transport security the service wants.
    smtp::tls_mode tls = smtp::tls_mode::required;
    /// The SASL mechanism to prefer: xoauth2 where the service takes OAuth2 tokens (it needs
    /// a bearer token; with an app password, PLAIN does), plain otherwise.
    smtp::auth_mechanism mechanism = smtp::auth_mechanism::plain;
    /// The OAuth2 token endpoint for delegated access (a user's refresh token); empty where
    /// the service takes no OAuth2 tokens.
    std::string_view token_url{};
    /// The scope to ask for with token_url (space-separated); empty with no OAuth2.
    std::string_view scope{};
    /// The token endpoint for app-only access (client credentials, or a Google service
    /// account's JWT bearer grant); empty where there is none. It may hold
    /// tenant_placeholder, which with_tenant() fills in.
    std::string_view app_token_url{};
    /// The scope for app-only access; empty where there is none.
    std::string_view app_scope{};
    /// The published default sending limits, as buckets (per second, per minute, per day, ...)
    /// in the unit the provider counts (charge_by).
    limit::rate_limiter_options limits{};
    /// What to know: who the limits apply to, what the user name is, concurrency caps.
    std::string_view notes{};
    /// Where the limits come from: the provider's page(s), space-separated URLs.
    std::string_view source{};
};

/// Every preset, sorted by name. The table lives as long as the program.
MAILROOM_API std::span<const preset> presets();

/// The preset named `name` (ASCII case-insensitive), or nullptr.
MAILROOM_API const preset* find(std::string_view name);

/// Client options for `p`: host, port, TLS mode, and credentials with p.mechanism as the one
/// to insist on. The user fills in the credentials (username, and a password or a
/// token_provider) and may change anything else.
MAILROOM_API smtp::client_options client_options_for(const preset& p);

/// The preset's limits, a copy to adjust (e.g. to the quota an account really has).
MAILROOM_API limit::rate_limiter_options limits_for(const preset& p);

/// `url` with every tenant_placeholder replaced by `tenant`, e.g. the tenant's ID for
/// Microsoft 365's app-only token endpoint.
MAILROOM_API std::string with_tenant(std::string_view url, std::string_view tenant);

} // namespace mailroom::providers
