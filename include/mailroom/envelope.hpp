// mailroom::envelope: what SMTP needs to route a message, apart from its bytes.
#pragma once

#include <mailroom/address.hpp>

#include <vector>

namespace mailroom {

/// The SMTP envelope (RFC 5321 §2.3.1): the reverse-path for MAIL FROM and the forward-paths for
/// RCPT TO. Built by the mime module from From/Sender and To/Cc/Bcc (Bcc recipients appear here
/// and nowhere in the headers), or by hand for pre-built messages.
struct envelope {
    address from;                    ///< reverse-path; empty means the null path `<>`
    std::vector<address> recipients; ///< each recipient once, in To, Cc, Bcc order
    bool smtputf8 = false;           ///< an address or header needs SMTPUTF8 (RFC 6531)
    bool eight_bit = false;          ///< the body has 8-bit parts: needs BODY=8BITMIME (RFC 6152)
};

} // namespace mailroom
