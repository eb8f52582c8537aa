#include <mailroom/mime/message.hpp>

#include "encoding.hpp"
#include "message_data.hpp"

#include "detail/base64.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace mailroom::mime {

using mailroom::detail::base64_line_input;
using mailroom::detail::base64_lines_append;
using mailroom::detail::base64_lines_size;

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
    // Only a string shorter than a segment's own bookkeeping is copied (merged with its
    // neighbours); any other is shared, so the messages a template builder makes share its
    // prepared body whatever its size. The transport gathers chunks into blocks of its own,
    // so only memory depends on this.
    constexpr std::size_t own_segment = 256;
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

void message_data::append_file_crlf(std::filesystem::path p, std::uint64_t file_size,
                                    std::uint64_t offset, std::uint64_t wire_size)
{
    segment s;
    s.k = segment::kind::file_crlf;
    s.path = std::move(p);
    s.file_size = file_size;
    s.file_offset = offset;
    s.size = wire_size;
    size += s.size;
    segments.push_back(std::move(s));
}

void crlf_stream::append(std::string& out, std::string_view in)
{
    if (in.empty())
        return;
    const char* p = in.data();
    const char* const end = p + in.size();
    if (after_cr_ && *p == '\n')
        ++p; // the LF of a CRLF split between two pieces
    after_cr_ = false;
    while (p != end) {
        const char* q = p;
        while (q != end && *q != '\r' && *q != '\n')
            ++q;
        if (q != p) {
            out.append(p, q);
            ends_crlf_ = false;
        }
        if (q == end)
            break;
        out += "\r\n";
        ends_crlf_ = true;
        if (*q == '\r' && q + 1 == end)
            after_cr_ = true;
        p = q + (*q == '\r' && q + 1 != end && q[1] == '\n' ? 2 : 1);
    }
}

void crlf_stream::finish(std::string& out)
{
    if (!ends_crlf_)
        out += "\r\n";
    ends_crlf_ = true;
    after_cr_ = false;
}

error_code file_chunks::open(const std::filesystem::path& p)
{
    close();
    fd_ = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd_ < 0 || ::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
        close();
        return make_error_code(error::file_unreadable);
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
    return {};
}

std::string_view file_chunks::read(std::uint64_t offset, std::size_t n, error_code& ec)
{
    ec = {};
    raw_.resize(n);
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r =
            ::pread(fd_, raw_.data() + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ec = make_error_code(error::file_unreadable);
            return {};
        }
        if (r == 0) { // shorter than when the message was made
            ec = make_error_code(error::file_changed);
            return {};
        }
        got += static_cast<std::size_t>(r);
    }
    return {raw_.data(), n};
}

void file_chunks::close() noexcept
{
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
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
            case segment::kind::file_crlf:
                out = copy_file(s, ec);
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
        if (!open_file(s, ec))
            return {};
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_input, s.file_size - offset_));
        const std::string_view raw = file_.read(offset_, want, ec);
        if (ec) {
            file_.close();
            return {};
        }
        buf_.clear();
        if (offset_ > 0)
            buf_ += "\r\n";
        base64_lines_append(buf_, raw);
        offset_ += want;
        if (offset_ == s.file_size) {
            file_.close();
            advance();
        }
        return buf_;
    }

    // A file_crlf segment: offset_ counts the file's octets read, produced_ the octets made.
    std::string_view copy_file(const segment& s, error_code& ec)
    {
        if (!file_.is_open()) {
            if (!open_file(s, ec))
                return {};
            crlf_ = {};
            produced_ = 0;
        }
        const std::uint64_t left = s.file_size - s.file_offset - offset_;
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(bytes_chunk, left));
        buf_.clear();
        if (want > 0) {
            const std::string_view raw = file_.read(s.file_offset + offset_, want, ec);
            if (ec) {
                file_.close();
                return {};
            }
            crlf_.append(buf_, raw);
            offset_ += want;
        }
        const bool done = want == left;
        if (done)
            crlf_.finish(buf_);
        produced_ += buf_.size();
        // Same size, other content: the line breaks may now come to another size than at
        // build(), and the wire form would not match the size declared.
        if (produced_ > s.size || (done && produced_ != s.size)) {
            ec = make_error_code(error::file_changed);
            file_.close();
            return {};
        }
        if (done) {
            file_.close();
            advance();
        }
        return buf_;
    }

    // Opens the segment's file on its first chunk; it must still be the size it had at build().
    bool open_file(const segment& s, error_code& ec)
    {
        if (file_.is_open())
            return true;
        ec = file_.open(s.path);
        if (!ec && file_.size() != s.file_size) {
            ec = make_error_code(error::file_changed);
            file_.close();
        }
        return !ec;
    }

    std::shared_ptr<const message_data> data_;
    std::uint64_t remaining_;
    std::size_t index_ = 0;
    std::uint64_t offset_ = 0;
    file_chunks file_;
    crlf_stream crlf_;
    std::uint64_t produced_ = 0;
    std::string buf_;
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
