// The log and diagnostics helpers shared by the session algos.

#include "session.hpp"
#include "sasl.hpp"

#include <mailroom/smtp/reply_error.hpp>

namespace mailroom::smtp::detail {

const char* to_string(phase p) noexcept
{
    switch (p) {
    case phase::tls_handshake: return "tls_handshake";
    case phase::greeting: return "greeting";
    case phase::command: return "command";
    case phase::mail: return "mail";
    case phase::rcpt: return "rcpt";
    case phase::data: return "data";
    case phase::data_block: return "data_block";
    case phase::data_end: return "data_end";
    }
    return "?";
}

void session_log::operator()(log_level l, std::string_view what) const
{
    if (!enabled(l))
        return;
    std::string line = prefix;
    line += ' ';
    line += what;
    (*log)(l, line);
}

void session_log::client_lines(std::string_view data, bool sasl_response) const
{
    if (!enabled(log_level::trace))
        return;
    std::size_t pos = 0;
    while (pos < data.size()) {
        std::size_t e = data.find("\r\n", pos);
        if (e == std::string_view::npos)
            e = data.size();
        (*this)(log_level::trace,
                "C: " + redact_client_line(data.substr(pos, e - pos), sasl_response));
        pos = e + 2;
    }
}

void session_log::server_reply(const reply& r) const
{
    if (!enabled(log_level::trace))
        return;
    for (std::size_t i = 0; i < r.lines.size(); ++i)
        (*this)(log_level::trace,
                "S: " + std::to_string(r.code) + (i + 1 < r.lines.size() ? "-" : " ") + r.lines[i]);
}

error_code unexpected_reply(const reply& r) noexcept
{
    const int cls = r.code / 100;
    if (cls == 4 || cls == 5)
        return make_error_code(r);
    return make_error_code(error::protocol_error);
}

error_code record_failure(diagnostics& d, const session_log& log, std::string_view step,
                          error_code ec, std::string detail)
{
    d.field = std::string(step);
    d.detail = detail.empty() ? ec.message() : std::move(detail);
    log(log_level::warning, d.field + " failed: " + d.detail);
    return ec;
}

} // namespace mailroom::smtp::detail
