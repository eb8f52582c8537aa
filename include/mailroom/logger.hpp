// mailroom::logger: where the library's log lines go.
#pragma once

#include <functional>
#include <string_view>

namespace mailroom {

/// How much a log line matters, least first. `off` as a logger's level silences it.
enum class log_level { trace, debug, info, warning, error, off };

/// A log sink passed in options. One line per event, prefixed with what it concerns, e.g.
/// `smtp[mail.example.com#3] S: 250 2.0.0 Ok`. Transcripts (every command and reply) are at
/// `trace`. Credentials, AUTH payloads and message bodies never reach it.
///
/// Quiet by default: only warnings and errors, and nothing at all without a sink.
/// Thread safety: the sink may be called from any thread that runs the library's handlers.
struct logger {
    /// Lines below this level are dropped.
    log_level level = log_level::warning;
    /// Receives each line (without a line end); empty: no logging at all.
    std::function<void(log_level, std::string_view)> sink{};

    /// True when a line at `l` would reach the sink (the library checks before formatting).
    bool enabled(log_level l) const noexcept { return sink && l >= level && l != log_level::off; }
    /// Passes `line` to the sink if enabled(l).
    void operator()(log_level l, std::string_view line) const
    {
        if (enabled(l))
            sink(l, line);
    }
};

} // namespace mailroom
