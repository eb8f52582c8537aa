// mailroom::smtp::send_options: per-message requests to the server.
#pragma once

#include <string>

namespace mailroom::smtp {

/// Delivery status notifications (RFC 3461), sent only where the server advertises DSN.
struct dsn_options {
    /// RET=: what a failure report returns of the message: `full` (all of it), `headers` (its
    /// headers), `unspecified` (no RET=: the server chooses).
    enum class return_content { unspecified, full, headers } ret = return_content::unspecified;
    /// @var ret
    /// RET=, see return_content. Default: unspecified.

    /// ENVID=: an identifier of the sender's choosing, echoed in every report (printable
    /// ASCII, at most 100 characters once xtext-encoded).
    std::string envid{};
    /// NOTIFY= for every recipient: when to report. `never` excludes the others; none set: no
    /// NOTIFY= (the server's default). This one: NOTIFY=SUCCESS, report a delivery.
    bool notify_success = false;
    /// NOTIFY=FAILURE: report a failed delivery.
    bool notify_failure = false;
    /// NOTIFY=DELAY: report a delayed delivery.
    bool notify_delay = false;
    /// NOTIFY=NEVER: no reports at all. With another notify_ flag set too, a send to a server
    /// that offers DSN fails with error::invalid_smtp_argument.
    bool notify_never = false;
    /// `ORCPT=rfc822;<recipient>` for every recipient (except those with a non-ASCII local
    /// part), so reports name the address as given.
    bool original_recipient = false;
};

/// Per-message requests for smtp::client::async_send (and pool::connection::async_send).
struct send_options {
    /// DSN requests; none by default.
    dsn_options dsn{};
};

} // namespace mailroom::smtp
