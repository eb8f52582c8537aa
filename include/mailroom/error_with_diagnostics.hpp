// mailroom::error_with_diagnostics: the exception an operation's default completion token
// throws, carrying the operation's diagnostics beside its code.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/error.hpp>

#include <boost/system/system_error.hpp>

namespace mailroom {

/// A `boost::system::system_error` that also carries the failed operation's diagnostics: the
/// step that failed and the server's reply or the TLS error (server text is untrusted).
/// Thrown where an operation completes with an error through with_diagnostics(), the default
/// token of client, pooled connection and mailer sends and of the client's connect and
/// commands. `what()` holds the diagnostics and the code's message; `code()` the code, so
/// `catch (const boost::system::system_error&)` goes on working.
class MAILROOM_API error_with_diagnostics : public boost::system::system_error {
public:
    /// The exception for `ec`; what() says `d` (as diagnostics::to_string()) and the message.
    error_with_diagnostics(error_code ec, diagnostics d);
    /// Copies code, message and diagnostics (exceptions are copied when thrown).
    error_with_diagnostics(const error_with_diagnostics&) = default;
    /// Copies code, message and diagnostics.
    error_with_diagnostics& operator=(const error_with_diagnostics&) = default;
    ~error_with_diagnostics() override;

    /// The step that failed and why, as the operation reported them.
    const diagnostics& get_diagnostics() const noexcept { return diag_; }

private:
    diagnostics diag_;
};

} // namespace mailroom
