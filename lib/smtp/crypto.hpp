// Private: the few primitives SASL needs, over OpenSSL 3. Nothing here includes OpenSSL, so
// only crypto.cpp depends on its headers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

/// HMAC (RFC 2104) with MD5 or SHA-256; nothing if the provider lacks the digest (MD5 in a
/// FIPS-only configuration).
std::optional<std::string> hmac_md5(std::string_view key, std::string_view data);
std::optional<std::string> hmac_sha256(std::string_view key, std::string_view data);
std::optional<std::string> sha256(std::string_view data);

/// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2) with a 32-octet output: SCRAM's Hi() (RFC 5802 §2.2).
std::optional<std::string> pbkdf2_sha256(std::string_view password, std::string_view salt,
                                         unsigned iterations);

/// `n` octets from the OpenSSL CSPRNG, or nothing if it failed.
std::optional<std::string> random_bytes(std::size_t n);

/// Equality in time independent of where the inputs differ (for signatures).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// Overwrites `s` with zeros in a way the optimiser keeps, then clears it.
void cleanse(std::string& s) noexcept;

} // namespace mailroom::smtp::detail
