// --oauth-* for send and bulk: an OAuth2 grant (refresh token, client credentials, or a Google
// service account's JWT bearer) whose tokens the library fetches, caches and refreshes
// (mailroom::auth::token_source). Secrets come from the environment or a key file, never the
// command line, and never reach the output.

#include "cli.hpp"

#include <mailroom/auth/token_source.hpp>

#include <cstdio>

namespace mailroom::cli {

namespace {

std::string env_secret(const std::string& flag, const std::string& var)
{
    const char* v = std::getenv(var.c_str());
    if (!v || !*v)
        throw failure(ex_usage, flag + ": the environment variable " + var + " is not set");
    return v;
}

} // namespace

bool server_options::take_oauth(std::string_view flag, arg_reader& args)
{
    if (flag == "--oauth-token-url")
        oauth_.token_url = args.value();
    else if (flag == "--oauth-client-id")
        oauth_.client_id = args.value();
    else if (flag == "--oauth-client-secret-env")
        oauth_.client_secret = env_secret("--oauth-client-secret-env", args.value());
    else if (flag == "--oauth-refresh-token-env")
        oauth_.refresh_token = env_secret("--oauth-refresh-token-env", args.value());
    else if (flag == "--oauth-scope")
        oauth_.scope = args.value();
    else if (flag == "--oauth-service-account")
        oauth_.service_account = args.value();
    else
        return false;
    return true;
}

void server_options::attach_tokens(smtp::client_options& o,
                                   const boost::asio::any_io_executor& ex) const
{
    if (!oauth_.any())
        return;
    if (!oauth_.grant())
        throw failure(ex_usage, "--oauth-* need a grant: --oauth-refresh-token-env, "
                                "--oauth-client-secret-env or --oauth-service-account");
    auth::oauth2_options a;
    if (oauth_.service_account) {
        if (oauth_.refresh_token || oauth_.client_secret || oauth_.client_id)
            throw failure(ex_usage, "--oauth-service-account can't be combined with "
                                    "--oauth-refresh-token-env, --oauth-client-secret-env or "
                                    "--oauth-client-id (the key file identifies the client)");
        const std::string& path = *oauth_.service_account;
        if (std::FILE* f = std::fopen(path.c_str(), "rb"))
            std::fclose(f);
        else
            throw failure(ex_noinput, "--oauth-service-account: cannot read '" + path + "'");
        diagnostics diag;
        auto acct = auth::service_account::load(path, diag);
        if (!acct)
            throw failure(ex_dataerr, "--oauth-service-account: " + diag.to_string());
        a.grant = auth::grant::jwt_bearer;
        a.account = std::move(*acct);
        a.subject = o.auth->username; // the mailbox to send as (domain-wide delegation)
    } else if (oauth_.refresh_token) {
        a.grant = auth::grant::refresh_token;
        a.refresh_token = *oauth_.refresh_token;
    } else {
        a.grant = auth::grant::client_credentials;
    }
    a.client_id = oauth_.client_id.value_or("");
    a.client_secret = oauth_.client_secret.value_or("");
    if (a.grant != auth::grant::jwt_bearer && a.client_id.empty())
        throw failure(ex_usage, "--oauth-refresh-token-env and --oauth-client-secret-env need "
                                "--oauth-client-id");

    // The endpoint and scope: given, else the preset's (its app-only ones for client
    // credentials), else (service account) the key file's endpoint.
    const providers::preset* p = provider();
    const bool app = a.grant == auth::grant::client_credentials;
    std::string_view preset_url, preset_scope;
    if (p) {
        preset_url = app && !p->app_token_url.empty() ? p->app_token_url : p->token_url;
        preset_scope = app && !p->app_scope.empty() ? p->app_scope : p->scope;
    }
    a.token_url = oauth_.token_url.value_or(std::string(preset_url));
    if (a.grant == auth::grant::jwt_bearer && !oauth_.token_url)
        a.token_url = a.account->token_uri;
    if (a.token_url.empty())
        throw failure(ex_usage, "--oauth-token-url is required (no --provider with a token "
                                "endpoint)");
    if (a.token_url.find(providers::tenant_placeholder) != std::string::npos)
        throw failure(ex_usage, "--provider " + std::string(p->name) +
                                    ": its token endpoint needs your tenant: give "
                                    "--oauth-token-url " +
                                    a.token_url + " with " +
                                    std::string(providers::tenant_placeholder) +
                                    " replaced by your tenant id or domain");
    a.scope = oauth_.scope.value_or(std::string(preset_scope));
    if (a.grant == auth::grant::client_credentials && a.scope.empty())
        throw failure(ex_usage, "--oauth-client-secret-env (client credentials) needs "
                                "--oauth-scope (Microsoft 365: "
                                "https://outlook.office365.com/.default)");
    {
        diagnostics diag;
        if (!http::url::parse(a.token_url, diag))
            throw failure(ex_usage, "--oauth-token-url: " + diag.to_string());
    }

    // The endpoint's certificate is checked against the SMTP server's trust anchors.
    a.http.tls.ca_file = o.tls.ca_file;
    a.http.tls.ca_dir = o.tls.ca_dir;
    a.http.tls.verify = o.tls.verify;
    a.http.dns_servers = o.dns_servers;
    a.http.log = o.log; // debug lines only: never a body, a token or a secret
    for (http::duration* d :
         {&a.http.connect_timeout, &a.http.tls_handshake_timeout, &a.http.response_timeout})
        *d = std::min(*d, o.timeouts.command);

    diagnostics diag;
    auto source = auth::token_source::make_oauth2(ex, std::move(a), {}, diag);
    if (!source)
        throw failure(ex_usage, "--oauth-*: " + diag.to_string());
    o.auth->tokens = std::move(*source);
    o.auth->token_provider = nullptr;
}

} // namespace mailroom::cli
