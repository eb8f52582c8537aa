// RFC 5321 §4.5.2 transparency and §2.3.8 line ends, streaming.
#include "dot_stuffer.hpp"

#include <cstring>

namespace mailroom::smtp::detail {

namespace {

// The first CR or LF in [p, end), or `end`. Two memchr scans (vectorised in glibc) instead of
// a loop over every octet: first the LF that usually ends the line, then a CR before it.
inline const char* find_line_end(const char* p, const char* end) noexcept
{
    const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
    const char* limit = lf ? static_cast<const char*>(lf) : end;
    const void* cr = std::memchr(p, '\r', static_cast<std::size_t>(limit - p));
    return cr ? static_cast<const char*>(cr) : limit;
}

// The end of the longest run of complete lines from `p` that are already in wire form: each
// ends in CRLF, holds no other CR or LF, fits the limit and (when stuffing) doesn't start with
// a '.'. Such lines are copied as they are, in one append: pre-built messages are made of them.
// `line_start` and `line_len` describe the line `p` is in.
inline const char* clean_lines(const char* p, const char* end, bool line_start,
                               std::size_t line_len, bool stuff, std::size_t max_line) noexcept
{
    const char* q = p;
    while (q < end) {
        if (line_start && stuff && *q == '.')
            break;
        const auto* lf =
            static_cast<const char*>(std::memchr(q, '\n', static_cast<std::size_t>(end - q)));
        if (!lf || lf == q || lf[-1] != '\r')
            break; // no complete line, or a bare LF: the octet-by-octet path decides
        const char* text_end = lf - 1;
        if (line_len + static_cast<std::size_t>(text_end - q) > max_line ||
            std::memchr(q, '\r', static_cast<std::size_t>(text_end - q)))
            break;
        q = lf + 1;
        line_start = true;
        line_len = 0;
    }
    return q;
}

} // namespace

error_code dot_stuffer::feed(std::string_view chunk, std::string& out)
{
    const std::size_t old_size = out.size();
    // Save state so a failed call changes nothing.
    const bool line_start = line_start_;
    const bool cr_pending = cr_pending_;
    const std::size_t line_len = line_len_;

    out.reserve(out.size() + chunk.size() + chunk.size() / 64 + 4);
    const char* p = chunk.data();
    const char* const end = p + chunk.size();
    while (p < end) {
        if (!cr_pending_) {
            const char* q = clean_lines(p, end, line_start_, line_len_, stuff_, max_line_);
            if (q != p) {
                out.append(p, static_cast<std::size_t>(q - p));
                line_start_ = true;
                line_len_ = 0;
                p = q;
                continue;
            }
        }
        if (cr_pending_) {
            cr_pending_ = false;
            if (*p == '\n') { // the LF of a CRLF whose CRLF is already out
                ++p;
                continue;
            }
        }
        if (*p == '\r' || *p == '\n') {
            out += "\r\n";
            cr_pending_ = *p == '\r';
            line_start_ = true;
            line_len_ = 0;
            ++p;
            continue;
        }
        if (line_start_ && stuff_ && *p == '.')
            out += '.';
        line_start_ = false;
        // Copy the run of ordinary octets up to the next line end in one go.
        const char* q = find_line_end(p, end);
        const auto run = static_cast<std::size_t>(q - p);
        if (line_len_ + run > max_line_) {
            out.resize(old_size);
            line_start_ = line_start;
            cr_pending_ = cr_pending;
            line_len_ = line_len;
            return error::line_too_long;
        }
        out.append(p, run);
        line_len_ += run;
        p = q;
    }
    fed_ += chunk.size();
    return {};
}

void dot_stuffer::finish(std::string& out)
{
    if (!line_start_)
        out += "\r\n";
    if (stuff_)
        out += ".\r\n";
    line_start_ = true;
    cr_pending_ = false;
    line_len_ = 0;
    fed_ = 0;
}

} // namespace mailroom::smtp::detail
