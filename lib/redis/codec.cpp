// The Redis codec over hiredis (codec.hpp): formatting, the capped reader, and the pure
// judgements the client makes on replies.

#include "codec.hpp"

#include <boost/asio/error.hpp>

#include <hiredis/hiredis.h>

#include <limits>

namespace mailroom::redis::detail {

namespace asio = boost::asio;

error_code encode(const std::vector<std::string>& args, std::string& out)
{
    if (args.empty() || args.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        return asio::error::invalid_argument;
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* cmd = nullptr;
    const int n =
        redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
    if (n < 0 || !cmd)
        throw std::bad_alloc(); // hiredis fails only when it can't allocate
    out.append(cmd, static_cast<std::size_t>(n));
    redisFreeCommand(cmd);
    return {};
}

// ---- decoder --------------------------------------------------------------------------------

struct decoder::functions {
    redisReplyObjectFunctions table{};
    redisReplyObjectFunctions orig{};
};

namespace {

reply convert(const redisReply& r)
{
    reply out;
    switch (r.type) {
    case REDIS_REPLY_STRING:
        out.kind = reply::type::string;
        out.str.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STATUS:
        out.kind = reply::type::status;
        out.str.assign(r.str, r.len);
        break;
    case REDIS_REPLY_ERROR:
        out.kind = reply::type::error;
        out.str.assign(r.str, r.len);
        break;
    case REDIS_REPLY_INTEGER:
        out.kind = reply::type::integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.kind = reply::type::array;
        out.elements.reserve(r.elements);
        for (std::size_t i = 0; i < r.elements; ++i)
            out.elements.push_back(convert(*r.element[i]));
        break;
    default: out.kind = reply::type::nil; break;
    }
    return out;
}

} // namespace

decoder::decoder(decoder_limits limits)
    : limits_(limits)
    , fn_(std::make_unique<functions>())
{
    reset();
}

decoder::~decoder()
{
    if (reader_)
        redisReaderFree(reader_);
}

void decoder::reset()
{
    if (reader_)
        redisReaderFree(reader_);
    reader_ = redisReaderCreate();
    if (!reader_)
        throw std::bad_alloc();
    // redisReaderCreate installs hiredis's default reply constructors; ours count and cap
    // before calling them, and refuse (NULL: hiredis then fails the parse) over a limit.
    fn_->orig = *reader_->fn;
    fn_->table = fn_->orig;
    fn_->table.createString = &decoder::create_string;
    fn_->table.createArray = &decoder::create_array;
    reader_->fn = &fn_->table;
    reader_->privdata = this;
    bytes_ = elements_ = 0;
    cap_error_.clear();
    error_.clear();
}

std::size_t decoder::buffered() const noexcept
{
    return reader_ ? reader_->len - reader_->pos : 0;
}

void decoder::fail(std::string what)
{
    if (error_.empty())
        error_ = what.empty() ? std::string("protocol error") : std::move(what);
}

bool decoder::account_bytes(std::size_t n)
{
    bytes_ += n;
    if (bytes_ > limits_.max_reply_bytes) {
        cap_error_ = "a reply over " + std::to_string(limits_.max_reply_bytes) + " bytes";
        return false;
    }
    return true;
}

void* decoder::create_string(const redisReadTask* t, char* s, std::size_t n)
{
    auto* self = static_cast<decoder*>(t->privdata);
    if (!self->account_bytes(n))
        return nullptr;
    return self->fn_->orig.createString(t, s, n);
}

void* decoder::create_array(const redisReadTask* t, int n)
{
    auto* self = static_cast<decoder*>(t->privdata);
    unsigned depth = 1;
    for (const redisReadTask* p = t->parent; p; p = p->parent)
        ++depth;
    if (depth > self->limits_.max_depth) {
        self->cap_error_ =
            "arrays nested deeper than " + std::to_string(self->limits_.max_depth) + " levels";
        return nullptr;
    }
    self->elements_ += static_cast<std::size_t>(n < 0 ? 0 : n);
    if (self->elements_ > self->limits_.max_elements) {
        self->cap_error_ =
            "a reply of over " + std::to_string(self->limits_.max_elements) + " elements";
        return nullptr;
    }
    return self->fn_->orig.createArray(t, n);
}

bool decoder::feed(std::string_view bytes)
{
    if (failed())
        return false;
    if (bytes.empty())
        return true;
    if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) {
        fail(reader_->errstr);
        return false;
    }
    return true;
}

std::optional<reply> decoder::next()
{
    if (failed())
        return std::nullopt;
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        // A refusal by our own wrappers shows as hiredis's "Out of memory": say which cap.
        fail(cap_error_.empty() ? std::string(reader_->errstr) : cap_error_);
        return std::nullopt;
    }
    if (!raw) {
        // Incomplete: what is buffered is part of the reply being read, so it counts too
        // (a bulk string's length is announced first, its bytes are only read at the end).
        if (bytes_ + buffered() > limits_.max_reply_bytes) {
            fail("a reply over " + std::to_string(limits_.max_reply_bytes) + " bytes");
        }
        return std::nullopt;
    }
    reply out = convert(*static_cast<redisReply*>(raw));
    freeReplyObject(raw);
    bytes_ = elements_ = 0;
    return out;
}

// ---- options, judgements ----------------------------------------------------------------------

namespace {

bool has_control(std::string_view s)
{
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f)
            return true;
    return false;
}

std::string_view first_word(std::string_view s)
{
    return s.substr(0, s.find(' '));
}

} // namespace

error_code validate(const options& o, diagnostics& diag)
{
    auto bad = [&](const char* field, const char* detail) {
        diag.field = field;
        diag.detail = detail;
        return make_error_code(error::invalid_redis_options);
    };
    if (o.host.empty())
        return bad("host", "empty");
    if (o.host.size() > 255 || has_control(o.host) ||
        o.host.find_first_of(" /?#@") != std::string::npos)
        return bad("host", "not a host name or an IP address");
    if (o.port == 0)
        return bad("port", "must be 1..65535");
    if (!o.username.empty() && o.password.empty())
        return bad("password", "a user needs a password (AUTH user password)");
    if (o.db > static_cast<unsigned>(std::numeric_limits<int>::max()))
        return bad("db", "out of range");
    if (o.connect_timeout <= duration::zero())
        return bad("connect_timeout", "must be positive");
    if (o.request_timeout <= duration::zero())
        return bad("request_timeout", "must be positive");
    if (o.reconnect_initial <= duration::zero())
        return bad("reconnect_initial", "must be positive");
    if (o.reconnect_max < o.reconnect_initial)
        return bad("reconnect_max", "must be at least reconnect_initial");
    return {};
}

error_code judge_reply(const reply& r) noexcept
{
    if (r.is_error("NOAUTH") || r.is_error("WRONGPASS") || r.is_error("NOPERM"))
        return error::redis_auth_failed;
    // Redis refuses a command of more than 10 arguments (or a long one) from a client that
    // hasn't authenticated with this, not NOAUTH, and closes the connection.
    if (r.is_error() && r.str.find("Protocol error: unauthenticated") != std::string::npos)
        return error::redis_auth_failed;
    return {};
}

error_code judge_prelude(const reply& r, bool is_auth)
{
    if (r.kind == reply::type::status)
        return {};
    if (r.kind != reply::type::error)
        return error::redis_error_reply;
    if (is_auth || judge_reply(r))
        return error::redis_auth_failed;
    // SELECT beyond the server's `databases`: "ERR DB index is out of range".
    if (r.str.find("out of range") != std::string::npos)
        return error::invalid_redis_options;
    return error::redis_error_reply;
}

std::string sanitize(std::string_view text, std::string_view secret, std::size_t max)
{
    std::string s(text);
    if (!secret.empty()) {
        for (std::size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 3))
            s.replace(at, secret.size(), "***");
    }
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = '?';
    if (s.size() > max) {
        s.resize(max);
        s += "...";
    }
    return s;
}

std::string endpoint_name(const options& o)
{
    const bool v6 = o.host.find(':') != std::string::npos;
    return (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
}

std::vector<std::vector<std::string>> prelude_commands(const options& o)
{
    std::vector<std::vector<std::string>> out;
    if (!o.password.empty()) {
        if (o.username.empty())
            out.push_back({"AUTH", o.password});
        else
            out.push_back({"AUTH", o.username, o.password});
    }
    if (o.db != 0)
        out.push_back({"SELECT", std::to_string(o.db)});
    return out;
}

} // namespace mailroom::redis::detail

namespace mailroom::redis {

bool reply::is_error(std::string_view prefix) const noexcept
{
    if (kind != type::error || prefix.empty())
        return false;
    return detail::first_word(str) == prefix;
}

const char* to_string(state s) noexcept
{
    switch (s) {
    case state::idle: return "idle";
    case state::connecting: return "connecting";
    case state::connected: return "connected";
    case state::reconnecting: return "reconnecting";
    case state::closed: return "closed";
    }
    return "unknown";
}

} // namespace mailroom::redis
