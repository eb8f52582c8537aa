// OpenSSL 3 primitives for SASL.
#include "crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <climits>
#include <memory>

namespace mailroom::smtp::detail {

namespace {

const unsigned char* bytes(std::string_view s) noexcept
{
    return reinterpret_cast<const unsigned char*>(s.data());
}

std::optional<std::string> hmac(const char* digest, std::string_view key, std::string_view data)
{
    // EVP_MAC (OpenSSL 3) rather than the deprecated HMAC() one-shot.
    std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr),
                                                          &EVP_MAC_free);
    if (!mac)
        return std::nullopt;
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(mac.get()),
                                                                  &EVP_MAC_CTX_free);
    if (!ctx)
        return std::nullopt;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
        OSSL_PARAM_construct_end(),
    };
    // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
    static const unsigned char empty = 0;
    if (EVP_MAC_init(ctx.get(), key.empty() ? &empty : bytes(key), key.size(), params) != 1)
        return std::nullopt;
    if (EVP_MAC_update(ctx.get(), bytes(data), data.size()) != 1)
        return std::nullopt;
    unsigned char out[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (EVP_MAC_final(ctx.get(), out, &len, sizeof out) != 1)
        return std::nullopt;
    return std::string(reinterpret_cast<const char*>(out), len);
}

} // namespace

std::optional<std::string> hmac_md5(std::string_view key, std::string_view data)
{
    return hmac("MD5", key, data);
}

std::optional<std::string> hmac_sha256(std::string_view key, std::string_view data)
{
    return hmac("SHA256", key, data);
}

std::optional<std::string> sha256(std::string_view data)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr) != 1)
        return std::nullopt;
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::optional<std::string> pbkdf2_sha256(std::string_view password, std::string_view salt,
                                         unsigned iterations)
{
    if (password.size() > INT_MAX || salt.size() > INT_MAX || iterations > INT_MAX ||
        iterations == 0)
        return std::nullopt;
    std::string out(32, '\0');
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes(salt),
                          static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
                          static_cast<int>(out.size()),
                          reinterpret_cast<unsigned char*>(out.data())) != 1)
        return std::nullopt;
    return out;
}

std::optional<std::string> random_bytes(std::size_t n)
{
    std::string out(n, '\0');
    if (n > INT_MAX ||
        RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        return std::nullopt;
    return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void cleanse(std::string& s) noexcept
{
    if (!s.empty())
        OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

} // namespace mailroom::smtp::detail
