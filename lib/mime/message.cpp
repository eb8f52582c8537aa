#include <mailroom/mime/message.hpp>

#include "encoding.hpp"
#include "message_data.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace mailroom::mime {

namespace detail {

void message_data::append_bytes(std::string_view s)
{
    if (s.empty())
        return;
    if (segments.empty() || segments.back().k != segment::kind::bytes || segments.back().data)
        segments.emplace_back();
    segments.back().text += s;
    segments.back().size += s.size();
    size += s.size();
}

void message_data::append_shared(std::shared_ptr<const std::string> s)
{
    // Small strings are merged with their neighbours: fewer, larger chunks for the transport.
    constexpr std::size_t own_segment = 4096;
    if (s->size() < own_segment) {
        append_bytes(*s);
        return;
    }
    segment seg;
    seg.size = s->size();
    seg.data = std::move(s);
    size += seg.size;
    segments.push_back(std::move(seg));
}

void message_data::append_base64(std::shared_ptr<const std::string> d)
{
    segment s;
    s.k = segment::kind::base64_memory;
    s.size = base64_lines_size(d->size());
    s.data = std::move(d);
    size += s.size;
    segments.push_back(std::move(s));
}

void message_data::append_base64_file(std::filesystem::path p, std::uint64_t file_size)
{
    segment s;
    s.k = segment::kind::base64_file;
    s.path = std::move(p);
    s.file_size = file_size;
    s.size = base64_lines_size(file_size);
    size += s.size;
    segments.push_back(std::move(s));
}

// Raw octets encoded per chunk: whole base64 lines, so chunks joined by CRLF equal the encoding
// of the whole (57 * 1152 = 64 KiB + 768, giving about 86 KiB of text).
constexpr std::size_t chunk_input = base64_line_input * 1152;
// Literal bytes are handed out as views of at most this many octets.
constexpr std::size_t bytes_chunk = 64 * 1024;

class reader_state {
public:
    explicit reader_state(std::shared_ptr<const message_data> d)
        : data_(std::move(d))
        , remaining_(data_->size)
    {
    }
    ~reader_state() { close_file(); }
    reader_state(const reader_state&) = delete;
    reader_state& operator=(const reader_state&) = delete;

    std::uint64_t remaining() const noexcept { return remaining_; }

    std::string_view next(error_code& ec)
    {
        ec = {};
        while (index_ < data_->segments.size()) {
            const segment& s = data_->segments[index_];
            std::string_view out;
            switch (s.k) {
            case segment::kind::bytes: {
                // Views of at most bytes_chunk octets, so a transport's buffer stays bounded
                // however long a text body is.
                const std::string_view all = s.data ? std::string_view(*s.data) : s.text;
                out = all.substr(offset_, bytes_chunk);
                offset_ += out.size();
                if (offset_ == all.size())
                    advance();
                break;
            }
            case segment::kind::base64_memory: out = encode_memory(*s.data); break;
            case segment::kind::base64_file:
                out = encode_file(s, ec);
                if (ec)
                    return {};
                break;
            }
            if (!out.empty()) {
                remaining_ -= out.size();
                return out;
            }
        }
        return {};
    }

private:
    void advance()
    {
        ++index_;
        offset_ = 0;
    }

    std::string_view encode_memory(const std::string& d)
    {
        buf_.clear();
        if (offset_ > 0)
            buf_ += "\r\n"; // joins this chunk's lines to the previous chunk's last line
        const std::size_t n = std::min(chunk_input, d.size() - offset_);
        base64_lines_append(buf_, std::string_view(d).substr(offset_, n));
        offset_ += n;
        if (offset_ == d.size())
            advance();
        return buf_;
    }

    std::string_view encode_file(const segment& s, error_code& ec)
    {
        if (fd_ < 0) {
            fd_ = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd_ < 0) {
                ec = make_error_code(error::file_unreadable);
                return {};
            }
            struct stat st {};
            if (::fstat(fd_, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != s.file_size) {
                ec = make_error_code(error::file_changed);
                close_file();
                return {};
            }
        }
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_input, s.file_size - offset_));
        raw_.resize(chunk_input);
        std::size_t got = 0;
        while (got < want) {
            ssize_t r = ::read(fd_, raw_.data() + got, want - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                ec = make_error_code(error::file_unreadable);
                close_file();
                return {};
            }
            if (r == 0) { // shorter than at build(): the wire form would not match its size
                ec = make_error_code(error::file_changed);
                close_file();
                return {};
            }
            got += static_cast<std::size_t>(r);
        }
        buf_.clear();
        if (offset_ > 0)
            buf_ += "\r\n";
        base64_lines_append(buf_, std::string_view(raw_.data(), want));
        offset_ += want;
        if (offset_ == s.file_size) {
            close_file();
            advance();
        }
        return buf_;
    }

    void close_file() noexcept
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

    std::shared_ptr<const message_data> data_;
    std::uint64_t remaining_;
    std::size_t index_ = 0;
    std::uint64_t offset_ = 0;
    int fd_ = -1;
    std::string buf_;
    std::string raw_;
};

} // namespace detail

message message::from_bytes(std::string bytes, mailroom::envelope env, std::string message_id)
{
    auto d = std::make_shared<detail::message_data>();
    d->env = std::move(env);
    d->message_id = std::move(message_id);
    d->append_shared(std::make_shared<const std::string>(std::move(bytes)));
    return message(std::move(d));
}

const mailroom::envelope& message::envelope() const noexcept
{
    return data_->env;
}
const std::string& message::message_id() const noexcept
{
    return data_->message_id;
}
std::uint64_t message::size() const noexcept
{
    return data_->size;
}

result<std::string> message::serialize() const
{
    std::string out;
    out.reserve(static_cast<std::size_t>(data_->size));
    reader r = open();
    error_code ec;
    for (;;) {
        std::string_view chunk = r.next(ec);
        if (ec)
            return ec;
        if (chunk.empty())
            break;
        out += chunk;
    }
    return out;
}

message::reader message::open() const
{
    return reader(data_);
}

message::reader::reader(std::shared_ptr<const detail::message_data> d)
    : state_(std::make_unique<detail::reader_state>(std::move(d)))
{
}
message::reader::reader(reader&&) noexcept = default;
message::reader& message::reader::operator=(reader&&) noexcept = default;
message::reader::~reader() = default;

std::string_view message::reader::next(error_code& ec)
{
    return state_->next(ec);
}
std::uint64_t message::reader::remaining() const noexcept
{
    return state_->remaining();
}

} // namespace mailroom::mime
