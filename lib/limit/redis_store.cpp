// Private: calls to the Redis store (see redis_store.hpp).
#include "redis_store.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <cstdio>

namespace mailroom::limit::detail {

namespace {

std::string micros(duration d)
{
    return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

// EVALSHA wants the script's SHA-1 in lower-case hex.
std::string sha1_hex(const std::string& s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(s.data(), s.size(), md, &n, EVP_sha1(), nullptr);
    std::string hex;
    char buf[3];
    for (unsigned i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", md[i]);
        hex += buf;
    }
    return hex;
}

bool integer_of(const redis::reply& r, long long& out)
{
    if (r.kind != redis::reply::type::integer)
        return false;
    out = r.integer;
    return true;
}

} // namespace

std::vector<std::string> store_keys(const std::string& key,
                                    const std::vector<bucket_options>& buckets)
{
    std::vector<std::string> keys;
    const std::string prefix = "mailroom:{" + key + "}:";
    for (const bucket_options& b : buckets)
        keys.push_back(prefix + std::to_string(b.rate) + "/" + micros(b.per) + "/" +
                       std::to_string(b.burst == 0 ? b.rate : b.burst));
    keys.push_back(prefix + "adapt");
    keys.push_back(prefix + "pause");
    return keys;
}

std::vector<std::string> store_args(const std::string& now_us,
                                    const std::vector<bucket_options>& buckets)
{
    std::vector<std::string> args{now_us, std::to_string(buckets.size())};
    for (const bucket_options& b : buckets) {
        args.push_back(std::to_string(b.rate));
        args.push_back(micros(b.per));
        args.push_back(std::to_string(b.burst == 0 ? b.rate : b.burst));
    }
    return args;
}

result<store_answer> decode_acquire(const redis::reply& r, diagnostics& diag)
{
    diag.field = "acquire";
    if (r.kind != redis::reply::type::array || r.elements.size() < 4) {
        diag.detail = "expected an array of 5 integers";
        return error::redis_error_reply;
    }
    long long v[4];
    for (int i = 0; i < 4; ++i)
        if (!integer_of(r.elements[i], v[i]) || v[i] < 0) {
            diag.detail = "element " + std::to_string(i + 1) + " is not a whole number ≥ 0";
            return error::redis_error_reply;
        }
    if (v[3] < 1 || v[3] > 1000) {
        diag.detail = "the rate factor is out of range";
        return error::redis_error_reply;
    }
    return store_answer{static_cast<std::uint64_t>(v[0]), static_cast<std::uint64_t>(v[1]),
                        static_cast<std::uint64_t>(v[2]), static_cast<unsigned>(v[3])};
}

bool transient_error_reply(const redis::reply& r) noexcept
{
    for (const char* p : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN",
                          "OOM", "NOREPLICAS"})
        if (r.is_error(p))
            return true;
    return false;
}

redis_store::redis_store(std::shared_ptr<redis::client> client, const rate_limiter_options& limits,
                         const store_options& store, std::string key)
    : client_(std::move(client))
    , key_(std::move(key))
    , keys_(store_keys(key_, limits.buckets))
    , common_(store_args("", limits.buckets))
    , functions_(store.use_functions)
{
}

void redis_store::exec(std::vector<std::string> cmd,
                       std::function<void(error_code, redis::reply)> h)
{
    commands_.fetch_add(1, std::memory_order_relaxed);
    client_->async_exec(std::move(cmd), std::move(h));
}

void redis_store::call(script_call c, std::vector<std::string> args, handler h)
{
    if (functions_.load(std::memory_order_relaxed))
        via_function(c, std::move(args), std::move(h), false);
    else
        via_script(c, std::move(args), std::move(h));
}

void redis_store::via_function(script_call c, std::vector<std::string> args, handler h, bool loaded)
{
    std::vector<std::string> cmd{"FCALL", function_name(c), std::to_string(keys_.size())};
    cmd.insert(cmd.end(), keys_.begin(), keys_.end());
    cmd.insert(cmd.end(), common_.begin(), common_.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    exec(std::move(cmd), [self = shared_from_this(), c, args = std::move(args), h = std::move(h),
                          loaded](error_code ec, redis::reply r) mutable {
        if (!ec && r.is_error() && !loaded &&
            r.str.find("Function not found") != std::string::npos) {
            // Redis restarted empty, or FUNCTION FLUSH: load the library, then call again.
            self->exec({"FUNCTION", "LOAD", function_library()},
                       [self, c, args = std::move(args),
                        h = std::move(h)](error_code ec2, redis::reply r2) mutable {
                           if (ec2)
                               return h(ec2, std::move(r2));
                           // "already exists": another process loaded it first.
                           if (r2.is_error() && r2.str.find("already exists") == std::string::npos)
                               return h(error::redis_error_reply, std::move(r2));
                           self->via_function(c, std::move(args), std::move(h), true);
                       });
            return;
        }
        if (!ec && r.is_error() &&
            (r.str.find("unknown command") != std::string::npos ||
             r.str.find("unknown subcommand") != std::string::npos)) {
            // A Redis before 7 has no functions: scripts from now on.
            self->functions_.store(false, std::memory_order_relaxed);
            self->via_script(c, std::move(args), std::move(h));
            return;
        }
        if (!ec && r.is_error())
            ec = error::redis_error_reply;
        h(ec, std::move(r));
    });
}

void redis_store::via_script(script_call c, std::vector<std::string> args, handler h)
{
    static const std::string shas[3] = {sha1_hex(eval_script(script_call::acquire)),
                                        sha1_hex(eval_script(script_call::refund)),
                                        sha1_hex(eval_script(script_call::signal))};
    auto command = [&](const char* verb, const std::string& first) {
        std::vector<std::string> cmd{verb, first, std::to_string(keys_.size())};
        cmd.insert(cmd.end(), keys_.begin(), keys_.end());
        cmd.insert(cmd.end(), common_.begin(), common_.end());
        cmd.insert(cmd.end(), args.begin(), args.end());
        return cmd;
    };
    auto eval = command("EVAL", eval_script(c));
    exec(command("EVALSHA", shas[static_cast<int>(c)]),
         [self = shared_from_this(), eval = std::move(eval),
          h = std::move(h)](error_code ec, redis::reply r) mutable {
             if (!ec && r.is_error("NOSCRIPT")) {
                 // Not cached (a restart, SCRIPT FLUSH): EVAL sends the text and caches it.
                 self->exec(std::move(eval), [h = std::move(h)](error_code ec2, redis::reply r2) {
                     if (!ec2 && r2.is_error())
                         ec2 = error::redis_error_reply;
                     h(ec2, std::move(r2));
                 });
                 return;
             }
             if (!ec && r.is_error())
                 ec = error::redis_error_reply;
             h(ec, std::move(r));
         });
}

} // namespace mailroom::limit::detail
