// mailroom::pool::pool_options: how many connections a pool keeps, and for how long.
#pragma once

#include <chrono>
#include <cstddef>

/// Connection pools: warm, authenticated SMTP connections to one endpoint, lent to sends.
namespace mailroom::pool {

/// The pool's durations (steady clock).
using duration = std::chrono::steady_clock::duration;

/// Reconnecting after failed connects: the n-th consecutive failure waits a random time in
/// [d/2, d] where d = min(max, initial × 2^(n-1)) ("equal jitter"), so a thousand waiting
/// sends don't reconnect in lock-step. A successful connect resets n.
struct backoff_options {
    duration initial = std::chrono::milliseconds(250); ///< > 0
    duration max = std::chrono::seconds(30);           ///< ≥ initial
};

/// The pool's circuit breaker: how it stops sends from waiting on a server that isn't there.
///
/// A connect attempt that finds nobody to talk to (connection refused or reset, host
/// unreachable, a DNS failure, the connect, greeting, TLS or EHLO timeout, a TLS failure, a
/// connection lost before the greeting) counts; `failures` of them in a row, with no
/// connection open, open the breaker: every waiting checkout fails at once with that last
/// connect error, and new checkouts fail at once with error::circuit_open until `open_for`
/// has passed. Then the breaker is half-open: checkouts wait again and exactly one connect is
/// made (the probe); its success closes the breaker and the waiters are served, its failure
/// (whatever the error) fails them and opens the breaker for another `open_for`. A successful
/// connect, or one the server answered (a 421 greeting, a 454 to AUTH: a server that replies
/// is there, and the reconnect backoff deals with it), starts the count again. A refusal for
/// good (condition::permanent) fails every waiter without the breaker.
struct breaker_options {
    /// Consecutive failed connects that open the breaker; 0: never open it. With the default
    /// max_connections (4) and reconnect backoff, a dead server opens it after two rounds of
    /// connects: about 2 × the connect (or greeting) timeout + 125-250 ms.
    unsigned failures = 5;
    /// How long it stays open before a probe may connect, > 0 when `failures` isn't 0.
    duration open_for = std::chrono::seconds(10);
};

/// How many connections a pool keeps, how they are shared, and when they are retired. Checked
/// by the pool's constructor (error::invalid_pool_options).
struct pool_options {
    /// Connections open or opening at once, ≥ 1. Also bounds concurrent connect attempts.
    std::size_t max_connections = 4;
    /// Connections kept open while nothing is sent (warm-up), ≤ max_connections.
    std::size_t min_idle = 0;
    /// Sends that may share one connection at a time when its server offers PIPELINING
    /// (RFC 2920): the next message's envelope then rides behind the previous final dot. 1: one
    /// send per connection at a time. Servers without PIPELINING always get 1.
    std::size_t pipeline_depth = 4;
    /// A connection is retired (QUIT) after this many messages; 0: no limit. Many providers
    /// cap messages per connection (Exchange Online, Gmail: about 100).
    std::size_t max_messages_per_connection = 0;
    /// An unused connection is closed (QUIT) after this long. Below the usual server limits
    /// (Postfix smtpd_timeout 300 s, Exchange 10 min, RFC 5321 §4.5.3.2 5 min).
    duration idle_timeout = std::chrono::seconds(60);
    /// A connection is retired once this old (credentials and DNS may change). 0: no limit.
    duration max_age = std::chrono::minutes(30);
    /// A connection unused for this long gets a NOOP before it is handed out; if the server
    /// closed it meanwhile, a new one is opened instead, and nobody sees a failure.
    /// duration::max(): never probe.
    duration probe_after_idle = std::chrono::seconds(5);
    /// How long async_acquire waits for a connection before error::checkout_timeout, > 0.
    duration checkout_timeout = std::chrono::seconds(60);
    /// Waits between connect attempts after failures.
    backoff_options reconnect{};
    /// When to stop waiting for a server that doesn't answer (see breaker_options).
    breaker_options breaker{};
    /// The executor's context is run by one thread only: the pool (and a mailer's provider)
    /// then runs on it directly, without a strand, saving a little CPU per send. Wrong with a
    /// multi-threaded io_context: leave it false there. Debug builds (NDEBUG undefined) check
    /// the promise: the first thread to run the pool's work owns it, and the pool's work on
    /// any other thread prints a line to stderr and aborts the process.
    bool single_threaded = false;
};

} // namespace mailroom::pool
