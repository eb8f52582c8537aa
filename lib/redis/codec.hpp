// Private: the Redis wire protocol without I/O, hiredis doing the RESP2 work. Commands are
// formatted by redisFormatCommandArgv; replies are parsed by a redisReader fed whatever bytes
// arrived, in pieces of any size, and turned into redis::reply values. The decoder caps what a
// server can make it hold (one reply's bytes and elements, the nesting), so a hostile or broken
// server costs a protocol error, not the process's memory. Also the checks on options, and
// what the client makes of the replies to its own AUTH and SELECT.
#pragma once

#include <mailroom/redis/client.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;
struct redisReadTask;

namespace mailroom::redis::detail {

/// Appends `args` formatted as one RESP command (an array of bulk strings) to `out`.
/// Errors: asio::error::invalid_argument for an empty `args`; out is unchanged then.
error_code encode(const std::vector<std::string>& args, std::string& out);

/// What one reply may hold at most; over it, the decoder fails with a protocol error.
struct decoder_limits {
    /// String bytes of one reply (its strings together, and what is buffered of it).
    std::size_t max_reply_bytes = 64 * 1024 * 1024;
    /// Array elements of one reply, all levels together.
    std::size_t max_elements = 1024 * 1024;
    /// Arrays within arrays: 1 allows an array of scalars. hiredis's own limit is 7.
    unsigned max_depth = 7;
};

/// Replies from bytes. Feed what was read, then take replies until none is complete. After a
/// protocol error the decoder stays failed (the connection is out of step and must close).
class decoder {
public:
    explicit decoder(decoder_limits limits = {});
    ~decoder();
    decoder(const decoder&) = delete;
    decoder& operator=(const decoder&) = delete;

    /// Adds bytes read from the server. False on a protocol error (see error_text()).
    bool feed(std::string_view bytes);
    /// The next complete reply; nullopt when more bytes are needed or on a protocol error.
    std::optional<reply> next();
    /// A protocol error happened: the stream can't be trusted any more.
    bool failed() const noexcept { return !error_.empty(); }
    /// What was wrong (hiredis's text, or which cap was passed); empty if nothing.
    const std::string& error_text() const noexcept { return error_; }
    /// Bytes received and not yet part of a reply taken.
    std::size_t buffered() const noexcept;
    /// Back to a fresh state, for a new connection.
    void reset();

private:
    static void* create_string(const redisReadTask* t, char* s, std::size_t n);
    static void* create_array(const redisReadTask* t, int n);
    void fail(std::string what);
    bool account_bytes(std::size_t n);

    decoder_limits limits_;
    redisReader* reader_ = nullptr;
    // hiredis's own reply constructors, wrapped by ours to count and cap.
    struct functions;
    std::unique_ptr<functions> fn_;
    std::size_t bytes_ = 0;    // of the reply being parsed
    std::size_t elements_ = 0; // of the reply being parsed
    std::string cap_error_;    // set by a wrapper that refused to create an object
    std::string error_;
};

/// Checks `o`'s ranges. Errors: error::invalid_redis_options, `diag.field` naming the member.
error_code validate(const options& o, diagnostics& diag);

/// What the client makes of the reply to its own AUTH or SELECT (sent after connecting):
/// nothing for a success, error::redis_auth_failed for an AUTH error reply (or NOAUTH,
/// WRONGPASS, NOPERM to SELECT), error::invalid_redis_options for SELECT's "DB index is out
/// of range", error::redis_error_reply for any other error reply or an unexpected type.
error_code judge_prelude(const reply& r, bool is_auth);

/// The error code a reply to a caller's request completes with: redis_auth_failed for the
/// error replies NOAUTH, WRONGPASS and NOPERM; nothing for every other reply.
error_code judge_reply(const reply& r) noexcept;

/// Server text fit for a log line: control characters replaced, at most `max` bytes, every
/// occurrence of `secret` (when not empty) replaced by "***".
std::string sanitize(std::string_view text, std::string_view secret = {}, std::size_t max = 200);

/// `host:port`, an IPv6 literal in brackets: the name in log lines.
std::string endpoint_name(const options& o);

/// The commands sent after connecting, before any request: AUTH [user] password when a
/// password is set, SELECT db when db is not 0. Each element is one command's args.
std::vector<std::vector<std::string>> prelude_commands(const options& o);

} // namespace mailroom::redis::detail
