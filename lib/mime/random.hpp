// Private: unpredictable tokens for Message-IDs and MIME boundaries.
#pragma once

#include <string>

namespace mailroom::mime::detail {

/// 128 random bits as 26 lower-case base32 characters ([a-z2-7]): unique across hosts and
/// processes without coordination, and a dot-atom, so valid on the left of a Message-ID.
std::string random_token();

/// A multipart boundary: "=_" (which quoted-printable and base64 never produce) and a random
/// token; 30 characters, all allowed by RFC 2046 §5.1.1.
std::string new_boundary();

} // namespace mailroom::mime::detail
