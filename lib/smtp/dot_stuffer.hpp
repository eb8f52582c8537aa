// Private: the DATA / BDAT body canonicaliser (RFC 5321 §4.5.2, §2.3.8). Pure, no I/O.
#pragma once

#include <mailroom/error.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

/// Turns message bytes, fed in pieces split anywhere, into wire bytes.
///
/// - Every line end becomes CRLF: CRLF stays, a bare CR and a bare LF each become CRLF (a CR
///   split from its LF across pieces is still one line end). RFC 5321 §2.3.8 allows nothing
///   else on the wire, and normalising every kind of line end the same way is what defeats
///   SMTP smuggling: a receiver that ends lines at bare LF and one that ends them only at CRLF
///   then see the same lines, so "\n.\n" or "\r.\r" in a body can't end the DATA for one of
///   them early.
/// - In `dot_stuffing::on` mode (DATA), a '.' at the start of a line is doubled (§4.5.2), and
///   finish() writes the terminating ".\r\n", after a CRLF when the data didn't end with one.
/// - In `off` mode (BDAT, RFC 3030), no stuffing, and finish() only ends an unterminated last
///   line with CRLF, so both paths put the same message in the mailbox.
/// - A line longer than the limit (998 octets of text, RFC 5322 §2.1.1 / RFC 5321
///   §4.5.3.1.6, not counting the stuffed dot) fails with error::line_too_long.
///
/// On an error, `out` is left as it was before that call; the message is then broken (some of
/// it may have been sent already) and the caller must not finish() it: sending the terminator
/// would deliver a truncated message. Drop the connection instead.
class dot_stuffer {
public:
    enum class dot_stuffing { on, off };

    /// RFC 5322 §2.1.1: 998 octets of text per line.
    static constexpr std::size_t default_max_line = 998;

    explicit dot_stuffer(dot_stuffing mode = dot_stuffing::on,
                         std::size_t max_line = default_max_line) noexcept
        : stuff_(mode == dot_stuffing::on)
        , max_line_(max_line)
    {
    }

    /// Appends the wire form of `chunk` to `out`.
    error_code feed(std::string_view chunk, std::string& out);

    /// Appends the end of the data: CRLF if the last line is unterminated, then ".\r\n" in
    /// DATA mode. The stuffer is then ready for another message.
    void finish(std::string& out);

    /// Octets of message text fed since the last finish(), before canonicalisation; for logs.
    std::size_t fed() const noexcept { return fed_; }

private:
    bool stuff_;
    std::size_t max_line_;
    bool line_start_ = true;   // the next octet starts a line
    bool cr_pending_ = false;  // the last octet was a CR, already written as CRLF
    std::size_t line_len_ = 0; // octets of text in the current line
    std::size_t fed_ = 0;
};

} // namespace mailroom::smtp::detail
