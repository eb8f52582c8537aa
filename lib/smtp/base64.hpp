// Private: strict base64 decoding (RFC 4648 §4) for SASL challenges. Encoding reuses
// mime::detail::base64_append.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

/// Decodes `in`, or returns nothing when it isn't canonical base64: RFC 4954 §4 requires
/// rejecting any character outside the alphabet (white space included) and padding anywhere
/// but at the end, so the length must be a multiple of 4, and the unused bits of the last
/// group must be zero (RFC 4648 §3.5), so that one string has one meaning.
std::optional<std::string> base64_decode(std::string_view in);

} // namespace mailroom::smtp::detail
