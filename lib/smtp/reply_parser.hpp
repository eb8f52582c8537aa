// Private: the incremental SMTP reply parser (RFC 5321 §4.2). Pure, no I/O.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/smtp/reply.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

/// Bounds on what one reply may take. RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets
/// with its CRLF, but servers exceed it (long EHLO lines, verbose rejections), so the default
/// per-line cap is four times that; the caps only exist to keep a hostile or broken server from
/// making the client buffer without end.
struct reply_limits {
    std::size_t max_line = 2048;      ///< octets of one line, code included, CRLF excluded
    std::size_t max_lines = 100;      ///< lines in one reply
    std::size_t max_text = 64 * 1024; ///< octets of text in one reply, all lines together
};

/// Reads replies from the bytes a server sends, in pieces of any size.
///
/// Strict: every line is `code ('-' / ' ') text CRLF` or `code CRLF`, the code three digits
/// 2xx-5xx (any second digit: a code the client doesn't know is judged by its first digit,
/// RFC 5321 §4.2.1), the same code on every line of a reply. A bare LF or CR, or
/// another control character in the text (TAB excepted), is a protocol error, not a line end:
/// lenient line splitting is what lets one peer see a line end where the other sees none, and
/// a reply's text ends up in logs. Failure is sticky: after an error the byte stream can no
/// longer be trusted, and the only way on is a new connection (or reset(), for tests).
///
/// feed() stops at the end of each reply, so bytes after it stay with the caller. That matters
/// for STARTTLS (RFC 3207 §5, CVE-2011-0411): anything the server sent after its 220 reply
/// and before the handshake must be rejected, not read as the first reply under TLS.
class reply_parser {
public:
    explicit reply_parser(reply_limits limits = {}) noexcept
        : limits_(limits)
    {
    }

    /// Whether to read an RFC 3463 status code at the start of a reply (RFC 2034: only once
    /// the server advertised ENHANCEDSTATUSCODES; earlier text that merely looks like one is
    /// left alone). Only a status whose class matches the reply code's first digit is taken.
    void set_enhanced_status_codes(bool on) noexcept { enhanced_ = on; }
    bool enhanced_status_codes() const noexcept { return enhanced_; }

    /// Consumes bytes from `data`, up to and including the CRLF that ends a reply, or all of
    /// them if no reply ends in `data`. Returns the number consumed. When a reply is complete,
    /// has_reply() is true and further feeds consume nothing until take(). On failure sets `ec`
    /// (one of error::protocol_error, bad_reply_code, reply_code_mismatch, reply_line_too_long,
    /// reply_too_long) and the parser stays failed; error_detail() says what was wrong.
    std::size_t feed(std::string_view data, error_code& ec);

    bool has_reply() const noexcept { return ready_; }
    /// Moves out the complete reply; the parser is then ready for the next one.
    reply take();

    /// True when nothing of a reply is buffered: no partial line, no lines of an unfinished
    /// multi-line reply, no complete reply waiting. A connection that ends while this is false
    /// ended in the middle of a reply.
    bool idle() const noexcept { return !ready_ && line_.empty() && current_.lines.empty(); }

    /// The error of a failed parser (sticky), or an empty code.
    error_code last_error() const noexcept { return failed_; }
    /// For diagnostics: a fixed description of the failure, never server text.
    std::string_view error_detail() const noexcept { return detail_; }

    /// Back to the initial state (enhanced-status setting kept).
    void reset() noexcept;

private:
    void end_line(std::string_view line, error_code& ec);
    void fail(error e, const char* why, error_code& ec) noexcept;

    reply_limits limits_;
    bool enhanced_ = false;
    bool ready_ = false;
    std::string line_; // bytes of the current line so far, with its CR if one came
    reply current_;
    std::size_t text_octets_ = 0;
    error_code failed_;
    const char* detail_ = "";
};

} // namespace mailroom::smtp::detail
