// RFC 5321 §4.2 reply parsing: strict, incremental, bounded.
#include "reply_parser.hpp"

#include <cstring>
#include <utility>

namespace mailroom::smtp::detail {

namespace {

// RFC 5321 §4.2 gives Reply-code = %x32-35 %x30-35 %x30-39, but a client judges a code it
// doesn't know by its first digit (§4.2.1, §4.3.2): a second digit over 5 (471, 290) is a
// reply like any other, so only the first digit is held to 2-5.
bool is_reply_code(std::string_view s) noexcept
{
    return s.size() >= 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
           s[2] >= '0' && s[2] <= '9';
}

// RFC 5321 §4.2 textstring = 1*(%d09 / %d32-126); RFC 6531 §3.7.4 adds UTF-8. We accept any
// octet from 0x80 up rather than validating UTF-8: the text is only shown, never interpreted.
bool is_text_octet(unsigned char c) noexcept
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

} // namespace

void reply_parser::fail(error e, const char* why, error_code& ec) noexcept
{
    failed_ = e;
    detail_ = why;
    ec = failed_;
}

void reply_parser::reset() noexcept
{
    ready_ = false;
    line_.clear();
    current_ = reply{};
    text_octets_ = 0;
    failed_.clear();
    detail_ = "";
}

reply reply_parser::take()
{
    reply r = std::move(current_);
    current_ = reply{};
    text_octets_ = 0;
    ready_ = false;
    return r;
}

std::size_t reply_parser::feed(std::string_view data, error_code& ec)
{
    ec.clear();
    if (failed_) {
        ec = failed_;
        return 0;
    }
    std::size_t pos = 0;
    while (pos < data.size() && !ready_) {
        const void* lf = std::memchr(data.data() + pos, '\n', data.size() - pos);
        const std::size_t end =
            lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - data.data()) : data.size();
        // The line so far may hold its CR too: one octet over the cap is allowed until we know.
        if (line_.size() + (end - pos) > limits_.max_line + 1) {
            fail(error::reply_line_too_long, "reply line longer than the limit", ec);
            return pos;
        }
        line_.append(data.data() + pos, end - pos);
        pos = end;
        if (!lf)
            break;
        ++pos; // the LF
        if (line_.empty() || line_.back() != '\r') {
            fail(error::protocol_error, "reply line ends in a bare LF", ec);
            return pos;
        }
        line_.pop_back();
        end_line(line_, ec);
        line_.clear();
        if (ec)
            return pos;
    }
    return pos;
}

void reply_parser::end_line(std::string_view line, error_code& ec)
{
    if (line.size() > limits_.max_line)
        return fail(error::reply_line_too_long, "reply line longer than the limit", ec);
    if (!is_reply_code(line))
        return fail(error::bad_reply_code, "reply line doesn't start with a 2xx-5xx code", ec);
    bool last = true;
    if (line.size() > 3) {
        if (line[3] == '-')
            last = false;
        else if (line[3] != ' ')
            return fail(error::bad_reply_code, "reply code not followed by ' ' or '-'", ec);
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    // RFC 5321 §4.2.1: every line of a multi-line reply carries the same code. A change means
    // we are reading two replies glued together, or something that isn't SMTP.
    if (!current_.lines.empty() && code != current_.code)
        return fail(error::reply_code_mismatch, "reply code changed within a reply", ec);

    const std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
    for (char c : text) {
        if (!is_text_octet(static_cast<unsigned char>(c)))
            return fail(error::protocol_error, "control character in reply text", ec);
    }
    if (current_.lines.size() + 1 > limits_.max_lines)
        return fail(error::reply_too_long, "reply has more lines than the limit", ec);
    if (text_octets_ + text.size() > limits_.max_text)
        return fail(error::reply_too_long, "reply text longer than the limit", ec);

    current_.code = code;
    current_.lines.emplace_back(text);
    text_octets_ += text.size();
    if (!last)
        return;
    if (enhanced_) {
        // RFC 3463 §2 / RFC 2034 §3: the status class must agree with the reply's first digit;
        // a 3xx reply (a 334 SASL challenge, a 354) carries none, and its text is never taken
        // for one.
        auto st = enhanced_status::parse_prefix(current_.lines.front());
        if (st && st->cls == code / 100)
            current_.status = st;
    }
    ready_ = true;
}

} // namespace mailroom::smtp::detail
