// Private: a limiter's calls to its Redis store (the script in redis_script.cpp), loading the
// code as a function or a script when Redis doesn't have it, and decoding the answers.
#pragma once

#include "lease_planner.hpp"
#include "redis_script.hpp"

#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/limit/store_options.hpp>
#include <mailroom/redis/client.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mailroom::limit::detail {

/// The keys of one provider's shared state: its buckets', then the adaptive hash, then the
/// pause key, all under the `{key}` hash tag.
std::vector<std::string> store_keys(const std::string& key,
                                    const std::vector<bucket_options>& buckets);
/// The arguments every call starts with: the time ("" for Redis TIME, or microseconds), the
/// number of buckets, each bucket's rate, period in microseconds and burst.
std::vector<std::string> store_args(const std::string& now_us,
                                    const std::vector<bucket_options>& buckets);
/// The acquire call's answer, or error::redis_error_reply (diag says what was wrong).
result<store_answer> decode_acquire(const redis::reply& r, diagnostics& diag);
/// Whether an error reply means "the server can't serve now" (LOADING, BUSY, READONLY, ...),
/// to be treated as unavailable rather than refused.
bool transient_error_reply(const redis::reply& r) noexcept;

/// One provider's link to Redis.
class redis_store : public std::enable_shared_from_this<redis_store> {
public:
    using handler = std::function<void(error_code, redis::reply)>;

    redis_store(std::shared_ptr<redis::client> client, const rate_limiter_options& limits,
                const store_options& store, std::string key);

    /// Runs `c` with `args` after the common ones; `h` gets the script's reply, or an error
    /// (the client's, or error::redis_error_reply for an error reply). Runs on the client's
    /// executor.
    void call(script_call c, std::vector<std::string> args, handler h);

    /// Closes the connection (pending calls fail with operation_aborted).
    void close() noexcept { client_->close(); }

    /// Redis commands sent so far.
    std::uint64_t commands() const noexcept { return commands_.load(std::memory_order_relaxed); }
    /// The key its state lives under.
    const std::string& key() const noexcept { return key_; }

private:
    void exec(std::vector<std::string> cmd, std::function<void(error_code, redis::reply)> h);
    void via_function(script_call c, std::vector<std::string> args, handler h, bool loaded);
    void via_script(script_call c, std::vector<std::string> args, handler h);

    std::shared_ptr<redis::client> client_;
    std::string key_;
    std::vector<std::string> keys_;
    std::vector<std::string> common_;
    std::atomic<bool> functions_;
    std::atomic<std::uint64_t> commands_{0};
};

} // namespace mailroom::limit::detail
