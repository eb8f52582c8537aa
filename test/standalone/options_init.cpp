// The option structs as README and services fill them in, with designated initializers that
// leave most members out: compiled with the warnings services build with (-Wextra's
// missing-field-initializers among them), this stays silent.
#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/dkim.hpp>
#include <mailroom/smtp/client.hpp>

#include <chrono>
#include <utility>

namespace mailroom {

mailer_options options_as_readme_shows()
{
    smtp::client_options o{.host = "smtp.example.com"};
    o.auth = smtp::credentials{.username = "alice", .password = "secret"};
    o.tls = smtp::tls_options{.verify_name = "mx.example.com"};
    smtp::send_options so{.dsn = {.envid = "id-1", .notify_failure = true}};
    (void)so;

    mailer_options mo;
    mo.providers.push_back({
        .name = "ses",
        .server = o,
        .pool = {.max_connections = 8},
        .limits = {.buckets = {{.rate = 14, .burst = 20},
                               {.rate = 50'000, .per = std::chrono::hours(24)}},
                   .charge_by = limit::charge::per_recipient},
        .sender_domains = {"example.com"},
    });
    mo.providers.push_back({.name = "backup", .server = o});
    mo.retry = {.max_attempts = 5};
    return mo;
}

mime::dkim_options dkim_options_as_readme_shows()
{
    mime::dkim_options o{.domain = "example.com", .selector = "rsa2026"};
    o = {.domain = "example.com", .selector = "ed2026", .expire_after = std::chrono::hours(24)};
    return o;
}

} // namespace mailroom
