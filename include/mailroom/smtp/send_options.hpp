// mailroom::smtp::send_options: per-message requests to the server.
#pragma once

#include <string>

namespace mailroom::smtp {

/// Delivery status notifications (RFC 3461), sent only where the server advertises DSN.
struct dsn_options {
    /// RET=: what a failure report returns of the message.
    enum class return_content { unspecified, full, headers } ret = return_content::unspecified;
    /// ENVID=: an identifier of the sender's choosing, echoed in every report (printable
    /// ASCII, at most 100 characters once xtext-encoded).
    std::string envid;
    /// NOTIFY= for every recipient: when to report. `never` excludes the others.
    bool notify_success = false;
    bool notify_failure = false;
    bool notify_delay = false;
    bool notify_never = false;
    /// ORCPT=rfc822;<recipient> for every recipient, so reports name the address as given.
    bool original_recipient = false;
};

struct send_options {
    dsn_options dsn;
};

} // namespace mailroom::smtp
