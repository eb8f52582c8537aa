// mailroom::limit::store_options: where a provider's rate-limit state lives (this process, or
// Redis, shared by every process that names the same key).
#pragma once

#include <mailroom/limit/clock.hpp>
#include <mailroom/redis/client.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace mailroom::limit {

/// Where the buckets' state is kept.
enum class store_kind {
    local, ///< in this process (the default): each process has its own quota
    redis, ///< in Redis: every process using the same server and key shares one quota
};

/// What a Redis-backed limiter does while Redis can't be reached (refused, lost, timed out).
enum class unavailable_policy {
    /// Sends wait for Redis (bounded by max_wait and the send's deadline): nothing is sent
    /// without a permit from the shared buckets.
    wait,
    /// Each process grants from local buckets at rate / expected_processes (burst likewise,
    /// at least 1) until Redis answers again.
    local_fallback,
};

/// "wait", "local_fallback".
MAILROOM_API const char* to_string(unavailable_policy p) noexcept;

/// The store behind one provider's buckets.
///
/// With store_kind::redis, each bucket of rate_limiter_options::buckets is a GCRA state in
/// Redis under `mailroom:{KEY}:RATE/PERIOD_US/BURST`, beside `mailroom:{KEY}:adapt` (the shared
/// adaptive rate) and `mailroom:{KEY}:pause` (a fleet-wide quota pause): one Redis Cluster hash
/// slot per key, by the `{KEY}` hash tag. One atomic server-side function checks every bucket
/// and takes the cost from all or none, on Redis's clock (TIME), never the hosts'.
///
/// What stays per process: the queue (FIFO within the process) and max_in_flight (connections
/// are per process), which adaptive cuts scale as before. What is shared: the buckets, the
/// adaptive rate ("slow down" from any process cuts every process's rate, and recovery is
/// shared too) and quota pauses.
struct store_options {
    /// local (default) or redis.
    store_kind kind = store_kind::local;
    /// The Redis server (store_kind::redis). Several providers naming the same server share
    /// one connection in a mailer.
    redis::options redis{};
    /// Names the shared state: processes with the same key share the buckets. Empty: the
    /// provider's name. 1..200 octets, printable ASCII without spaces or braces.
    std::string key{};
    /// What happens while Redis can't be reached.
    unavailable_policy when_unavailable = unavailable_policy::wait;
    /// How many processes share the quota, for local_fallback's share. ≥ 1.
    unsigned expected_processes = 1;
    /// The most tokens one lease takes ahead of need (0: no leases; every grant is used at
    /// once). While sends keep waiting, the process asks for what they need plus a lease that
    /// doubles after each lease used up, to this; a lease's unused tokens go back when it ends.
    std::uint64_t max_lease = 64;
    /// How long a lease may be used: at most this, and at most half the time the tightest
    /// bucket takes to fill (burst / rate / 2). Leased tokens are charged as if taken at the
    /// lease's end, so leases never let the fleet exceed rate × window + burst in any window.
    duration lease_ttl = std::chrono::milliseconds(250);
    /// While Redis is unavailable, how often it is tried again. > 0.
    duration retry_interval = std::chrono::milliseconds(200);
    /// Load the code as a Redis 7 function (FUNCTION LOAD, FCALL); off, or where the server
    /// has no functions, it runs as a script (EVALSHA, EVAL).
    bool use_functions = true;
};

} // namespace mailroom::limit
