// mailroom::mailer_options: the providers a mailer sends through, and how it retries.
#pragma once

#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/limit/store_options.hpp>
#include <mailroom/logger.hpp>
#include <mailroom/pool/pool_options.hpp>
#include <mailroom/smtp/client_options.hpp>
#include <mailroom/smtp/send_options.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mailroom {

/// One way out: a submission server and an account on it, with its own pool and limits.
struct provider_options {
    /// Unique; names the provider in routing, reports, metrics and logs.
    std::string name{};
    /// Endpoint and credentials. The pool's connections all use these.
    smtp::client_options server{};
    /// The provider's connection pool.
    pool::pool_options pool{};
    /// The provider's quotas. No buckets and no max_in_flight: no limiter at all.
    limit::rate_limiter_options limits{};
    /// Where the quotas' state lives: this process (the default) or Redis, shared with every
    /// process that names the same server and key (default key: the provider's name).
    /// max_in_flight stays per process either way. Providers naming the same Redis server
    /// (host, port, TLS, user, database) share one connection to it. With a logger-less
    /// limit_store.redis, the mailer's log is used.
    limit::store_options limit_store{};
    /// Mail whose sender (MAIL FROM) is in one of these domains goes here. "example.com"
    /// matches that domain only; "*.example.com" its subdomains too. Case-insensitive.
    std::vector<std::string> sender_domains{};
};

/// Retrying failures that happened before the final dot: transient replies (4xx), lost
/// connections, timeouts, failed connects. A retry takes a connection from the pool like any
/// send: the same one if it is still healthy (a 4xx leaves it so), a fresh one if it broke. Waits
/// grow as min(max_backoff, initial_backoff × 2^(n-1)) with equal jitter (a random point in [d/2,
/// d]).
struct retry_options {
    /// Attempts in all, ≥ 1 (1: never retry).
    unsigned max_attempts = 3;
    /// The wait before the first retry (before jitter), > 0.
    std::chrono::steady_clock::duration initial_backoff = std::chrono::milliseconds(500);
    /// The longest wait between attempts (before jitter), ≥ initial_backoff.
    std::chrono::steady_clock::duration max_backoff = std::chrono::seconds(30);
    /// The send's whole budget, from the call. No retry starts whose backoff would end past it,
    /// and a wait for the rate limiter or for a connection that reaches it is cancelled: the
    /// send then fails with error::send_deadline_exceeded, or, if an earlier attempt failed,
    /// with that attempt's error (as when the deadline stops a retry); the report's
    /// diagnostics say so either way. An SMTP transaction under way is never cut short by it
    /// (the per-phase timeouts bound it). duration::max(): no deadline.
    std::chrono::steady_clock::duration deadline = std::chrono::minutes(10);
    /// Retry an `unknown` outcome (the reply to the final dot never came): the recipients may
    /// then get the message twice. Off by default (RFC 5321 §4.5.3.2, §6.1); the Message-ID is
    /// the same on every attempt, so receivers can tell.
    bool retry_unknown = false;
};

/// What a mailer sends through and how. Checked by the mailer's constructor
/// (error::invalid_mailer_options and the pool's and limiter's own option errors).
struct mailer_options {
    /// At least one; names unique.
    std::vector<provider_options> providers{};
    /// Where mail goes that no provider's sender_domains match. Empty: the first provider.
    std::string default_provider{};
    /// Mail that no provider's sender_domains match fails with error::no_route instead of
    /// going to the default provider (a service that must never send from an unknown domain).
    bool require_route = false;
    /// Retries, for every send that doesn't bring its own (send_request::retry).
    retry_options retry{};
    /// The mailer's log, and each provider's connections' unless its server options have a sink.
    logger log{};
};

/// Per-call choices for mailer::async_send.
struct send_request {
    /// Send through this provider, whatever the routing says. Empty: route by sender.
    std::string provider{};
    /// DSN requests for the SMTP transaction.
    smtp::send_options smtp{};
    /// Overrides mailer_options::retry for this send.
    std::optional<retry_options> retry{};
};

} // namespace mailroom
